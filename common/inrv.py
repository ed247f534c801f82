"""INR-V (Sen et al., chapter 3): a hypernetwork that turns one small code into a whole clip.

Each clip of T frames is an implicit network f_theta(x, y, t) -> RGB: an MLP
with ReLU over a periodic positional encoding of the coordinates. A
hypernetwork d_Omega(m) -> theta predicts those weights from the clip's
instance code m, one small MLP per layer of f as in the thesis (section
3.3). We predict theta as a learned base plus a code-dependent offset, whose
last layer starts near zero, so training begins from one shared, sensible
INR instead of random weights for every clip; that is what lets the small
networks here converge in minutes on a CPU.

Coordinates are continuous: x and y span [-1, 1] over the frame and t spans
[-1, 1] over the clip, at pixel and frame centres. Rendering at any size or
frame rate is sampling that box more densely.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .registry import Architecture, register


@dataclass(frozen=True)
class INRVConfig:
    """Everything needed to rebuild the network; stored in every bundle."""

    code_dim: int = 64
    """Size of one clip's instance code m: the whole payload of a clip."""
    width: int = 64
    """Hidden width of the implicit network f (the thesis uses 256; see the README for the measurement)."""
    depth: int = 3
    """Hidden layers of f."""
    hyper_width: int = 128
    """Hidden width of each per-layer hypernetwork MLP."""
    xy_freqs: int = 7
    t_freqs: int = 4
    clip_frames: int = 16
    preset: str = "inrv"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "INRVConfig":
        bounds = {"code_dim": (1, 4096), "width": (4, 1024), "depth": (1, 8), "hyper_width": (4, 2048),
                  "xy_freqs": (0, 16), "t_freqs": (0, 16), "clip_frames": (1, 1024)}
        values = {}
        for name, (low, high) in bounds.items():
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"INR-V config has an invalid {name}={value!r} (expected an integer in [{low}, {high}])")
            values[name] = value
        return cls(**values, preset=str(data.get("preset", "inrv")))

    @property
    def input_dim(self) -> int:
        return 3 + 2 * (2 * self.xy_freqs + self.t_freqs)

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each linear layer of f."""
        dims = [self.input_dim] + [self.width] * self.depth + [3]
        return list(zip(dims[:-1], dims[1:]))


def encode_positions(coords: torch.Tensor, xy_freqs: int, t_freqs: int) -> torch.Tensor:
    """Periodic positional encoding of (..., 3) coordinates (x, y, t) in [-1, 1].

    Frequencies are powers of two times pi, as in the SIREN/INR-V code; x and
    y get more of them than t because a clip has far more pixels than frames.
    """
    parts = [coords]
    for axis, count in ((0, xy_freqs), (1, xy_freqs), (2, t_freqs)):
        if count == 0:
            continue
        freqs = math.pi * 2.0 ** torch.arange(count, dtype=coords.dtype, device=coords.device)
        angles = coords[..., axis : axis + 1] * freqs
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=-1)


def centres(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Centres of n equal cells of [-1, 1]: where pixels (or frames) sit."""
    return (torch.arange(n, dtype=torch.float32, device=device) + 0.5) / n * 2 - 1


def grid(height: int, width: int, frames: int | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Coordinates (x, y, t) of every pixel of a clip, shape (T, height, width, 3).

    ``frames`` is a frame count (frame centres of the clip box) or a 1-D
    tensor of t values in [-1, 1] (any frame rate).
    """
    times = centres(frames, device) if isinstance(frames, int) else frames.to(device, torch.float32)
    t, y, x = torch.meshgrid(times, centres(height, device), centres(width, device), indexing="ij")
    return torch.stack([x, y, t], dim=-1)


def clip_time(offset: float, clip_frames: int) -> float:
    """t coordinate of a moment ``offset`` source frames after a clip's first frame (fractions allowed)."""
    return (offset + 0.5) / clip_frames * 2 - 1


class INRV(nn.Module):
    """The hypernetwork d_Omega with its base weights; ``render`` evaluates the clips' implicit networks."""

    def __init__(self, config: INRVConfig) -> None:
        super().__init__()
        self.config = config
        self.shapes = config.layer_shapes()
        self.hyper = nn.ModuleList()
        self.base_weight = nn.ParameterList()
        self.base_bias = nn.ParameterList()
        for fan_in, fan_out in self.shapes:
            head = nn.Sequential(
                nn.Linear(config.code_dim, config.hyper_width), nn.ReLU(),
                nn.Linear(config.hyper_width, config.hyper_width), nn.ReLU(),
                nn.Linear(config.hyper_width, fan_in * fan_out + fan_out),
            )
            with torch.no_grad():
                head[-1].weight.mul_(0.01)  # start every clip at the shared base INR
                head[-1].bias.zero_()
            self.hyper.append(head)
            bound = 1 / math.sqrt(fan_in)
            self.base_weight.append(nn.Parameter(torch.empty(fan_in, fan_out).uniform_(-bound, bound)))
            self.base_bias.append(nn.Parameter(torch.zeros(fan_out)))

    def weights(self, codes: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """theta for each code: per layer, weights (B, fan_in, fan_out) and biases (B, 1, fan_out)."""
        out = []
        for head, w0, b0, (fan_in, fan_out) in zip(self.hyper, self.base_weight, self.base_bias, self.shapes):
            delta = head(codes)
            w = w0 + delta[:, : fan_in * fan_out].view(-1, fan_in, fan_out)
            b = b0 + delta[:, fan_in * fan_out :].view(-1, 1, fan_out)
            out.append((w, b))
        return out

    def render_points(self, codes: torch.Tensor, coords: torch.Tensor,
                      theta: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        """RGB in [0, 1] at (B, P, 3) coordinates for B codes (B, code_dim): shape (B, P, 3)."""
        theta = theta if theta is not None else self.weights(codes)
        h = encode_positions(coords, self.config.xy_freqs, self.config.t_freqs)
        for i, (w, b) in enumerate(theta):
            h = torch.baddbmm(b, h, w)
            if i < len(theta) - 1:
                h = torch.relu(h)
        return torch.sigmoid(h)

    def render(self, codes: torch.Tensor, height: int, width: int, frames: int | torch.Tensor,
               chunk: int = 1 << 16) -> torch.Tensor:
        """Clips at any size and frame rate: (B, T, 3, height, width) in [0, 1].

        ``frames`` is a count (spread over the clip) or the t values to render.
        """
        count = frames if isinstance(frames, int) else int(frames.numel())
        if height < 1 or width < 1 or count < 1:
            raise ValueError(f"cannot render {count} frames of {height}x{width}")
        coords = grid(height, width, frames, codes.device).reshape(1, -1, 3)
        theta = self.weights(codes)
        pieces = [self.render_points(codes, coords[:, i : i + chunk].expand(codes.shape[0], -1, -1), theta)
                  for i in range(0, coords.shape[1], chunk)]
        rgb = torch.cat(pieces, dim=1)
        return rgb.view(codes.shape[0], count, height, width, 3).permute(0, 1, 4, 2, 3)


def clip_spans(frame_count: int, clip_frames: int) -> list[tuple[int, int]]:
    """[start, end) of each clip: consecutive runs of ``clip_frames``, the last one possibly shorter."""
    return [(s, min(s + clip_frames, frame_count)) for s in range(0, frame_count, clip_frames)]


@register
class INRVArchitecture(Architecture):
    """INR-V: one code per clip of ``clip_frames``, rendered at any size and frame rate.

    It trains by auto-decoding (`vsa.sender.train_inrv`): the codes are
    parameters learned with the network, so there is no encoder.
    """

    name = "inrv"
    payload = "codes"
    config_type = INRVConfig
    summary = "an INR-V hypernetwork: one small code per clip, rendered at any size and frame rate"
    presets = {"inrv": INRVConfig()}
    default_preset = "inrv"
    objectives = ("autodecode",)

    def build(self, config: INRVConfig) -> INRV:
        return INRV(config)

"""A super-resolution network in encoder/decoder form: the architecture for video it has not seen.

The paper's autoencoder squeezes a frame through a global bottleneck smaller
than the low-res frame itself, so it can only recall frames it memorised.
This network keeps the received frame's information instead and learns only
what to add to it, as SRVC, NAS and ESPCN-style networks do:

* f (encode): the frame, rearranged losslessly into a grid ``factor`` times
  smaller on each side (pixel unshuffle: 3 x factor^2 channels), together
  with ``channels`` learned features computed from it. The code is that grid:
  nothing of the frame is lost.
* g (decode): a few 3x3 convolutions on the features predict a residual for
  every pixel of each cell, added to the frame's own pixels, then pixel
  shuffle back to full size. The residual's last layer starts at zero, so an
  untrained network returns its input: bicubic upsampling.

Reprojection x <- g(f(x)), back-projection and latent interpolation keep
their meaning: interpolating two codes blends the two frames and their
features, and g adds detail to the blend. Every convolution runs on the small
grid, which is what makes it real time on a CPU (README, "The sr network").

One network cannot serve every stream: trained on scales 2 to 16 at once it
gained 0.1 dB at scale 4, against 2.5 dB for one trained at scale 4 alone
(the talking head's held-out tail, 150 s each). So a model holds one branch
per scale it serves, and the stream's scale picks the branch. Within a
branch the payload quality (in h264 crf units, `framecodec.model_crf`) conditions every layer's bias (a
learned offset times the crf), which is folded into the biases once a
stream's crf is known: free at inference. Mixing crf 20, 28 and 36 without
it cost 1.2 dB at crf 20; with it, 0.9 dB, and crf 36 gained 0.2 dB over a
network trained at crf 36 alone. Fine-tuning at the stream's own crf
(`vsa train --base`) takes the rest back.

Training (objective ``restore``) shows it crops of the bicubic upsampling of
low-res frames *after the payload codec* and asks for the source crop; a
quarter of each batch are source crops asked to stay as they are, so that a
second pass leaves a good frame alone instead of sharpening it twice
(without them a second pass cost 3.5 dB on the talking head; with them 0.2).
"""

from __future__ import annotations

import copy
import functools
import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .examples import Batch, Examples
from .framecodec import DEFAULT_CRF
from .registry import Architecture, FrameModel, register
from .resample import bicubic_matrix

log = logging.getLogger("vsa.sr")

FIXED_POINT_SHARE = 0.25
"""Share of each training batch that is clean frames with themselves as targets (see the module doc)."""
CRF_CENTRE, CRF_SPAN = 28.0, 8.0
"""The crf enters the network as (crf - CRF_CENTRE) / CRF_SPAN: about -1 to 1 over the crfs vsa uses."""


@dataclass(frozen=True)
class SRConfig:
    """Everything needed to rebuild the network; stored in every bundle."""

    scales: tuple[int, ...] = (2, 4, 8, 16)
    """The stream scales it has a branch for."""
    factor: int = 4
    """The code's grid is this many times smaller than the frame on each side."""
    channels: int = 24
    """Learned feature channels in the code and in every convolution."""
    input_kernel: int = 1
    """Kernel of f's first convolution, from the frame's cells to the features (1 or 3)."""
    encoder_layers: int = 1
    """3x3 convolutions in f after its first one."""
    decoder_layers: int = 3
    """3x3 convolutions in g before its 1x1 residual projection."""
    preset: str = "sr"

    def to_dict(self) -> dict:
        return {"scales": list(self.scales), "factor": self.factor, "channels": self.channels,
                "input_kernel": self.input_kernel, "encoder_layers": self.encoder_layers,
                "decoder_layers": self.decoder_layers, "preset": self.preset}

    @classmethod
    def from_dict(cls, data: dict) -> "SRConfig":
        bounds = {"factor": (1, 16), "channels": (1, 512), "input_kernel": (1, 3), "encoder_layers": (0, 32),
                  "decoder_layers": (0, 32)}
        values = {}
        for name, (low, high) in bounds.items():
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"sr model config has an invalid {name}={value!r} (expected an integer in "
                                 f"[{low}, {high}])")
            values[name] = value
        if values["input_kernel"] not in (1, 3):
            raise ValueError(f"sr model config has an invalid input_kernel={values['input_kernel']} (1 or 3)")
        scales = data.get("scales")
        if (not isinstance(scales, (list, tuple)) or not 1 <= len(scales) <= 8
                or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 64 for s in scales)
                or len(set(scales)) != len(scales)):
            raise ValueError(f"sr model config has invalid scales {scales!r} (1 to 8 distinct integers in [1, 64])")
        return cls(scales=tuple(sorted(scales)), **values, preset=str(data.get("preset", "custom"))[:64])

    @property
    def cell_channels(self) -> int:
        """Channels of one cell of the frame after pixel unshuffle."""
        return 3 * self.factor * self.factor


PRESETS: dict[str, SRConfig] = {
    # Chosen by measurement (README, "The sr network"): the widest network that reprojects 256x512 twice
    # at 60 fps on a 2-core CPU. 32 channels gained 0.2 dB on the talking head's held-out tail but ran at
    # about 52 fps; 3x3 projections in and out gained 0.04 dB for 40% more time per pass.
    "sr": SRConfig(),
    "sr-wide": SRConfig(channels=32, preset="sr-wide"),
    "sr-tiny": SRConfig(channels=8, encoder_layers=1, decoder_layers=1, preset="sr-tiny"),
}


def crf_input(crf: int) -> float:
    """How a payload's crf enters the network; 0 (unknown, or not h264) counts as the default crf."""
    return ((crf or DEFAULT_CRF) - CRF_CENTRE) / CRF_SPAN


class SRBranch(FrameModel):
    """The network for one scale. f: frame -> (its cells, features); g: code -> cells + residual -> frame.

    ``crf`` sets the payload quality its biases are conditioned on.
    """

    def __init__(self, config: SRConfig) -> None:
        super().__init__()
        self.config = config
        c, u = config.channels, config.cell_channels
        self.project_in = nn.Conv2d(u, c, config.input_kernel, padding=config.input_kernel // 2)
        self.encoder = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(config.encoder_layers))
        self.decoder = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(config.decoder_layers))
        self.project_out = nn.Conv2d(c, u, 1)
        # Bias offset per unit of crf input, for every layer (project_in, encoder, decoder, project_out).
        self.crf_bias = nn.Parameter(torch.zeros(1 + config.encoder_layers + config.decoder_layers, c))
        self.crf_bias_out = nn.Parameter(torch.zeros(u))
        self.crf = float(crf_input(DEFAULT_CRF))
        self.folded = False
        """Set by `specialised`: the crf offsets live in the biases; skip them."""
        self.centred = True
        """Whether f centres its input itself (`specialised` folds it into a 1x1 projection's weights)."""
        with torch.no_grad():  # start as the identity: g(f(x)) = x
            self.project_out.weight.zero_()
            self.project_out.bias.zero_()

    def _layer(self, conv: nn.Conv2d, h: torch.Tensor, index: int) -> torch.Tensor:
        if self.folded:
            return F.relu(conv(h))
        return F.relu(conv(h) + (self.crf * self.crf_bias[index]).view(1, -1, 1, 1))

    def _features(self, cells: torch.Tensor) -> torch.Tensor:
        # Centred inputs: measured 0.4 dB better after 150 s of training than [0, 1] inputs.
        h = self._layer(self.project_in, cells * 2.0 - 1.0 if self.centred else cells, 0)
        for i, conv in enumerate(self.encoder):
            h = self._layer(conv, h, 1 + i)
        return torch.cat([cells, h], 1)

    def _cells(self, z: torch.Tensor) -> torch.Tensor:
        """The decoded frame's cells (before pixel shuffle): the code's own cells plus the learned residual."""
        u = self.config.cell_channels
        h = z[:, u:]
        for i, conv in enumerate(self.decoder):
            h = self._layer(conv, h, 1 + self.config.encoder_layers + i)
        if self.folded:
            return z[:, :u] + self.project_out(h)
        return z[:, :u] + self.project_out(h) + (self.crf * self.crf_bias_out).view(1, -1, 1, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> code (N, 3 factor^2 + channels, H / factor, W / factor)."""
        return self._features(F.pixel_unshuffle(x, self.config.factor))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self._cells(z), self.config.factor)

    def recode(self, z: torch.Tensor) -> torch.Tensor:
        # Pixel shuffle and unshuffle cancel, and clamping commutes with them: skip the round trip.
        return self._features(self._cells(z).clamp(0.0, 1.0))

    def specialised(self, crf: int) -> "SRBranch":
        """An eval-mode copy with the crf's bias offsets and the input centring folded into the weights.

        Both are constants for a stream: folded, they cost nothing per frame
        (measured: 1.5 ms of a 2-pass frame at 256x512 went on them).
        """
        out = copy.deepcopy(self).eval()
        value = crf_input(crf)
        with torch.no_grad():
            layers = [out.project_in, *out.encoder, *out.decoder]
            for conv, offset in zip(layers, out.crf_bias):
                conv.bias.add_(value * offset)
            out.project_out.bias.add_(value * out.crf_bias_out)
            if out.config.input_kernel == 1:
                # project_in(2u - 1) = (2W) u + (b - W 1): exact for a 1x1 convolution (a 3x3 one pads with
                # zeros, so its border would differ: it keeps the centring as a step of its own).
                weight = out.project_in.weight
                out.project_in.bias.sub_(weight.sum(dim=(1, 2, 3)))
                weight.mul_(2.0)
                out.centred = False
        out.folded = True
        return out

    def encode_lowres(self, low: torch.Tensor, size: tuple[int, int]) -> torch.Tensor | None:
        """f(upscale(low)) with pixel_unshuffle(upscale(low)) as one grouped convolution, where the stream's
        scale is the factor.

        Bicubic upsampling by the factor followed by unshuffling is linear and
        shift-invariant on the low-res grid: each cell is a 5x5 filter of the
        low-res pixels (PyTorch's kernel, edges replicated as it does), equal
        to the two steps to 3e-7 and 0.7-1 ms faster at 256x512. None for
        other scales.
        """
        f = self.config.factor
        if (low.shape[-2] * f, low.shape[-1] * f) != tuple(size):
            return None
        weight = _upscale_cells_weight(f, low.device, low.dtype)
        cells = F.conv2d(F.pad(low, (2, 2, 2, 2), mode="replicate"), weight, groups=3).clamp_(0.0, 1.0)
        return self._features(cells)


@functools.lru_cache(maxsize=8)
def _upscale_cells_weight(factor: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(3 factor^2, 1, 5, 5): the filter that takes low-res pixels to the cells of their bicubic upsampling."""
    with torch.inference_mode(False):
        m = bicubic_matrix(32, 32 * factor, dtype=torch.float64)  # any length: the interior is shift-invariant
        taps = torch.stack([m[14:19, 16 * factor + p] for p in range(factor)])  # (factor, 5) around input 16
        cell = torch.einsum("yk,xl->yxkl", taps, taps).reshape(factor * factor, 5, 5)
        return cell.repeat(3, 1, 1).unsqueeze(1).to(device=device, dtype=dtype)


def branch_name(scale: int) -> str:
    return f"x{scale}"


def nearest_scale(scales: tuple[int, ...], scale: int) -> int:
    """The scale in ``scales`` nearest ``scale`` (in octaves; the smaller on a tie)."""
    return min(scales, key=lambda s: (abs(math.log2(s) - math.log2(max(scale, 1))), s))


class SRNet(nn.Module):
    """One `SRBranch` per scale in ``config.scales``; a stream uses the branch for its scale."""

    def __init__(self, config: SRConfig) -> None:
        super().__init__()
        self.config = config
        self.branches = nn.ModuleDict({branch_name(s): SRBranch(config) for s in config.scales})

    def branch(self, scale: int) -> SRBranch:
        """The branch for ``scale``, or for the nearest scale it has (a warning says so)."""
        nearest = nearest_scale(self.config.scales, scale)
        if nearest != scale:
            log.warning("this sr model has no branch for scale %d; using its scale-%d branch", scale, nearest)
        return self.branches[branch_name(nearest)]

    def forward(self, x: torch.Tensor, scale: int = 4) -> torch.Tensor:
        return self.branch(scale)(x)


@register
class SRArchitecture(Architecture):
    name = "sr"
    payload = "frames"
    config_type = SRConfig
    summary = "a residual super-resolution network: generalises to video it has not seen; fine-tunes from a base"
    presets = PRESETS
    default_preset = "sr"
    objectives = ("restore",)
    # One pass is its trained operation; a second costs about 0.2 dB (module doc).
    default_iterations = 1
    # Its output already agrees with the received frame (auto never back-projected on the talking head's
    # held-out tail); always back-projecting cost 1 dB there, since it copies in the payload's coding noise.
    default_back_project = "never"
    adapts = True

    def build(self, config: SRConfig) -> SRNet:
        return SRNet(config)

    def size_multiple(self, config: SRConfig) -> int:
        return config.factor

    def for_inference(self, model: nn.Module, scale: int = 4, crf: int = 0) -> nn.Module:
        return model.branch(scale).specialised(crf)

    def stream_keys(self, config: SRConfig, scale: int, keys: list[str]) -> list[str]:
        # A stream runs one branch; a delta leaves the others at the base's weights (fine-tuned on all four
        # scales, the talking head's delta is about 100 KiB; one branch of it, 26).
        prefix = f"branches.{branch_name(nearest_scale(config.scales, scale))}."
        return [k for k in keys if k.startswith(prefix)]

    def training_batch(self, data: Examples, objective: str, batch_size: int, generator: torch.Generator,
                       step: int) -> Batch:
        # One (scale, crf) per step, in turn: each step trains one branch at one quality, the same on every rank.
        scale = data.scales[step % len(data.scales)]
        crf = data.crfs[(step // len(data.scales)) % len(data.crfs)]
        batch = data.crops(batch_size, generator, scale, crf)
        fixed = max(1, round(batch_size * FIXED_POINT_SHARE))
        return Batch(torch.cat([batch.inputs, batch.targets[:fixed]]),
                     torch.cat([batch.targets, batch.targets[:fixed]]), scale=scale, crf=batch.crf)

    def training_loss(self, model: nn.Module, batch: Batch, objective: str) -> tuple[torch.Tensor, torch.Tensor]:
        net = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        branch = net.branch(batch.scale)
        branch.crf = crf_input(batch.crf)
        # Through the wrapper when there is one, so data-parallel training averages the gradients.
        output = model(batch.inputs, batch.scale)
        mse = F.mse_loss(output, batch.targets)
        return mse, mse

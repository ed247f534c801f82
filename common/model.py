"""The video-specific autoencoder of Wang, Ramanan and Bansal (section 3).

Encoder: six 5x5 stride-2 convolutions, each with BatchNorm and ReLU, so the
latent code is 64x smaller than the frame on each side. Decoder: six 4x4
stride-2 transposed convolutions, BatchNorm and ReLU on all but the last.
There are no skip connections: the latent code must hold everything, which
is what makes reprojection onto the video's manifold work. The network is
fully convolutional and runs at any size whose sides are multiples of 64.

Frames go in and come out as float tensors in [0, 1], shape (N, 3, H, W).

It memorises: its 12k x H/64 x W/64 code holds fewer numbers than a
low-res frame at scale 4, so frames it never saw are snapped to ones it did
(README, "Unseen content"). It is the best choice for a video it can be
trained on; `vsa.common.srnet` is the one for unseen video.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .examples import Batch, Examples
from .registry import Architecture, FrameModel, register
from .resample import consistent

DOWNSAMPLE = 64
# Channel multipliers of the six encoder layers; the latent has 12k channels
# as in the paper (768 for k=64).
ENCODER_MULTIPLIERS = (1, 2, 4, 8, 8, 12)


@dataclass(frozen=True)
class AEConfig:
    """Everything needed to rebuild the network; stored in every bundle."""

    k: int = 8
    """Width of the first encoder layer; every other width scales with it."""
    preset: str = "fast"

    @property
    def latent_channels(self) -> int:
        return ENCODER_MULTIPLIERS[-1] * self.k

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AEConfig":
        k = data.get("k")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 256:
            raise ValueError(f"model config has an invalid width k={k!r}")
        preset = data.get("preset", "custom")
        return cls(k=k, preset=str(preset))


# k was chosen by measurement (README, "Presets"): `fast` is the widest
# model that reprojects 256x512 twice within a 30 fps budget on a 2-core CPU.
PRESETS: dict[str, AEConfig] = {
    "tiny": AEConfig(k=4, preset="tiny"),
    "fast": AEConfig(k=8, preset="fast"),
    "large": AEConfig(k=16, preset="large"),
    "paper": AEConfig(k=64, preset="paper"),
}


def preset(name: str) -> AEConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def _encoder_channels(k: int) -> list[int]:
    return [3] + [m * k for m in ENCODER_MULTIPLIERS]


class Encoder(nn.Sequential):
    def __init__(self, k: int) -> None:
        channels = _encoder_channels(k)
        layers: list[nn.Module] = []
        for cin, cout in zip(channels[:-1], channels[1:]):
            layers += [
                nn.Conv2d(cin, cout, kernel_size=5, stride=2, padding=2, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


class Decoder(nn.Sequential):
    def __init__(self, k: int) -> None:
        channels = _encoder_channels(k)[::-1]  # 12k, 8k, 8k, 4k, 2k, k, 3
        layers: list[nn.Module] = []
        last = len(channels) - 2
        for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:])):
            if i < last:
                layers += [
                    nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True),
                ]
            else:
                # The output layer is linear: a ReLU or BatchNorm here would
                # clip or renormalise the colours.
                layers.append(nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1))
        super().__init__(*layers)


class Autoencoder(FrameModel):
    """f (encode) and g (decode) of the paper; forward is g(f(x))."""

    def __init__(self, config: AEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.k)
        self.decoder = Decoder(config.k)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> latent (N, 12k, H/64, W/64)."""
        check_size(x.shape[-2], x.shape[-1])
        return self.encoder(x * 2.0 - 1.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> frames; unclamped, so training sees the true error."""
        return self.decoder(z) * 0.5 + 0.5


def check_size(height: int, width: int) -> None:
    if height % DOWNSAMPLE or width % DOWNSAMPLE or height <= 0 or width <= 0:
        raise ValueError(f"frame size {height}x{width} is not a multiple of {DOWNSAMPLE} on both sides")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fuse_batchnorm(model: Autoencoder) -> Autoencoder:
    """An eval-mode copy of ``model`` with each BatchNorm folded into the convolution before it."""
    fused = copy.deepcopy(model).eval()
    for name in ("encoder", "decoder"):
        out: list[nn.Module] = []
        for layer in getattr(fused, name):
            if isinstance(layer, nn.BatchNorm2d) and out and isinstance(out[-1], (nn.Conv2d, nn.ConvTranspose2d)):
                conv = out.pop()
                out.append(fuse_conv_bn_eval(conv, layer, transpose=isinstance(conv, nn.ConvTranspose2d)))
            else:
                out.append(layer)
        setattr(fused, name, nn.Sequential(*out))
    return fused


# --- training ----------------------------------------------------------------------------------

MIN_FACTOR, MAX_FACTOR = 2.0, 16.0
MAX_NOISE = 0.02


def degrade(clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Receiver-like inputs: random downscale, noise, 8-bit rounding, bicubic upscale.

    Returns the upsampled inputs and, per frame, the low-res frame they came from.
    """
    h, w = clean.shape[-2:]
    out = torch.empty_like(clean)
    lows = []
    for i in range(clean.shape[0]):
        u = torch.rand(2, generator=generator).tolist()
        # Log-uniform so that every octave of scale gets the same attention.
        factor = math.exp(math.log(MIN_FACTOR) + u[0] * (math.log(MAX_FACTOR) - math.log(MIN_FACTOR)))
        size = (max(1, round(h / factor)), max(1, round(w / factor)))
        low = F.interpolate(clean[i : i + 1], size=size, mode="bicubic", antialias=True, align_corners=False)
        noise = torch.randn(low.shape, generator=generator) * (u[1] * MAX_NOISE)
        low = (low + noise.to(low.device)).clamp(0, 1).mul(255).round().div(255)
        lows.append(low)
        out[i : i + 1] = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return out, lows


@register
class AutoencoderArchitecture(Architecture):
    """The paper's video-specific autoencoder: trained on one video, it reprojects that video's frames."""

    name = "ae"
    payload = "frames"
    config_type = AEConfig
    summary = "the paper's video-specific autoencoder (best on a video it was trained on)"
    presets = PRESETS
    default_preset = "fast"
    # Measured (README, "Results"): reconstruct beat restore on every seen-frame comparison.
    objectives = ("reconstruct", "restore")
    default_iterations = 2
    # channels_last is markedly faster for these convolutions on a CPU.
    memory_format = torch.channels_last

    def build(self, config: AEConfig) -> Autoencoder:
        return Autoencoder(config)

    def size_multiple(self, config: AEConfig) -> int:
        return DOWNSAMPLE

    def for_inference(self, model: nn.Module, scale: int = 4, crf: int = 0) -> nn.Module:
        # Folding BatchNorm into the convolutions saves a pass over every activation.
        return fuse_batchnorm(model).to(memory_format=self.memory_format)

    def training_batch(self, data: Examples, objective: str, batch_size: int, generator: torch.Generator,
                       step: int) -> Batch:
        clean = data.whole_frames(batch_size, generator)
        if objective == "restore":
            inputs, lows = degrade(clean, generator)
            return Batch(inputs, clean, lows)
        return Batch(clean, clean)

    def training_loss(self, model: nn.Module, batch: Batch, objective: str) -> tuple[torch.Tensor, torch.Tensor]:
        output = model(batch.inputs)
        mse = F.mse_loss(output, batch.targets)
        if batch.lows is None:
            return mse, mse
        # restore also scores the back-projected output, so the network learns the high frequencies
        # that complement the received low-res frame.
        fused = torch.cat([consistent(output[i : i + 1], low) for i, low in enumerate(batch.lows)])
        return mse + F.mse_loss(fused, batch.targets), mse

"""The video-specific autoencoder of Wang, Ramanan and Bansal (section 3).

Encoder: six 5x5 stride-2 convolutions, each with BatchNorm and ReLU, so the
latent code is 64x smaller than the frame on each side. Decoder: six 4x4
stride-2 transposed convolutions, BatchNorm and ReLU on all but the last.
There are no skip connections: the latent code must hold everything, which
is what makes reprojection onto the video's manifold work. The network is
fully convolutional and runs at any size whose sides are multiples of 64.

Frames go in and come out as float tensors in [0, 1], shape (N, 3, H, W).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

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
        if not isinstance(k, int) or not 1 <= k <= 256:
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


class Autoencoder(nn.Module):
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def check_size(height: int, width: int) -> None:
    if height % DOWNSAMPLE or width % DOWNSAMPLE or height <= 0 or width <= 0:
        raise ValueError(f"frame size {height}x{width} is not a multiple of {DOWNSAMPLE} on both sides")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

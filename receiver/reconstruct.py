"""Spatial and temporal super-resolution with a video-specific autoencoder.

Spatial: *reprojection* (the paper's eq. 5-6). The low-res frame is
upsampled bicubically and pushed through decoder(encoder(.)) ``iterations``
times, which pulls it onto the manifold of frames the autoencoder learned.

By default each pass is followed by a back-projection step
(`vsa.common.resample.consistent`): the output keeps the autoencoder's high
frequencies but takes its low frequencies from the received frame, so the
result never contradicts what was actually sent. Alternating the two
projections (onto the video's manifold, then onto the frames consistent with
the low-res observation) is what gives vsa its margin over bicubic at
moderate scales; ``consistency=False`` is the paper's plain eq. 6.

Temporal: frames that were not sent are decoded from linearly interpolated
latent codes (eq. 8) of their two sent neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vsa.common.model import Autoencoder
from vsa.common.resample import consistent, upscale


@dataclass
class Reprojected:
    frames: torch.Tensor  # (N, 3, H, W) in [0, 1]
    latents: torch.Tensor  # (N, C, H/64, W/64): codes of the last pass, for interpolation


class Reconstructor:
    """Batched reprojection and latent interpolation on one device."""

    def __init__(
        self,
        model: Autoencoder,
        size: tuple[int, int],
        device: torch.device | str = "cpu",
        iterations: int = 2,
        consistency: bool = True,
    ) -> None:
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}")
        self.device = torch.device(device)
        self.size = size
        self.iterations = iterations
        self.consistency = consistency
        # channels_last is markedly faster for these convolutions on CPU.
        self.model = model.to(self.device).eval().to(memory_format=torch.channels_last)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def reproject(self, lowres: torch.Tensor, iterations: int | None = None) -> Reprojected:
        """Reconstruct full-size frames from (N, 3, h, w) low-res frames in [0, 1]."""
        n = self.iterations if iterations is None else iterations
        low = self._prepare(lowres)
        x = upscale(low, self.size)
        z = None
        for _ in range(n):
            z = self.model.encode(x)
            x = self.model.decode(z)
            if self.consistency:
                x = consistent(x, low)
            x = x.clamp_(0.0, 1.0)
        assert z is not None
        return Reprojected(x, z)

    @torch.inference_mode()
    def interpolate(self, z0: torch.Tensor, z1: torch.Tensor, alphas: list[float]) -> torch.Tensor:
        """Decode g((1 - a) z0 + a z1) for each a; z0 and z1 are single codes (1, C, h, w)."""
        if not alphas:
            return torch.empty(0, 3, *self.size, device=self.device)
        a = torch.tensor(alphas, dtype=z0.dtype, device=self.device).view(-1, 1, 1, 1)
        z = (1.0 - a) * z0.to(self.device) + a * z1.to(self.device)
        return self.model.decode(z.contiguous(memory_format=torch.channels_last)).clamp_(0.0, 1.0)

    @torch.inference_mode()
    def bicubic(self, lowres: torch.Tensor) -> torch.Tensor:
        """The baseline: bicubic upsampling of the same low-res frames."""
        return upscale(self._prepare(lowres), self.size)

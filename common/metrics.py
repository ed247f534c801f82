"""Image quality metrics on (N, 3, H, W) float tensors in [0, 1]."""

from __future__ import annotations

import torch
from pytorch_msssim import ssim as _ssim


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame mean squared error, shape (N,)."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Per-frame PSNR in dB, shape (N,). Identical frames give +inf."""
    return 10.0 * torch.log10(peak**2 / mse(a, b))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM (Gaussian window 11, sigma 1.5), shape (N,)."""
    return _ssim(a.float().clamp(0, 1), b.float().clamp(0, 1), data_range=1.0, size_average=False)


def mean_psnr(values: torch.Tensor) -> float:
    """Mean of per-frame PSNRs, with lossless frames capped at 100 dB so one cannot make the mean infinite."""
    return float(values.clamp(max=100.0).mean())

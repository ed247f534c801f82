"""Image quality metrics on (N, 3, H, W) float tensors in [0, 1]."""

from __future__ import annotations

import math

import torch
from pytorch_msssim import ms_ssim as _ms_ssim
from pytorch_msssim import ssim as _ssim


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame mean squared error, shape (N,)."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Per-frame PSNR in dB, shape (N,). Identical frames give +inf."""
    return 10.0 * torch.log10(peak**2 / mse(a, b))


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error on [0, 1] images (a training loss), capped at 120 dB."""
    return -10.0 * math.log10(max(mse, 1e-12))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM (Gaussian window 11, sigma 1.5), shape (N,)."""
    return _ssim(a.float().clamp(0, 1), b.float().clamp(0, 1), data_range=1.0, size_average=False)


def mean_psnr(values: torch.Tensor) -> float:
    """Mean of per-frame PSNRs, with lossless frames capped at 100 dB so one cannot make the mean infinite."""
    return float(values.clamp(max=100.0).mean())


def luma(frames: torch.Tensor) -> torch.Tensor:
    """BT.601 luma Y of (N, 3, H, W) RGB in [0, 1], shape (N, 1, H, W), the plane codecs are usually judged on."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=frames.device).view(1, 3, 1, 1)
    return (frames.float() * weights).sum(1, keepdim=True)


def psnr_y(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR of the luma plane, shape (N,)."""
    return psnr(luma(a), luma(b))


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame MS-SSIM (five scales, standard weights), shape (N,).

    The standard 11-pixel window needs sides over 160 pixels; smaller frames
    use the largest odd window that fits (pytorch-msssim asserts otherwise),
    and frames under 33 pixels give NaN rather than an error.
    """
    side = min(a.shape[-2:])
    window = _WINDOW
    while window >= 3 and side <= (window - 1) * 16:
        window -= 2
    if window < 3:
        return torch.full((a.shape[0],), float("nan"))
    return _ms_ssim(a.float().clamp(0, 1), b.float().clamp(0, 1), data_range=1.0, size_average=False,
                    win_size=window)


_WINDOW = 11

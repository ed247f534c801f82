"""Spatial resampling shared by the sender (downscale) and receiver (upscale).

Both ends must agree on these exactly: the bicubic baseline and the first
reprojection input are the same upsampled frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def downscale(frames: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 3, H/scale, W/scale) with an antialiasing filter."""
    if scale == 1:
        return frames
    h, w = frames.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"scale {scale} does not divide frame size {h}x{w}")
    return F.interpolate(frames, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)


def upscale(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic upsampling to (height, width), clamped to [0, 1]."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=size, mode="bicubic", align_corners=False).clamp_(0.0, 1.0)


def to_tensor(frames_uint8) -> torch.Tensor:
    """(N, H, W, 3) uint8 array or tensor -> (N, 3, H, W) float in [0, 1]."""
    t = torch.as_tensor(frames_uint8)
    if t.ndim == 3:
        t = t[None]
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8(frames: torch.Tensor):
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8 numpy array."""
    return frames.detach().clamp(0, 1).mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def consistent(frames: torch.Tensor, lowres: torch.Tensor) -> torch.Tensor:
    """Back-project ``frames`` onto the set of frames whose downscale is ``lowres``.

    Replaces the low-frequency band of ``frames`` by that of the received
    low-res frame, keeping the high frequencies the autoencoder supplied
    (one step of Irani and Peleg's iterative back-projection). The result is
    not clamped, so training sees the true error.
    """
    size = tuple(frames.shape[-2:])
    low_size = tuple(lowres.shape[-2:])
    if low_size == size:
        return lowres.expand_as(frames).clone()
    down = F.interpolate(frames, size=low_size, mode="bicubic", antialias=True, align_corners=False)
    return frames + F.interpolate(lowres - down, size=size, mode="bicubic", align_corners=False)

"""Resampling: the matrix form of bicubic upsampling is PyTorch's own kernel, and back-projection agrees."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vsa.common.resample import back_projection, downscale, upscale


@pytest.mark.parametrize("low, size", [((64, 128), (256, 512)), ((32, 48), (256, 384)), ((5, 7), (13, 29)),
                                       ((64, 64), (64, 128))])
def test_upscale_matches_torch_bicubic_including_the_edges(low, size):
    frames = torch.rand(2, 3, *low, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(frames, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.allclose(upscale(frames, size), expected, atol=1e-5)


@pytest.mark.parametrize("size, scale", [((256, 512), 4), ((128, 192), 16), ((96, 96), 2)])
def test_downscale_matches_torch_antialiased_bicubic(size, scale):
    frames = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    expected = F.interpolate(frames, size=(size[0] // scale, size[1] // scale), mode="bicubic", antialias=True,
                             align_corners=False)
    assert torch.allclose(downscale(frames, scale), expected, atol=1e-5)


def test_back_projection_restores_the_low_res_frame(small_frames):
    from vsa.common.resample import to_tensor

    frames = to_tensor(small_frames[:2])
    low = downscale(frames, 4)
    blurred = upscale(low, frames.shape[-2:])
    shifted = (blurred + 0.1).clamp(0, 1)  # wrong in the low frequencies
    correction, agreement = back_projection(shifted, low)
    fixed = shifted + correction
    # The low band now matches what was received, far better than before.
    before = (downscale(shifted, 4) - low).abs().mean()
    after = (downscale(fixed, 4) - low).abs().mean()
    assert after < before / 5
    assert (agreement < 25).all()


def test_a_matrix_first_built_in_inference_mode_still_serves_training():
    """The receiver builds the cached matrices under inference_mode; a trainer in the same process
    (vsa eval decodes one clip, then trains on the next) must still backpropagate through them."""
    from vsa.common.resample import bicubic_matrix, consistent

    bicubic_matrix.cache_clear()
    with torch.inference_mode():
        upscale(torch.rand(1, 3, 11, 13), (44, 52))
    frames = torch.rand(1, 3, 44, 52, requires_grad=True)
    consistent(frames, torch.rand(1, 3, 11, 13)).sum().backward()
    assert frames.grad is not None and torch.isfinite(frames.grad).all()

import math

import pytest
import torch

from vsa.common.metrics import mean_psnr, psnr, ssim
from vsa.common.resample import consistent, downscale, to_tensor, upscale


def test_psnr_known_value():
    a = torch.zeros(1, 3, 8, 8)
    b = torch.full((1, 3, 8, 8), 0.1)
    assert float(psnr(a, b)) == pytest.approx(20.0)
    assert math.isinf(float(psnr(a, a)))
    assert mean_psnr(torch.tensor([float("inf"), 30.0])) == pytest.approx(65.0)


def test_ssim_orders_real_degradations(small_frames):
    x = to_tensor(small_frames[:4])
    mild = upscale(downscale(x, 2), x.shape[-2:])
    strong = upscale(downscale(x, 8), x.shape[-2:])
    assert torch.allclose(ssim(x, x), torch.ones(4), atol=1e-4)
    assert (ssim(mild, x) > ssim(strong, x)).all()


def test_back_projection_makes_the_downscale_match(small_frames):
    x = to_tensor(small_frames[:2])
    low = downscale(x, 4)
    guess = torch.full_like(x, 0.5)
    fixed = consistent(guess, low)
    before = (downscale(guess, 4) - low).abs().mean()
    after = (downscale(fixed, 4) - low).abs().mean()
    assert after < before / 5

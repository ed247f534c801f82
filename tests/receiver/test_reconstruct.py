import pytest
import torch

from vsa.common import registry
from vsa.common.metrics import psnr
from vsa.common.resample import back_projection, downscale, to_tensor, upscale
from vsa.receiver.reconstruct import (AUTO_DAMP_DB, AUTO_FIX_DB, AUTO_MIN_DETAIL, AUTO_TRUST_DB, Reconstructor,
                                      auto_detail, auto_weight)


def test_reproject_shapes_and_range(trained_bundle, small_frames):
    rec = Reconstructor(trained_bundle[1].build(), (128, 192), iterations=2)
    low = downscale(to_tensor(small_frames[:3]), 4)
    out = rec.reproject(low)
    assert out.frames.shape == (3, 3, 128, 192) and out.latents.shape == (3, 72, 2, 3)
    assert out.frames.min() >= 0 and out.frames.max() <= 1


def test_back_projection_keeps_the_received_low_frequencies(trained_bundle, small_frames):
    model = trained_bundle[1].build()
    low = downscale(to_tensor(small_frames[:4]), 4)
    plain = Reconstructor(model, (128, 192), back_project="never").reproject(low).frames
    fused = Reconstructor(model, (128, 192), back_project="always").reproject(low).frames
    assert float(psnr(downscale(fused, 4), low).mean()) > float(psnr(downscale(plain, 4), low).mean()) + 3
    # This briefly trained model explains the frames poorly, so auto back-projects them fully and
    # keeps only part of the detail it adds to bicubic upscaling.
    _, agreement = back_projection(plain, low)
    assert (agreement < AUTO_FIX_DB).all()
    auto = Reconstructor(model, (128, 192), back_project="auto").reproject(low).frames
    bicubic = upscale(low, (128, 192))
    keep = auto_detail(agreement).view(-1, 1, 1, 1)
    assert (keep < 1).all()
    assert torch.allclose(auto, (bicubic + keep * (fused - bicubic)).clamp(0, 1), atol=1e-5)


def test_auto_weight_trusts_frames_the_model_explains():
    weights = auto_weight(torch.tensor([40.0, AUTO_TRUST_DB, 32.0, AUTO_FIX_DB, 15.0]))
    assert weights.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    detail = auto_detail(torch.tensor([40.0, AUTO_FIX_DB, (AUTO_FIX_DB + AUTO_DAMP_DB) / 2, AUTO_DAMP_DB, 10.0]))
    assert detail.tolist() == pytest.approx([1.0, 1.0, (1 + AUTO_MIN_DETAIL) / 2, AUTO_MIN_DETAIL, AUTO_MIN_DETAIL])
    with pytest.raises(ValueError, match="back_project"):
        sr = registry.get("sr")
        Reconstructor(sr.build(sr.preset("sr-tiny")), (64, 64), back_project="sometimes")
    with pytest.raises(ValueError, match="registry"):
        Reconstructor(torch.nn.Identity(), (64, 64))  # a network no architecture knows


def test_interpolation_end_points_are_the_decoded_codes(trained_bundle, small_frames):
    rec = Reconstructor(trained_bundle[1].build(), (128, 192), iterations=1, back_project="never")
    out = rec.reproject(downscale(to_tensor(small_frames[[0, 8]]), 4))
    z0, z1 = out.latents[0:1], out.latents[1:2]
    frames = rec.interpolate(z0, z1, [0.0, 0.5, 1.0])
    assert torch.allclose(frames[0], out.frames[0], atol=1e-5)
    assert torch.allclose(frames[2], out.frames[1], atol=1e-5)
    middle_to_ends = min(float((frames[1] - frames[0]).abs().mean()), float((frames[1] - frames[2]).abs().mean()))
    assert middle_to_ends > 0


def test_projection_holds_the_codes_reprojection_ends_with(trained_bundle, small_frames):
    """`project` then `render` is `reproject`, split where interpolation can start; each pass is the
    paper's decoder(encoder(.)), so two passes are one pass applied to the first pass's output."""
    rec = Reconstructor(trained_bundle[1].build(), (128, 192), back_project="never")
    low = downscale(to_tensor(small_frames[:2]), 4)
    projection = rec.project(low, 2)
    whole = rec.reproject(low, 2)
    assert torch.equal(projection.latents, whole.latents)
    assert torch.allclose(rec.render(projection).frames, whole.frames, atol=1e-6)
    first = rec.reproject(low, 1).frames
    with torch.inference_mode():
        again = rec.model.decode(rec.model.encode(first.contiguous(memory_format=torch.channels_last))).clamp(0, 1)
    assert torch.allclose(again, whole.frames, atol=1e-5)
    with pytest.raises(ValueError, match="iterations"):
        rec.project(low, 0)

"""The INR-V network: rendering at any size and frame count, and its bundle."""

from __future__ import annotations

import pytest
import torch

from vsa.common import bundle as bundle_mod
from vsa.common.inrv import INRV, INRVConfig, clip_spans, encode_positions, grid
from vsa.sender.train_inrv import clip_psnr, split_clips


@pytest.mark.parametrize("height,width,frames", [(64, 64, 16), (37, 91, 5), (128, 96, 32), (1, 1, 1)])
def test_render_has_the_asked_shape_and_range(height, width, frames):
    model = INRV(INRVConfig(code_dim=8, width=16, hyper_width=16)).eval()
    with torch.no_grad():
        out = model.render(torch.randn(3, 8), height, width, frames, chunk=1000)
    assert out.shape == (3, frames, 3, height, width)
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_render_at_given_times_samples_the_same_continuous_clip():
    model = INRV(INRVConfig(code_dim=8, width=16, hyper_width=16)).eval()
    code = torch.randn(1, 8)
    with torch.no_grad():
        every = model.render(code, 20, 24, 8)
        some = model.render(code, 20, 24, grid(1, 1, 8)[:, 0, 0, 2][[1, 5]])
    assert torch.allclose(some[0], every[0, [1, 5]], atol=1e-6)


def test_positional_encoding_size_matches_the_config():
    config = INRVConfig(xy_freqs=5, t_freqs=3)
    assert encode_positions(torch.zeros(2, 7, 3), 5, 3).shape == (2, 7, config.input_dim)


def test_clips_cover_every_frame_once():
    assert clip_spans(40, 16) == [(0, 16), (16, 32), (32, 40)]
    assert clip_spans(32, 16) == [(0, 16), (16, 32)]


def test_bundle_round_trip_keeps_codes_on_disk_but_off_the_wire(inrv_bundle, inrv_frames, tmp_path):
    path, bundle = inrv_bundle
    loaded = bundle_mod.load(path)
    assert loaded.kind == "inrv" and "codes.mu" in loaded.state_dict
    wire = bundle_mod.to_wire(loaded)
    shipped = bundle_mod.from_wire(wire, bundle_mod.sha256(wire))
    assert shipped.kind == "inrv" and not any(k.startswith("codes.") for k in shipped.state_dict)
    # int8 weights render the clips within 0.3 dB of fp32.
    clips = split_clips(inrv_frames, bundle.config.clip_frames)
    codes = loaded.state_dict["codes.mu"]
    full, quantised = loaded.build(), shipped.build()
    for i, clip in enumerate(clips):
        assert abs(clip_psnr(full, codes[i], clip) - clip_psnr(quantised, codes[i], clip)) < 0.3


def test_an_inrv_bundle_with_a_bad_config_is_refused(inrv_bundle, tmp_path):
    path, bundle = inrv_bundle
    data = torch.load(path, weights_only=True)
    data["config"]["width"] = -3
    data["sha256"] = bundle_mod.content_digest({k: v for k, v in data.items() if k != "sha256"})
    bad = tmp_path / "bad.pt"
    torch.save(data, bad)
    with pytest.raises(bundle_mod.BundleError, match="invalid width"):
        bundle_mod.load(str(bad))

"""Online adaptation in file mode: reproducible, counted, and better than the frozen model it started from."""

import pytest

from vsa.common import bases
from vsa.common import bundle as bundle_mod
from vsa.sender.adapt import HORIZON, OnlineAdapter, payload_gain
from vsa.sender.adapt_options import AdaptSettings
from vsa.sender.stream import StreamSettings
from vsa.tools.filemode import decode_file, encode_file

SIZE = (128, 192)
FAST = AdaptSettings(every=0.5, steps=30, share=0.3)
"""Small and frequent updates, so the bundled clip's 3.6 s see several (a step budget: reproducible)."""


def _encode(clip_path, model, out, adapt=FAST, seed=0):
    settings = StreamSettings(scale=4, crf=20)
    adapt = None if adapt is None else AdaptSettings(**{**adapt.__dict__, "seed": seed})
    return encode_file(clip_path, model, str(out), settings, size=SIZE, adapt=adapt)


def test_encoding_with_adapt_is_deterministic_for_a_seed(clip_path, tmp_path):
    a = _encode(clip_path, None, tmp_path / "a.vsa", seed=3)
    b = _encode(clip_path, None, tmp_path / "b.vsa", seed=3)
    assert a.updates >= 1 and a.update_bytes > 0
    assert (tmp_path / "a.vsa").read_bytes() == (tmp_path / "b.vsa").read_bytes()


def test_adapting_beats_the_frozen_model_it_started_from(clip_path, sr_bundles, tmp_path):
    """A weak starting model (a small base trained for seconds): what the sender learns on the way shows."""
    path = sr_bundles[0]
    adapted = _encode(clip_path, path, tmp_path / "adapt.vsa")
    frozen = _encode(clip_path, path, tmp_path / "frozen.vsa", adapt=None)
    tail = (adapted.frames // 2, adapted.frames)
    a = decode_file(str(tmp_path / "adapt.vsa"), None, reference=clip_path, frame_range=tail)
    f = decode_file(str(tmp_path / "frozen.vsa"), None, reference=clip_path, frame_range=tail)
    assert a.updates["applied"] == adapted.updates >= 1 and a.updates["refused"] == 0
    assert a.updates["frames_off_version"] == 0 and f.updates["applied"] == 0
    # Every update byte is in the file, and within the share asked for.
    assert adapted.update_bytes <= 0.3 * (adapted.update_bytes + adapted.payload_bytes)
    # Measured +0.13 dB with one update: the gate counts only what is left of a 3.6 s clip, and the second
    # update of the clip's end (+0.28 dB in all) no longer pays for its bits.
    assert a.metrics["all"]["vsa_psnr"] > f.metrics["all"]["vsa_psnr"] + 0.08


def test_an_update_must_beat_what_its_bits_would_buy_the_payload():
    # 1 KB spread over the horizon on top of a 20 kbps payload: about a tenth of a dB's worth.
    assert 0.05 < payload_gain(1000, 20_000) < 0.2
    assert payload_gain(1000, 200_000) < payload_gain(1000, 20_000)
    assert payload_gain(1000, 0) == 0.0


def test_a_stream_of_known_length_counts_an_update_over_what_is_left(sr_bundles):
    bundle = bundle_mod.load(sr_bundles[0])
    adapter = OnlineAdapter(bundle, 4, "vp9", 30, 30.0, AdaptSettings(), frame_count=300)
    assert adapter.horizon(0) == HORIZON
    assert adapter.horizon(270) == pytest.approx(1.0)
    assert adapter.horizon(300) == 0
    camera = OnlineAdapter(bundle, 4, "vp9", 30, 30.0, AdaptSettings())
    assert camera.horizon(10**6) == HORIZON
    # The same bytes spread over one second would buy the payload far more than over the horizon.
    assert payload_gain(1000, 20_000, adapter.horizon(270)) > 5 * payload_gain(1000, 20_000)


def test_codes_models_cannot_adapt(clip_path, inrv_bundle, tmp_path):
    with pytest.raises(ValueError, match="cannot adapt"):
        _encode(clip_path, inrv_bundle[0], tmp_path / "x.vsa")


def test_the_gate_margin_follows_how_far_held_out_gains_missed(sr_bundles):
    from vsa.sender.adapt import MIN_MARGIN_DB, NOISE_PRIOR_DB, NOISE_ROUNDS

    adapter = OnlineAdapter(bundle_mod.load(sr_bundles[0]), 4, "vp9", 30, 30.0, AdaptSettings())
    assert adapter.margin() == pytest.approx(NOISE_PRIOR_DB)
    # Gains that turned out as measured shrink the margin to its floor; gains that were noise widen it.
    adapter.misses.extend([0.001, -0.002])
    assert adapter.margin() == pytest.approx(MIN_MARGIN_DB)
    adapter.misses.extend([0.3, -0.3] * NOISE_ROUNDS)
    assert adapter.margin() == pytest.approx(0.3)

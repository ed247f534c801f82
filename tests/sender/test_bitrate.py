"""Holding a target bitrate: the keeper as a function of byte counts, the ladder, and a real file."""

import math

import pytest

from vsa.sender.bitrate import (
    COST_MEASURE_S, CRF_RANGE, KEYFRAME_CROSSING_S, LIVE_CRF_FLOOR, BitrateKeeper, keyint_for,
)
from vsa.sender.ladder import DEFAULT_LADDER, choose, rung_kbps, settle
from vsa.sender.stream import StreamSettings
from vsa.tools.filemode import encode_file

FPS = 30.0


def _group(keeper: BitrateKeeper, pts: int, kbps: float, seconds: float = 2.0) -> int:
    """Send ``seconds`` of payload at ``kbps`` (plus 20-byte headers at 30 fps), then ask for the next crf."""
    keeper.sent(int(kbps * 1000 / 8 * seconds), int(20 * FPS * seconds))
    return keeper.next_crf(pts)


def test_the_keeper_lowers_the_quality_of_a_stream_over_its_target_and_raises_an_under_one():
    over = BitrateKeeper(20_000, FPS, "vp9", 30)
    assert over.next_crf(0) == 30
    assert _group(over, 60, 40.0) > 30
    under = BitrateKeeper(20_000, FPS, "vp9", 30)
    under.next_crf(0)
    assert _group(under, 60, 8.0) < 30
    on_target = BitrateKeeper(20_000, FPS, "vp9", 30)
    on_target.next_crf(0)
    assert abs(_group(on_target, 60, 20.0 - 20 * 8 * FPS / 1000) - 30) <= 1


def test_a_lower_target_forfeits_the_credit_a_quiet_stream_saved():
    keeper = BitrateKeeper(300_000, FPS, "vp9", 30)  # a live stream (no frame count) with a generous target
    keeper.next_crf(0)
    keeper.sent(int(100_000 / 8 * 4.0))  # 4 s at 100 kbps: credit, capped at 2 s of the target
    assert not keeper.behind(4.0)
    keeper.retarget(40_000, 4.0)  # the network fell
    keeper.sent(3_000)  # 24 kbit, 0.6 s of the new target, at once
    assert keeper.behind(4.0)  # the next frame waits, rather than spending credit the network no longer has
    rising = BitrateKeeper(40_000, FPS, "vp9", 30)
    rising.next_crf(0)
    rising.sent(int(20_000 / 8 * 2.0))
    rising.retarget(80_000, 2.0)  # a higher target keeps what was saved
    assert rising.debt_bits(2.0) < 0


def test_a_drain_sends_nothing_then_the_target_without_a_burst():
    keeper = BitrateKeeper(100_000, FPS, "vp9", 30)  # live
    keeper.next_crf(0)
    keeper.sent(int(50_000 / 8 * 2.0))  # 2 s at half the target: 100 kbit of credit
    keeper.drain(0.8, 2.0)  # a queue on the path: 0.8 s without a frame
    assert keeper.behind(2.0) and keeper.behind(2.79)
    keeper.retarget(50_000, 2.5)  # a report during the drain does not end it
    assert keeper.behind(2.79)
    assert not keeper.behind(2.81)
    # The credit is gone and nothing accrued during the drain: half a second later, a quarter second of the
    # target may have gone out, and the skip margin (`SKIP_DEBT_S`) half a second more.
    keeper.sent(int(50_000 / 8 * 0.75))
    assert not keeper.behind(3.3)
    keeper.sent(int(50_000 / 8 * 0.35))
    assert keeper.behind(3.3)


def test_a_target_that_moves_a_halving_starts_a_group_at_the_crf_for_it():
    keeper = BitrateKeeper(300_000, FPS, "vp9", 20)  # live
    assert keeper.next_crf(0) == 20
    keeper.sent(int(240_000 / 8 * 1.0))  # 1 s at 240 kbps at crf 20
    keeper.retarget(250_000, 1.0)  # a small move: the next group's crf is decided at its keyframe, as before
    assert not keeper.group_due and keeper.crf == 20
    keeper.retarget(30_000, 1.0)  # the link fell: 8 times less, 3 halvings, 12 crf steps each
    assert keeper.group_due and keeper.crf == 20 + round(12 * math.log2(240 / 27))
    crf = keeper.crf
    keeper.retarget(28_000, 1.1)  # another report before the new group began: the target barely moved, and the
    assert abs(keeper.crf - crf) <= 1  # crf with it (not a second shift of 38 for the same rate)
    assert keeper.next_crf(31) == keeper.crf and not keeper.group_due
    # A stream at the floor of the crf range, far under its target, is not restarted at every report.
    floor = BitrateKeeper(300_000, FPS, "vp9", CRF_RANGE["vp9"][0])
    floor.next_crf(0)
    floor.sent(int(120_000 / 8 * 1.0))
    floor.retarget(290_000, 1.0)
    assert not floor.group_due
    # Moving to a rung that costs half as much at the same crf counts: the same drop is one halving less.
    rung = BitrateKeeper(300_000, FPS, "vp9", 20)
    rung.next_crf(0)
    rung.sent(int(240_000 / 8 * 1.0))
    rung.rescaled(0.5)
    rung.retarget(30_000, 1.0)
    assert rung.crf == 20 + round(12 * math.log2(120 / 27))


def test_frames_sent_twice_take_a_new_target_crf_for_half_the_payload():
    """With forward error correction every frame goes out twice: the crf a target moves to is one halving's steps
    higher, and turning it on halves the payload's share, which starts a group at once when the crf must move that
    far. (For the whole share, twice the target went out, and a third of the frames were skipped to keep to it.)"""
    def crf_after(copies: int) -> int:
        keeper = BitrateKeeper(300_000, FPS, "vp9", 20)
        keeper.next_crf(0)
        keeper.sent(int(240_000 / 8 * 1.0))
        keeper.copies = copies
        keeper.retarget(120_000, 1.0)
        return keeper.crf

    assert crf_after(2) == crf_after(1) + 12 == 20 + round(12 * math.log2(240 / 54))
    keeper = BitrateKeeper(50_000, FPS, "vp9", 30)
    keeper.next_crf(0)
    keeper.sent(int(45_000 / 8 * 1.0))  # on target at crf 30
    keeper.retarget(50_000, 1.0)
    assert not keeper.group_due
    keeper.copies = 2  # FEC on
    keeper.retarget(50_000, 1.0)
    assert keeper.group_due and keeper.crf == 30 + round(12 * math.log2(45 / 22.5))


def test_live_keyframes_are_capped_by_the_target_and_the_crf_stops_at_the_live_floor():
    live = BitrateKeeper(60_000, FPS, "vp9", 30, live=True)
    assert live.keyframe_bytes == int(KEYFRAME_CROSSING_S * 60_000 / 8)
    live.retarget(30_000, 0.0)
    assert live.keyframe_bytes == int(KEYFRAME_CROSSING_S * 30_000 / 8)  # follows the target
    assert BitrateKeeper(60_000, FPS, "vp9", 30, frame_count=300).keyframe_bytes == 0  # a file crosses no link
    # A stream far under a large target: a file's crf goes to the codec's floor, a live one's stops at the
    # live floor (the bits better left unspent).
    crfs = {}
    for live in (False, True):
        keeper = BitrateKeeper(300_000, FPS, "vp9", 30, frame_count=0 if live else 3000, live=live)
        keeper.next_crf(0)
        for pts in range(60, 600, 60):
            crfs[live] = _group(keeper, pts, 20.0)
    assert crfs == {False: CRF_RANGE["vp9"][0], True: LIVE_CRF_FLOOR["vp9"]}


def _frames_at(keeper: BitrateKeeper, seconds: float, frame_bytes: int, send_every: int = 1) -> None:
    """``seconds`` of 30 fps from the keeper's group start, each frame ``frame_bytes``; only every
    ``send_every``-th sent, the others skipped for the budget."""
    start = keeper.history[-1][0] if keeper.history else 0.0
    for i in range(int(seconds * FPS)):
        if i % send_every:
            keeper.skipped(start + i / FPS)
        else:
            keeper.sent(frame_bytes, 20)


def test_frames_skipped_for_the_budget_do_not_hide_what_the_crf_costs():
    """A crf that costs 45 kbps against a 30 kbps target, held on budget by skipping a third of the frames:
    the next group's crf still rises (it read the rate sent, and never moved)."""
    keeper = BitrateKeeper(30_000, FPS, "vp9", 30, live=True)
    keeper.next_crf(0)
    _frames_at(keeper, 4.0, 45_000 // 8 // 30, send_every=3)  # 1 in 3 sent: 15 kbps went out
    crf = keeper.next_crf(120)
    assert crf > 30  # 45 kbps had every frame gone: over the target, so the quality falls
    plain = BitrateKeeper(30_000, FPS, "vp9", 30, live=True)
    plain.next_crf(0)
    plain.drain(4.0, 0.0)  # pausing for a queue to drain says nothing of the crf
    _frames_at(plain, 4.0, 15_000 // 8 // 30)
    assert plain.next_crf(120) <= 30


def test_a_rung_its_target_outgrows_is_starved_and_says_what_the_clip_costs():
    """At its crf floor a stride-4 stream delivers 25 kbps of a 54 kbps target: starved; and a clip that costs
    half the ladder's rate at the default crf says so."""
    keeper = BitrateKeeper(54_000, FPS, "vp9", CRF_RANGE["vp9"][0], live=True)
    keeper.finest = False
    keeper.next_crf(0)
    _frames_at(keeper, COST_MEASURE_S + 1, 25_000 // 8 // 30)
    now = COST_MEASURE_S + 1
    assert keeper.starved(now)
    # The ladder says this rung costs 20 kbps at crf 30: at crf 10 (20 steps, 1.67 halvings lower) 63 kbps.
    assert keeper.cost_ratio(20.0, now) == pytest.approx(25_000 / (20_000 * 2 ** (20 / 12)), rel=0.05)
    assert keeper.cost_ratio(200.0, now) == 0.25  # no further than MAX_COST_RATIO from the ladder
    fed = BitrateKeeper(30_000, FPS, "vp9", CRF_RANGE["vp9"][0], live=True)
    fed.finest = False
    fed.next_crf(0)
    _frames_at(fed, COST_MEASURE_S + 1, 25_000 // 8 // 30)
    assert not fed.starved(now)  # 25 of 30 kbps: the rung uses its target
    young = BitrateKeeper(54_000, FPS, "vp9", CRF_RANGE["vp9"][0], live=True)
    young.next_crf(0)
    assert not young.starved(1.0) and young.cost_ratio(20.0, 1.0) is None  # too soon to say


def test_the_keeper_counts_the_model_and_stays_within_the_codec_crf_range():
    # A 30 KiB model over a 10 s file takes 24.6 kbps of a 40 kbps target: the frames get the rest.
    keeper = BitrateKeeper(40_000, FPS, "h264", 20, fixed_bytes=30 * 1024, frame_count=300)
    assert keeper.stream_bps == pytest.approx(40_000 - 30 * 1024 * 8 / 10)
    keeper.next_crf(0)
    crf = 20
    for pts in range(60, 300, 60):
        crf = _group(keeper, pts, 500.0)
    assert crf == CRF_RANGE["h264"][1]
    with pytest.raises(ValueError, match="raise --kbps"):
        BitrateKeeper(20_000, FPS, "vp9", 30, fixed_bytes=30 * 1024, frame_count=300)
    with pytest.raises(ValueError, match="inter codec"):
        BitrateKeeper(20_000, FPS, "webp", 0)


def test_keyframes_come_often_enough_to_follow_a_target():
    assert keyint_for(30.0, 1, 60) == 60
    assert keyint_for(30.0, 4, 60) == 15
    assert keyint_for(30.0, 4, 60, live=True) == 150  # 20 s at most: live groups end when the crf must move
    assert keyint_for(30.0, 16, 60) == 8


def test_the_ladder_climbs_with_the_rate_and_keeps_to_the_model_scales():
    size = (192, 256)
    points = [choose(k, size, FPS) for k in (1, 10, 20, 30, 100)]
    assert points[0] == DEFAULT_LADDER[0] and points[-1] == DEFAULT_LADDER[-1]
    assert [rung_kbps(p, size, FPS) for p in points] == sorted(rung_kbps(p, size, FPS) for p in points)
    # Twice the pixels cost about twice the rate: the same target buys a lower rung.
    assert rung_kbps(choose(30, (384, 512), FPS), (384, 512), FPS) <= 30 * 1.25
    assert choose(100, size, FPS, scales=(4, 8)).scale == 4
    assert settle(30, size, FPS, 4, None)[0] == 4
    assert settle(30, size, FPS, 4, 3) == (4, 3)
    with pytest.raises(ValueError, match="--scale"):
        choose(30, size, FPS, scales=(3,))


def test_a_live_stream_counts_each_frames_headers_and_keeps_to_its_latency():
    from vsa.sender.ladder import LIVE_FRAME_BYTES, rung_latency_ms, within_latency

    size = (192, 256)
    fine = next(r for r in DEFAULT_LADDER if (r.scale, r.stride) == (2, 1))
    # 30 datagrams a second of headers: stride 1 costs more than its payload, stride 4 a quarter of that more.
    extra = rung_kbps(fine, size, FPS, LIVE_FRAME_BYTES) - rung_kbps(fine, size, FPS)
    assert extra == pytest.approx(FPS * LIVE_FRAME_BYTES * 8 / 1000)
    coarse = next(r for r in DEFAULT_LADDER if r.stride == 4)
    assert rung_kbps(coarse, size, FPS, LIVE_FRAME_BYTES) - rung_kbps(coarse, size, FPS) == pytest.approx(extra / 4)
    # So a live target buys a coarser rung than a file's.
    assert rung_kbps(choose(50, size, FPS, frame_bytes=LIVE_FRAME_BYTES), size, FPS) < rung_kbps(
        choose(50, size, FPS), size, FPS)
    # 150 ms at 30 fps: stride 2 (100 ms), not 4 (233 ms); at 15 fps stride 1 only; no goal: every stride.
    assert rung_latency_ms(2, 30.0) == pytest.approx(100.0)
    assert {r.stride for r in within_latency(DEFAULT_LADDER, 30.0, 150.0)} == {1, 2}
    assert {r.stride for r in within_latency(DEFAULT_LADDER, 15.0, 150.0)} == {1}
    assert {r.stride for r in within_latency(DEFAULT_LADDER, 2.0, 150.0)} == {1}  # the finest, whatever the goal
    assert within_latency(DEFAULT_LADDER, 30.0, 0.0) == DEFAULT_LADDER
    # What the goal leaves the path: less the coding and reconstruction, and at stride 2 a frame's wait.
    from vsa.sender.ladder import MIN_TRANSIT_MS, PIPELINE_MS, transit_budget_ms
    assert transit_budget_ms(150.0, 1, 30.0) == pytest.approx(150.0 - PIPELINE_MS)
    assert transit_budget_ms(150.0, 2, 30.0) == pytest.approx(150.0 - PIPELINE_MS - 1000 / 30)
    assert transit_budget_ms(60.0, 2, 30.0) == MIN_TRANSIT_MS
    # A fixed stride takes its scale from that stride's rungs (it took stride 4's rates).
    assert settle(30, size, FPS, None, 2) == (4, 2)


def test_a_file_with_a_target_lands_near_it(clip_path, tmp_path):
    """The bundled clip (3.6 s) at 128x192, the shipped base: at its default crf it makes about 22 kbps; asked
    for 50, with keyframes every half second to steer by, the keeper raises its quality to land near 50."""
    def kbps(settings: StreamSettings) -> tuple[float, str]:
        out = tmp_path / "k.vsa"
        report = encode_file(clip_path, None, str(out), settings, size=(128, 192))
        return out.stat().st_size * 8 / 1000 / report.seconds, report.summary()

    free, _ = kbps(StreamSettings(scale=4, stride=1, keyint=15))
    held, summary = kbps(StreamSettings(scale=4, stride=1, keyint=15, kbps=50.0))
    assert free < 30
    assert 0.9 * 50 <= held <= 1.1 * 50, summary
    assert "target 50 kbps" in summary


def test_vsa_encode_with_only_a_target_takes_its_scale_and_stride_from_the_ladder(clip_path, tmp_path, capsys):
    from vsa.tools.cli import main

    assert main(["encode", clip_path, "-o", str(tmp_path / "l.vsa"), "--kbps", "12", "--size", "128x192"]) == 0
    rung = choose(12, (128, 192), 30.0)
    assert f"(scale {rung.scale}, stride {rung.stride}, target 12 kbps)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["encode", clip_path, "-o", str(tmp_path / "w.vsa"), "--kbps", "-3"])
    assert main(["encode", clip_path, "-o", str(tmp_path / "w.vsa"), "--kbps", "30", "--codec", "webp"]) == 2
    assert "needs an inter codec" in capsys.readouterr().err


def test_a_ladder_is_built_from_eval_points_and_read_back(tmp_path):
    from vsa.sender import ladder

    def point(scale, stride, kbps, psnr, clip="a", crf=30):
        return {"mode": "live", "method": "vsa-sr", "clip": clip, "frames": 30, "seconds": 1.0, "kbps": kbps,
                "psnr": psnr, "params": {"scale": scale, "stride": stride, "codec": "vp9", "crf": crf}}

    points = [point(4, 1, 25, 30), point(4, 1, 27, 31, "b"), point(2, 4, 22, 33), point(2, 4, 26, 33, "b"),
              point(8, 2, 9, 26), point(8, 1, 15, 25.9), point(4, 1, 90, 38, crf=10)]
    rungs = ladder.from_points(points, (192, 256))
    # Medians per (scale, stride) at the common crf; 8/1 and 4/1 cost more than a better rung: left out.
    assert [(r.scale, r.stride, r.kbps, r.psnr) for r in rungs] == [(8, 2, 9.0, 26.0), (2, 4, 24.0, 33.0)]
    # Rates scale with pixels: the same points measured at twice the area count half as much.
    assert ladder.from_points(points, (384, 256))[0].kbps == 4.5
    path = tmp_path / "ladder.json"
    ladder.save(str(path), rungs)
    assert ladder.load(str(path)) == rungs
    path.write_text('{"version": 1, "rungs": [{"kbps": -1, "scale": 4, "stride": 1, "psnr": 30}]}')
    with pytest.raises(ValueError, match="not a ladder"):
        ladder.load(str(path))
    with pytest.raises(ValueError, match="no vsa-sr points"):
        ladder.from_points([], (192, 256))

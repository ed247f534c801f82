"""The live sender's moves along the ladder, without a network: `_climb_ladder` on a sender whose encoder is
built but which never connects."""

from __future__ import annotations

from types import SimpleNamespace

from vsa.sender.ladder import LIVE_FRAME_BYTES, rung_kbps
from vsa.sender.live import LiveSender, SenderOptions
from vsa.sender.stream import StreamSettings

SIZE, FPS = (192, 256), 30.0


def _sender(kbps: float) -> LiveSender:
    sender = LiveSender(None, "unused.mp4", SenderOptions(
        settings=StreamSettings(scale=4, stride=2, kbps=kbps), ladder=(True, True), adapt=None))
    sender._make_encoder(SIZE, SimpleNamespace(fps=FPS, name="clip"), 0)
    return sender


def test_the_climb_takes_the_finest_rung_that_fits_when_the_targets_own_does_not():
    sender = _sender(300.0)
    encoder = sender.encoder
    assert (encoder.scale, encoder.stride) == (2, 1)  # the finest rung within the 150 ms latency goal
    encoder.switch(4, 2)  # where a link at 60 kbps left it
    encoder._take_rung()  # (as the next frame would)
    sender._last_rung = -100.0
    # 93 kbps: the ladder's rung for it is scale 2 stride 1 (80 kbps with its headers), whose keyframe headroom
    # needs 94; the stream once sat at scale 4 for good there. It moves to the finest rung that fits instead.
    fine = rung_kbps(next(r for r in sender._rungs if (r.scale, r.stride) == (2, 1)), SIZE, FPS, LIVE_FRAME_BYTES)
    assert 80 < fine < 93
    sender._climb_ladder(93.0, now=0.0)
    encoder._take_rung()
    assert (encoder.scale, encoder.stride) == (2, 2), sender.report.rung_switches
    # And no move at all where nothing finer fits.
    encoder.switch(4, 2)
    encoder._take_rung()
    sender._last_rung = -100.0
    sender._climb_ladder(35.0, now=10.0)
    encoder._take_rung()
    assert (encoder.scale, encoder.stride) == (4, 2)


def test_a_live_stream_keeps_to_its_latency_goal_unless_told_otherwise():
    assert {r.stride for r in _sender(300.0)._rungs} == {1, 2}
    free = LiveSender(None, "unused.mp4", SenderOptions(
        settings=StreamSettings(scale=4, stride=2, kbps=30.0), ladder=(True, True), adapt=None, latency_ms=0.0))
    free._make_encoder(SIZE, SimpleNamespace(fps=FPS, name="clip"), 0)
    assert 4 in {r.stride for r in free._rungs}
    assert free.encoder.stride == 4  # 30 kbps: scale 2 every fourth frame, as the ladder measured best


def test_the_transit_target_is_what_the_latency_goal_leaves_the_path_at_the_streams_stride():
    from vsa.sender.ladder import transit_budget_ms
    sender = _sender(300.0)
    assert sender.encoder.stride == 1
    assert sender._transit_target() == transit_budget_ms(150.0, 1, FPS)
    sender.encoder.switch(4, 2)
    sender.encoder._take_rung()
    assert sender._transit_target() == transit_budget_ms(150.0, 2, FPS) < transit_budget_ms(150.0, 1, FPS)
    fixed = LiveSender(None, "unused.mp4", SenderOptions(
        settings=StreamSettings(scale=4, stride=2, kbps=30.0), ladder=(True, True), adapt=None, transit_target_ms=0.0))
    fixed._make_encoder(SIZE, SimpleNamespace(fps=FPS, name="clip"), 0)
    assert fixed._transit_target() == 0.0  # off


def test_fec_after_a_loss_halves_the_payloads_share_of_the_target():
    """Every frame twice: the keeper reckons the next crf for half the payload (`BitrateKeeper.copies`), or the
    stream puts twice its target on the path and skips frames to keep to it."""
    sender = _sender(300.0)
    keeper = sender.encoder.keeper
    keeper.next_crf(0)
    keeper.sent(int(280_000 / 8 * 1.0))  # a second at the payload's share of the target
    sender._last_pts = int(FPS)
    sender.controller.fec_useful = True  # as a report of loss without a queue leaves it
    sender._loss_reported()
    assert sender.fec_active and keeper.copies == 2
    assert keeper.group_due and keeper.crf > keeper._group_crf

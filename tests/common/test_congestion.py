"""Congestion control as functions of made-up arrivals and reports."""

import pytest

from vsa.common.congestion import (
    BACKOFF, HARD_OVERUSE_MS_PER_S, OVERUSE_MS_PER_S, PROBE_STEP, STABLE_S, STANDING_QUEUE_MS, DelayTrend,
    RateController, Report,
)


def test_the_delay_trend_sees_a_filling_queue_and_not_a_steady_one():
    steady, filling = DelayTrend(), DelayTrend()
    for i in range(30):
        t = i / 30
        steady.arrived(capture_s=t, arrival_s=t + 0.040 + (0.003 if i % 2 else 0.0))  # 40 ms, 3 ms of scatter
        filling.arrived(capture_s=t, arrival_s=t + 0.040 + 0.050 * t)  # the queue adds 50 ms a second
    assert abs(steady.slope_ms_per_s()) < OVERUSE_MS_PER_S / 2
    # Per second of arrival time, which the growing delay stretches by 5%.
    assert filling.slope_ms_per_s() == pytest.approx(50.0 / 1.05, rel=0.01)
    # Only the last second counts: the queue drained since.
    for i in range(30, 90):
        t = i / 30
        filling.arrived(capture_s=t, arrival_s=t + 0.090)
    assert abs(filling.slope_ms_per_s()) < 1.0
    assert DelayTrend().slope_ms_per_s() == 0.0


def test_the_delay_trend_sees_a_standing_queue_the_slope_misses():
    trend = DelayTrend()
    for i in range(60):  # 2 s on an empty path (20 ms), with a clock offset that must cancel out
        t = 100.0 + i / 30
        trend.arrived(capture_s=t - 5.0, arrival_s=t + 0.020)
    assert trend.queue_ms() == pytest.approx(0.0, abs=1.0)
    for i in range(60, 150):  # a full drop-tail queue: 400 ms more, flat
        t = 100.0 + i / 30
        trend.arrived(capture_s=t - 5.0, arrival_s=t + 0.420)
    assert abs(trend.slope_ms_per_s()) < 1.0 and trend.queue_ms() == pytest.approx(400.0, abs=1.0)
    assert DelayTrend().queue_ms() == 0.0


def test_a_standing_queue_is_congestion_and_its_loss_gets_no_fec():
    rc = RateController(300_000, 10_000, 300_000)
    over = Report(1.0, received_bps=60_000, loss=0.2, queue_delay_ms=STANDING_QUEUE_MS + 50)
    rc.update(over)
    assert not rc.fec_useful  # loss behind a standing queue is the queue overflowing, not a noisy radio
    assert rc.update(Report(2.0, 60_000, queue_delay_ms=STANDING_QUEUE_MS + 50)) == pytest.approx(BACKOFF * 60_000)
    calm = RateController(300_000, 10_000, 300_000)
    calm.update(Report(1.0, 200_000, loss=0.03, queue_delay_ms=20.0))
    assert calm.fec_useful  # the same loss on an empty queue looks random: FEC repairs it


def _settle(rc: RateController, start: float, seconds: int, received: float) -> float:
    for k in range(seconds):
        rc.update(Report(start + k, received))
    return rc.target_bps


def test_the_controller_backs_off_on_rising_delay_below_what_the_receiver_got():
    rc = RateController(300_000, 10_000, 300_000)
    assert rc.update(Report(1.0, received_bps=200_000, delay_trend_ms_per_s=40.0)) == 300_000  # once: noise
    target = rc.update(Report(2.0, received_bps=60_000, delay_trend_ms_per_s=40.0))
    assert target == pytest.approx(BACKOFF * 60_000) and rc.state == "back-off"
    steep = RateController(300_000, 10_000, 300_000)
    assert steep.update(Report(1.0, 60_000, delay_trend_ms_per_s=HARD_OVERUSE_MS_PER_S + 1)) < 60_000
    # Loss with the delay rising is congestion: FEC would add to it.
    rc.update(Report(3.0, received_bps=50_000, loss=0.05, delay_trend_ms_per_s=2 * OVERUSE_MS_PER_S))
    assert not rc.fec_useful


def test_the_controller_backs_off_on_heavy_loss_and_holds_on_light_loss():
    rc = RateController(100_000, 10_000, 100_000)
    assert rc.update(Report(1.0, 100_000, loss=0.2)) == pytest.approx(90_000)
    assert rc.fec_useful  # loss without rising delay: random, which FEC repairs
    assert rc.update(Report(2.0, 90_000, loss=0.05)) == pytest.approx(90_000) and rc.state == "hold"


def test_the_controller_backs_off_on_its_own_queue_when_it_stays():
    rc = RateController(100_000, 10_000, 100_000)
    rc.update(Report(1.0, 100_000, queue_bytes=10_000))  # a keyframe on its way: once is not congestion
    assert rc.target_bps == 100_000
    rc.update(Report(2.0, 60_000, queue_bytes=10_000))
    assert rc.target_bps == pytest.approx(BACKOFF * 60_000)


def test_the_controller_probes_up_only_after_a_stable_period_and_stops_at_the_ceiling():
    rc = RateController(50_000, 10_000, 100_000)
    rc.update(Report(0.0, 50_000))
    assert rc.target_bps == 50_000  # calm for 0 s: not yet
    assert _settle(rc, 1.0, int(STABLE_S) - 1, 50_000) == 50_000
    assert _settle(rc, STABLE_S, 1, 50_000) == pytest.approx(50_000 * PROBE_STEP)
    assert _settle(rc, STABLE_S + 1, 60, 100_000) == 100_000 and rc.state == "probe"
    with pytest.raises(ValueError):
        RateController(5_000, 10_000, 100_000)


def test_a_link_that_drops_to_a_fifth_is_followed_down_and_back_up():
    """300 -> 60 -> 300 kbps, reports once a second: down within 2 s, back within 20% of the top in 10 s."""
    rc = RateController(300_000, 10_000, 300_000)
    link, t = 300_000, 0.0
    targets = []
    for second in range(40):
        link = 60_000 if 10 <= second < 25 else 300_000
        over = rc.target_bps > link
        received = min(rc.target_bps, link)
        # Sending 300 into 60 kbps grows the queue's delay by 4 s every second.
        trend = 1000.0 * (rc.target_bps - link) / link if over else 0.0
        rc.update(Report(float(second), received, delay_trend_ms_per_s=trend))
        targets.append(rc.target_bps)
    assert max(targets[11:12]) < 60_000  # the report after the drop
    assert min(targets[25:35]) < 0.8 * 300_000 <= max(targets[25:35])

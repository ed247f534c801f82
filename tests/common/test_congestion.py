"""Congestion control as functions of made-up arrivals and reports."""

import pytest

from vsa.common.congestion import (
    BACKOFF, DRAIN_TO_MS, HARD_OVERUSE_MS_PER_S, HARD_QUEUE_MS, MAX_DRAIN_S, MIN_NEAR_INCREASE_BPS, OVERUSE_MS_PER_S,
    PROBE_HEADROOM, PROBE_SLACK_BPS, PROBE_STEP, RESPONSE_S, STABLE_S, STANDING_QUEUE_MS, TRANSIT_HOLD, TRANSIT_STEP,
    ArrivalRate, DelayTrend, OwnQueue, RateController, Report, near_increase_bps, standing_ms,
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
    standing = standing_ms(60_000) + 50
    over = Report(1.0, received_bps=60_000, loss=0.2, queue_delay_ms=standing)
    rc.update(over)
    assert not rc.fec_useful  # loss behind a standing queue is the queue overflowing, not a noisy radio
    assert rc.update(Report(2.0, 60_000, queue_delay_ms=standing)) == pytest.approx(BACKOFF * 60_000)
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
    assert steep.update(Report(1.0, 60_000, delay_trend_ms_per_s=HARD_OVERUSE_MS_PER_S + 1,
                               queue_delay_ms=HARD_QUEUE_MS + 1)) < 60_000
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


def test_the_queue_delay_is_the_last_fraction_of_a_second():
    """Right after a link falls, the newest arrivals already carry the queue; the median of the whole second
    would say nothing until half of it had."""
    trend = DelayTrend()
    for i in range(30):
        trend.arrived(capture_s=i / 30, arrival_s=i / 30 + 0.020)
    for i in range(30, 40):  # a third of a second of frames behind 300 ms of queue
        trend.arrived(capture_s=i / 30, arrival_s=i / 30 + 0.320)
    assert trend.queue_ms() == pytest.approx(300.0, abs=1.0)


def test_a_frame_late_for_the_moment_and_one_behind_a_standing_queue_are_told_apart():
    trend = DelayTrend()
    for i in range(30):  # a free path: 40 ms, first datagrams and whole frames alike
        trend.arrived(capture_s=i / 30, arrival_s=i / 30 + 0.040)
    t = 29 / 30
    # A keyframe whose last datagram came 400 ms after its first: late for the moment, not for a queue.
    assert trend.above_usual_ms(t, t + 0.440) == pytest.approx(400.0, abs=1.0)
    assert trend.above_least_ms(t, t + 0.440) == pytest.approx(400.0, abs=1.0)
    for i in range(30, 90):  # then 2 s behind a standing queue of 500 ms: the usual, no longer the least
        trend.arrived(capture_s=i / 30, arrival_s=i / 30 + 0.540)
    t = 89 / 30
    assert trend.above_usual_ms(t, t + 0.540) == 0.0
    assert trend.above_least_ms(t, t + 0.540) == pytest.approx(500.0, abs=1.0)
    # A silent path (the sender paused for the queue to drain) reports no queue, not the last frames' one.
    assert trend.queue_ms() == pytest.approx(500.0, abs=1.0) and trend.queue_ms(now=t + 1.0) == 0.0
    assert trend.slope_ms_per_s(now=t + 2.0) == 0.0


def test_the_arrival_rate_is_what_came_over_the_last_half_second():
    rate = ArrivalRate()
    for i in range(100):  # 1200-B datagrams at 300 kbps for 3.2 s, then at 60 kbps
        rate.arrived(i * 0.032, 1200)
    t = 99 * 0.032
    for i in range(1, 11):
        t += 0.160
        rate.arrived(t, 1200)
    assert rate.bps(t) == pytest.approx(60_000, rel=0.25)
    assert ArrivalRate().bps(5.0) == 0.0


def test_a_new_congestion_pauses_the_sender_while_what_is_in_flight_drains():
    rc = RateController(300_000, 30_000, 300_000)
    # The link fell to 60 kbps: over the report's second 250 kbps got through, over its last half 60; 48 kbit
    # were sent after the newest frame the receiver has seen.
    rc.update(Report(10.0, 250_000, delay_trend_ms_per_s=2 * HARD_OVERUSE_MS_PER_S, queue_delay_ms=300.0,
                     arrival_bps=60_000, in_flight_bits=48_000))
    assert rc.target_bps == pytest.approx(BACKOFF * 60_000)
    assert rc.drain_until == pytest.approx(10.0 + 0.8 - DRAIN_TO_MS / 1000)
    # Nothing in flight (the sender paused): no further pause, though the queue delay is still high.
    rc.update(Report(10.5, 60_000, delay_trend_ms_per_s=2 * HARD_OVERUSE_MS_PER_S, queue_delay_ms=900.0,
                     arrival_bps=60_000, in_flight_bits=0))
    assert rc.drain_until == pytest.approx(10.75)


def test_one_keyframe_crossing_a_free_link_is_not_congestion():
    """A keyframe makes the frames behind it late for a moment, and the slope steep: without the queue delay
    that a filling queue adds, the target stays."""
    rc = RateController(300_000, 30_000, 300_000)
    rc.update(Report(10.0, 280_000, delay_trend_ms_per_s=3 * HARD_OVERUSE_MS_PER_S, queue_delay_ms=40.0,
                     arrival_bps=280_000))
    assert rc.target_bps == 300_000 and rc.drain_until == float("-inf")


def test_a_slow_link_s_longer_datagram_time_is_not_a_standing_queue():
    """The least delay was learned at 300 kbps; at 60 kbps a frame's first datagram alone takes 128 ms longer."""
    slow, fast = RateController(60_000, 30_000, 60_000), RateController(300_000, 30_000, 300_000)
    for k in range(3):
        slow.update(Report(10.0 + k, 45_000, queue_delay_ms=250.0, arrival_bps=45_000))
        fast.update(Report(10.0 + k, 250_000, queue_delay_ms=250.0, arrival_bps=250_000))
    assert standing_ms(60_000) == pytest.approx(STANDING_QUEUE_MS + 160.0)
    assert slow.target_bps == 60_000 and fast.target_bps < 300_000


def test_near_the_rate_the_path_gave_out_at_the_target_grows_in_small_steps_and_past_it_fast_again():
    rc = RateController(300_000, 30_000, 300_000)
    # The link fell to 60 kbps: backed off to 85% of it, and that is where the path gave out.
    rc.update(Report(10.0, 60_000, delay_trend_ms_per_s=2 * HARD_OVERUSE_MS_PER_S, queue_delay_ms=400.0,
                     arrival_bps=60_000))
    assert rc.capacity_bps == 60_000
    targets = [rc.update(Report(11.0 + k, rc.target_bps)) for k in range(20)]
    near = [t for t in targets if 0.9 * 60_000 <= t <= 1.15 * 60_000]
    # Within the band, steps of about a packet per response time (a multiplicative one went from 50 to 82 kbps).
    assert len(near) >= 3 and all(b - a <= near_increase_bps(a) + 1 for a, b in zip(near, near[1:]))
    assert near_increase_bps(50_000) == pytest.approx(50_000 / 30 / RESPONSE_S)  # one datagram a frame
    assert near_increase_bps(3_000) == MIN_NEAR_INCREASE_BPS
    # Once past it without congestion, the estimate is forgotten and the growing steps come back.
    past = [t for t in targets if t > 1.15 * 60_000]
    assert rc.capacity_bps is None and max(b / a for a, b in zip(past, past[1:])) > 1.15


def _frames(queue: OwnQueue, sizes: list[int], fps: float = 15.0, start: float = 100.0) -> float:
    """Send frames of ``sizes`` bytes at ``fps``; the capture time of the last."""
    t = start
    for size in sizes:
        queue.sent(t, t + 0.005, size * 8)
        t += 1 / fps
    return t - 1 / fps


def test_the_sender_reckons_the_queue_its_own_large_frame_makes_on_the_path():
    """A 3 KB frame on a path of 60 kbps holds the frames behind it for up to 0.4 s; small frames well under the
    rate make none, and on a path ten times as fast the large one makes little."""
    steady = OwnQueue()
    newest = _frames(steady, [250] * 30)
    assert steady.queue_ms(newest, 60_000) == 0.0
    cut = OwnQueue()
    newest = _frames(cut, [250] * 10 + [3000] + [250] * 3)
    behind = cut.queue_ms(newest, 60_000)
    assert 200.0 < behind < 3000 * 8 / 60_000 * 1000
    assert cut.queue_ms(newest, 600_000) < behind / 5
    # Frames the receiver has not seen yet are not in the figure: it speaks of the newest frame it reports.
    before_the_cut = cut.queue_ms(newest - 4 / 15, 60_000)
    assert before_the_cut == 0.0
    assert OwnQueue().queue_ms(newest, 60_000) == 0.0 and cut.queue_ms(newest, 0.0) == 0.0


def test_a_queue_the_sender_s_own_frame_explains_is_not_congestion():
    """The same steep, deep queue: congestion unless the sender's own large frame accounts for it."""
    report = dict(received_bps=45_000, delay_trend_ms_per_s=2 * HARD_OVERUSE_MS_PER_S, queue_delay_ms=380.0,
                  arrival_bps=50_000)
    own, other = RateController(50_000, 20_000, 300_000), RateController(50_000, 20_000, 300_000)
    own.update(Report(10.0, own_queue_ms=350.0, **report))
    other.update(Report(10.0, **report))
    assert own.target_bps == 50_000 and own.state != "back-off"
    assert other.target_bps < 50_000 and other.state == "back-off"
    assert own.believed_bps == 50_000 and other.believed_bps == other.capacity_bps == 50_000


def test_probing_may_go_a_little_past_what_a_low_rate_stream_uses():
    """libwebrtc's slack: 1.5 times the rate received plus 10 kbps, so a stream at a few kbps whose frames come
    unevenly does not stick."""
    rc = RateController(20_000, 5_000, 300_000)
    for k in range(12):
        rc.update(Report(10.0 + k, 10_000))
    assert rc.target_bps == pytest.approx(PROBE_HEADROOM * 10_000 + PROBE_SLACK_BPS)


def test_transit_is_each_frames_whole_time_on_the_path_above_the_least():
    """The queue counts a frame's first datagram; the transit its last too: a 600-byte frame on a 60 kbps link
    takes 80 ms to cross after its first datagram, which the viewer waits for and the queue does not show."""
    trend = DelayTrend()
    for i in range(30):
        capture = i / 30
        first = capture + 0.010
        trend.arrived(capture, first)
        trend.completed(capture, first + (0.080 if i % 2 else 0.0))
    assert trend.queue_ms() == pytest.approx(0.0)
    assert trend.transit_ms() == pytest.approx(80.0)  # the 75th percentile: a long frame
    assert trend.transit_ms(share=0.25) == pytest.approx(0.0)
    assert trend.transit_ms(now=5.0) == 0.0  # nothing whole in the last second: no news
    assert DelayTrend().transit_ms() == 0.0


def test_frames_slower_than_the_transit_target_shrink_the_rate_gently_and_only_with_a_target():
    """A stream near a slow link's rate makes its frames wait behind each other and take long to cross, with no
    queue that grows or stands past the mark; with a transit target the controller gives up a little rate a
    report until they cross in time (no pause, no halving). The queue alone would not say so: the frames' own
    length on the link is most of it."""
    def run(target_ms: float, transits: list[float]) -> list[float]:
        rc = RateController(50_000, 10_000, 50_000, transit_target_ms=target_ms)
        out = []
        for i, t in enumerate(transits):
            out.append(rc.update(Report(float(i), 45_000, queue_delay_ms=20.0, arrival_bps=45_000, transit_ms=t)))
        assert rc.drain_until == float("-inf")  # never a pause
        return out

    assert run(0.0, [120.0] * 4) == [50_000] * 4  # no target: slow frames are not congestion
    shrunk = run(60.0, [120.0] * 4)
    assert shrunk[0] == 50_000  # one report over it may be a keyframe's moment
    assert shrunk[1] == pytest.approx(50_000 * TRANSIT_STEP)
    assert shrunk[3] == pytest.approx(50_000 * TRANSIT_STEP ** 3)
    assert run(60.0, [120.0, 30.0, 120.0, 30.0]) == [50_000] * 4  # never twice running: left alone


def test_frames_slow_for_the_queue_a_back_off_drains_do_not_shrink_the_rate_again():
    """After a cut, the queue it found drains for up to `MAX_DRAIN_S`, and the frames crossing meanwhile are slow for
    what was sent before it: the transit target waits that long before it counts them."""
    rc = RateController(300_000, 10_000, 300_000, transit_target_ms=60.0)
    cut = rc.update(Report(0.0, 55_000, delay_trend_ms_per_s=400.0, queue_delay_ms=500.0, arrival_bps=55_000))
    assert rc.state == "back-off" and cut < 55_000
    after = [rc.update(Report(t, 40_000, queue_delay_ms=30.0, arrival_bps=40_000, transit_ms=300.0))
             for t in (0.5, 1.0, 1.5, 2.0)]
    assert after[:3] == [cut] * 3  # while it drains: held
    assert rc.update(Report(2.5, 40_000, queue_delay_ms=30.0, arrival_bps=40_000, transit_ms=300.0)) < cut


def test_frames_just_within_the_transit_target_hold_the_rate():
    """Probing up from just under the target would cross it again: within `TRANSIT_HOLD` of it the rate holds, and
    below that it probes as before."""
    def run(transit_ms: float) -> float:
        rc = RateController(20_000, 10_000, 100_000, transit_target_ms=60.0)
        for i in range(8):
            rc.update(Report(float(i), 20_000, arrival_bps=20_000, transit_ms=transit_ms))
        return rc.target_bps

    assert run(TRANSIT_HOLD * 60.0 + 5) == 20_000
    assert run(TRANSIT_HOLD * 60.0 - 5) > 20_000 * PROBE_STEP

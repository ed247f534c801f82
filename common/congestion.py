"""Congestion control: what the receiver measures, and the rate the sender aims at from it.

Modelled on WebRTC's Google Congestion Control (draft-ietf-rmcat-gcc), cut
to what a stream of a few dozen frames a second needs. Both halves are
sans-I/O (numbers in, numbers out), so tests drive them with made-up
arrivals and reports.

* **Receiver: `DelayTrend`.** For each frame it notes the one-way delay,
  arrival time minus the sender's capture time. The clocks' offset is
  unknown across machines but constant, so the *slope* of that delay over
  the last second is what it reports: a queue filling somewhere on the
  path adds delay every second (GCC's trendline estimator, least squares
  over a window).
* **Sender: `RateController`.** Once per receiver report (about a second):
  - *overuse*, when the delay trend rises by more than `OVERUSE_MS_PER_S`
    at two reports in a row (or `HARD_OVERUSE_MS_PER_S` at one with a
    queue delay over `HARD_QUEUE_MS`), or the queue delay passes its
    standing mark (`standing_ms`) while rising, or twice, or the sender's
    own queue has held more than `QUEUE_SECONDS` of the target at two
    reports in a row (one keyframe can fill either for a moment): back off
    to `BACKOFF` times the rate arriving at the receiver, and send nothing
    for as long as what the sender sent after the newest frame the
    receiver has seen takes to cross at that rate (`drain_until`), so a
    queue drains at the link's whole rate, not at the sliver between the
    link and the new target (the frames in it keep arriving meanwhile);
  - *loss* above `HIGH_LOSS`: shrink by half the loss (GCC's loss-based
    rule), whatever the delay says;
  - with a transit target (``transit_target_ms``; `vsend` derives it from
    its latency goal), frames that took longer than it on the path at two
    reports running (`Report.transit_ms`: the queue ahead of each and its
    own length on the link), though no queue grows or stands: shrink by
    `TRANSIT_STEP`, without a pause; and no probing while they take over
    `TRANSIT_HOLD` of it;
  - otherwise, after `STABLE_S` seconds without either, *probe up*: by
    `PROBE_STEP` at the first report, and by twice as much more at each
    calm report after it (up to `MAX_PROBE_STEP`), to the ceiling; but
    near the rate the path last gave out at, by about a packet per response
    time (`near_increase_bps`, GCC's additive increase near its link
    estimate). GCC's
    steady 8% a second would take 20 s to climb back from a fifth of a
    link; doubling the step, as TCP's slow start does, takes 6.
  Loss without rising delay is taken for random loss, which FEC repairs;
  loss with rising delay is congestion, which FEC (twice the rate) would
  make worse (`fec_useful`).
* **Sender: `OwnQueue`.** The queue delay the sender's own frames make at
  the bottleneck if it carries the rate the controller believes it does
  (`RateController.believed_bps`): a keyframe or a scene cut crossing a
  60 kbps link holds the frames behind it for a third of a second, which
  is no sign of a smaller link. The controller judges the queue delay the
  receiver reports over and above it.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

TREND_WINDOW_S = 1.0
"""Seconds of arrivals the receiver's delay slope is fitted over."""
OVERUSE_MS_PER_S = 30.0
"""A one-way delay growing faster than this (ms per second) at two reports in a row is a filling queue. On a
free 300 kbps link, keyframes crossing it and a busy receiver gave slopes of -210 to +48 ms/s, one report at a
time; sending 100 kbps into 60 grows the delay by 670 ms every second."""
HARD_OVERUSE_MS_PER_S = 150.0
"""A slope this steep, with more than `HARD_QUEUE_MS` of queue delay, is a filling queue at once."""
HARD_QUEUE_MS = 100.0
"""Queue delay a steep slope must come with to be a filling queue at once."""
RECENT_S = 0.3
"""Seconds of arrivals whose median is the queue delay reported: the path's queue now. Over the trend's whole
second, a queue that filled in the 0.3 s after a link fell to a fifth was reported at half its delay, once it
was already full; a single frame would read one queue behind a keyframe as a standing queue."""
TRANSIT_SHARE = 0.75
"""The percentile of frames' transit (`DelayTrend.transit_ms`) the receiver reports: the output clock's
(`vsa.receiver.playout.ON_TIME`), whose delay is what the viewer waits."""
ARRIVAL_WINDOW_S = 0.5
"""Seconds over which the receiver counts what arrives now (`ArrivalRate`)."""
BASE_WINDOW_S = 30.0
"""Seconds over which the receiver keeps the least one-way delay, the path's delay with empty queues."""
STANDING_QUEUE_MS = 150.0
"""One-way delay this far above the least (twice running) is a standing queue: congestion, although the delay
no longer grows. Once a drop-tail queue is full, the trend is flat and only loss is left, which read as
random loss turned FEC on and doubled the rate into the full queue."""
DRAIN_TO_MS = 50.0
"""Queue delay left in place when the sender pauses for a queue it finds (`RateController.drain_until`)."""
MAX_DRAIN_S = 2.0
"""The longest such pause."""
DATAGRAM_BYTES = 1200
"""The largest media datagram (`vsa.protocol.fragment.MAX_DATAGRAM`)."""
SLOWEST_LINK_BPS = 20_000.0
"""Rates below this are taken as this much when reckoning a datagram's time on the link (little arrives while
a sender pauses)."""
QUEUE_SECONDS = 0.5
"""The sender's own unsent bytes, in seconds of the target, above which (twice running) the path is congested."""
BACKOFF = 0.85
"""On overuse, the new target as a share of the rate the receiver got (GCC's beta)."""
HIGH_LOSS, LOW_LOSS = 0.10, 0.02
"""GCC's loss thresholds: above the first the rate shrinks; below the second it may grow."""
STABLE_S = 2.0
"""Seconds without overuse or loss before probing up."""
PROBE_STEP = 1.08
"""Multiplicative increase at the first probing report (GCC: 8% a second)."""
PROBE_HEADROOM = 1.5
PROBE_SLACK_BPS = 10_000.0
"""Probing goes no higher than `PROBE_HEADROOM` times the rate the receiver got, plus `PROBE_SLACK_BPS`
(libwebrtc's rule: the slack keeps a stream at a low rate, whose frames come unevenly, from sticking)."""
NEAR_CAPACITY = (0.9, 1.15)
"""Between these shares of the rate the path last gave out at (`RateController.capacity_bps`) the target
grows by `near_increase_bps` per report; above the second, it is forgotten (the path has grown)."""
RESPONSE_S = 0.3
"""GCC's response time for its additive increase: twice a round trip (about 50 ms here) plus 100 ms for the
overuse detector."""
MIN_NEAR_INCREASE_BPS = 4000.0
MAX_PROBE_STEP = 1.5
"""The most one report may raise the target by, however long probing has gone well."""
TRANSIT_STEP = 0.92
"""With a transit target (`RateController`'s ``transit_target_ms``), the target's share kept at each report whose
frames, and the last one's, took longer than it on the path (LEDBAT's idea: a delay-based sender aims at a delay,
not at a full link)."""
TRANSIT_HOLD = 0.8
"""With a transit target, frames taking more than this share of it on the path hold the rate where it is: probing
up from just under the target crossed it again a few seconds later, a saw-tooth around it."""
OWN_HORIZON_S = 2.0
"""Seconds of frames `OwnQueue` keeps: its model starts from an empty queue that long ago."""


def link_ms(nbytes: float, rate_bps: float) -> float:
    """How long ``nbytes`` take to cross a link of ``rate_bps`` (at least `SLOWEST_LINK_BPS`), in ms."""
    return 1000.0 * nbytes * 8 / max(rate_bps, SLOWEST_LINK_BPS)


def standing_ms(arrival_bps: float) -> float:
    """The queue delay (`DelayTrend.queue_ms`) above which a path holds a standing queue, with media arriving
    at ``arrival_bps``: `STANDING_QUEUE_MS` plus one full datagram's time on a link of that rate. The least
    delay is mostly learned on a fast link; on a slow one each frame's first datagram alone takes longer to
    cross (160 ms at 60 kbps against 32 at 300), which read as a standing queue kept a stream on a free
    60 kbps link at its floor."""
    return STANDING_QUEUE_MS + link_ms(DATAGRAM_BYTES, arrival_bps)


def near_increase_bps(target_bps: float, fps: float = 30.0) -> float:
    """GCC's additive increase near the link's estimate, per second: a packet's worth of a frame at
    ``target_bps`` every `RESPONSE_S`, at least `MIN_NEAR_INCREASE_BPS` (libwebrtc's AimdRateControl). Near
    50 kbps that is 11% a second; 4% of the estimate, before, took 12 s from the back-off to past the band."""
    frame_bits = target_bps / fps
    packets = max(1, math.ceil(frame_bits / (DATAGRAM_BYTES * 8)))
    return max(MIN_NEAR_INCREASE_BPS, frame_bits / packets / RESPONSE_S)


class DelayTrend:
    """The receiver's estimate of how fast one-way delay grows, and how far it sits above its least, from
    (capture, arrival) times in seconds."""

    def __init__(self, window_s: float = TREND_WINDOW_S, base_window_s: float = BASE_WINDOW_S) -> None:
        self.window_s = window_s
        self.base_window_s = base_window_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=4096)
        """(arrival time, one-way delay); bounded whatever the frame rate a peer claims."""
        self._lows: deque[tuple[float, float]] = deque(maxlen=4096)
        """(arrival time, one-way delay) of the frames that may yet be the least of the base window: each is
        lower than every later one (a monotonic queue), so the base is the first."""
        self._whole: deque[tuple[float, float]] = deque(maxlen=4096)
        """(time, capture to the frame's last datagram) of the frames whole over the trend's window."""

    def arrived(self, capture_s: float, arrival_s: float) -> None:
        delay = arrival_s - capture_s
        self._samples.append((arrival_s, delay))
        while self._samples and self._samples[0][0] < arrival_s - self.window_s:
            self._samples.popleft()
        while self._lows and self._lows[-1][1] >= delay:
            self._lows.pop()
        self._lows.append((arrival_s, delay))
        while self._lows[0][0] < arrival_s - self.base_window_s:
            self._lows.popleft()

    def completed(self, capture_s: float, complete_s: float) -> None:
        """A frame captured at ``capture_s`` was whole (its last datagram in) at ``complete_s``; its first
        datagram went to `arrived` before."""
        self._whole.append((complete_s, complete_s - capture_s))
        while self._whole and self._whole[0][0] < complete_s - self.window_s:
            self._whole.popleft()

    def transit_ms(self, now: float | None = None, share: float = TRANSIT_SHARE) -> float:
        """The ``share`` percentile of the frames whole over the window (ending ``now``; by default at the newest)
        of their time on the path above the least one-way delay, in ms (0 with none): the queue ahead of each
        frame and its own length on the link, the path's part of the latency a viewer sees."""
        if not self._whole or not self._lows:
            return 0.0
        newest = self._whole[-1][0] if now is None else now
        delays = sorted(d for t, d in self._whole if t >= newest - self.window_s)
        if not delays:
            return 0.0
        return max(0.0, (delays[min(len(delays) - 1, int(share * len(delays)))] - self._lows[0][1]) * 1000.0)

    def queue_ms(self, now: float | None = None) -> float:
        """The median one-way delay of the arrivals of the last `RECENT_S` (before ``now``, on the arrival
        clock; by default before the newest) above the least of the base window, in ms (0 with no frames
        then: while a sender pauses to let a queue drain, the last frames' delay is old news, and read again
        at every report it paused the sender again). Clock offset between the two ends cancels out: both
        terms carry it."""
        if not self._samples or not self._lows:
            return 0.0
        newest = self._samples[-1][0] if now is None else now
        delays = [d for t, d in self._samples if t >= newest - RECENT_S]
        if not delays:
            return 0.0
        return max(0.0, (statistics.median_high(delays) - self._lows[0][1]) * 1000.0)

    def above_least_ms(self, capture_s: float, arrival_s: float) -> float:
        """How far a one-way delay (arrival minus capture) sits above the least of the base window, in ms (0
        with no frames yet)."""
        if not self._lows:
            return 0.0
        return max(0.0, (arrival_s - capture_s - self._lows[0][1]) * 1000.0)

    def above_usual_ms(self, capture_s: float, arrival_s: float) -> float:
        """How far a one-way delay (arrival minus capture) sits above the median of the window's, in ms (0 with
        no frames yet): a frame late for something of the moment, as a keyframe's length on a slow link or
        a queue that has just begun to fill, rather than for what the path costs every frame."""
        if not self._samples:
            return 0.0
        usual = statistics.median_high(d for _, d in self._samples)
        return max(0.0, (arrival_s - capture_s - usual) * 1000.0)

    def slope_ms_per_s(self, now: float | None = None) -> float:
        """Least-squares slope of the delay over the window (ending ``now``, on the arrival clock; by default at
        the newest arrival), in ms per second (0 with fewer than 3 frames in it)."""
        samples = [(t, d) for t, d in self._samples if now is None or t >= now - self.window_s]
        n = len(samples)
        if n < 3:
            return 0.0
        mean_t = sum(t for t, _ in samples) / n
        mean_d = sum(d for _, d in samples) / n
        var = sum((t - mean_t) ** 2 for t, _ in samples)
        if var <= 1e-9:
            return 0.0
        cov = sum((t - mean_t) * (d - mean_d) for t, d in samples)
        return cov / var * 1000.0


class ArrivalRate:
    """The receiver's rate of arriving media over the last `ARRIVAL_WINDOW_S`, from (time, bytes) of each
    datagram. Behind a queue, datagrams arrive at the link's rate whatever was sent: right after a link falls,
    the one figure that already says how far."""

    def __init__(self, window_s: float | None = None) -> None:
        self.window_s = ARRIVAL_WINDOW_S if window_s is None else window_s
        self._arrivals: deque[tuple[float, int]] = deque(maxlen=4096)

    def arrived(self, now: float, size: int) -> None:
        self._arrivals.append((now, size))

    def bps(self, now: float) -> float:
        """Bits per second over the window ending ``now`` (0 with no arrivals in it)."""
        while self._arrivals and self._arrivals[0][0] <= now - self.window_s:
            self._arrivals.popleft()
        bits = sum(size for _, size in self._arrivals) * 8
        span = self._arrivals[-1][0] - self._arrivals[0][0] if self._arrivals else 0.0
        if span >= self.window_s / 2:
            # From the first arrival to the last: a window holding 3 or 4 datagrams of a 60 kbps link, by
            # phase, would read 58 or 77 kbps.
            return (bits - self._arrivals[0][1] * 8) / span
        return bits / self.window_s


class OwnQueue:
    """The delay the sender's own frames would wait at the path's bottleneck, were it an empty queue
    `OWN_HORIZON_S` ago that drains at a given rate (a fluid model), as the receiver measures it
    (`DelayTrend.queue_ms`: the median over `RECENT_S` of arrivals, each frame's first datagram). Sans-I/O: times
    in seconds on the sender's clock, sizes in bits."""

    def __init__(self) -> None:
        self._frames: deque[tuple[float, float, float]] = deque(maxlen=1024)
        """(capture time, send time, bits) in the order sent."""

    def sent(self, capture_s: float, sent_s: float, bits: float) -> None:
        self._frames.append((capture_s, sent_s, bits))
        while self._frames and self._frames[0][1] < sent_s - OWN_HORIZON_S:
            self._frames.popleft()

    def queue_ms(self, newest_capture_s: float, rate_bps: float) -> float:
        """The queue delay the receiver would report with frame ``newest_capture_s`` the newest it has seen, on
        a bottleneck of ``rate_bps`` (0 when nothing is known)."""
        if rate_bps <= 0:
            return 0.0
        backlog = 0.0  # bits ahead of the next frame
        last: float | None = None
        waits: list[tuple[float, float]] = []  # (first datagram's arrival, its wait), in seconds
        for capture, sent, bits in self._frames:
            if capture > newest_capture_s:
                break
            if last is not None:
                backlog = max(0.0, backlog - (sent - last) * rate_bps)
            waits.append((sent + backlog / rate_bps, backlog / rate_bps))
            backlog, last = backlog + bits, sent
        if not waits:
            return 0.0
        newest = waits[-1][0]  # first datagrams leave a FIFO in the order they entered it
        return statistics.median_high(wait for arrival, wait in waits if arrival >= newest - RECENT_S) * 1000.0


@dataclass(frozen=True)
class Report:
    """What the sender knows at one receiver report."""

    time_s: float
    received_bps: float
    """Media the receiver got over the report's interval."""
    loss: float = 0.0
    """Share of the interval's frames that never arrived, in [0, 1]."""
    delay_trend_ms_per_s: float = 0.0
    queue_bytes: int = 0
    """The sender's media bytes waiting to go out."""
    queue_delay_ms: float = 0.0
    """The receiver's one-way delay above its least (`DelayTrend.queue_ms`)."""
    arrival_bps: float = 0.0
    """What the receiver got over its last half second (`ArrivalRate`; 0: not known)."""
    in_flight_bits: float = 0.0
    """Media the sender sent after the newest frame the report says arrived: on the path still, in its queue
    if there is one (0: not known)."""
    own_queue_ms: float = 0.0
    """The part of ``queue_delay_ms`` the sender's own frames make on a path of `RateController.believed_bps`
    (`OwnQueue`; 0: not known)."""
    transit_ms: float = 0.0
    """The receiver's 75th percentile of the frames' time on the path (`DelayTrend.transit_ms`; 0: not known)."""


class RateController:
    """Turns receiver reports into a target bitrate between ``floor_bps`` and ``ceiling_bps``."""

    def __init__(self, start_bps: float, floor_bps: float, ceiling_bps: float, transit_target_ms: float = 0.0) -> None:
        """``transit_target_ms``: how long the frames may take on the path (`Report.transit_ms`, `TRANSIT_STEP`;
        0: no bound but the congestion rules'; the sender may change it as it goes)."""
        if not 0 < floor_bps <= start_bps <= ceiling_bps:
            raise ValueError(f"need 0 < floor <= start <= ceiling, got {floor_bps}, {start_bps}, {ceiling_bps}")
        self.floor_bps, self.ceiling_bps = floor_bps, ceiling_bps
        self.transit_target_ms = transit_target_ms
        self._over_target = 0
        self._backed_off_at = float("-inf")
        """When (``time_s``'s clock) the last congestion or loss cut the target."""
        self.target_bps = start_bps
        self.state = "probe"
        """probe (growing or at the ceiling), hold (waiting to be sure), or back-off (just cut)."""
        self._calm_since: float | None = None
        self._step = PROBE_STEP - 1
        self._queued = self._rising = self._standing = 0
        """Reports in a row at which the sender's queue was over `QUEUE_SECONDS`, and the delay rising."""
        self.capacity_bps: float | None = None
        """What the path delivered at the last congestion (GCC's estimate of the link), until probing finds no
        congestion well above it."""
        self.drain_until = float("-inf")
        """Until when (``time_s``'s clock) the sender should send no frame: a queue it found on the path drains."""
        self.fec_useful = False
        """The last loss looked random (no rising delay): FEC would repair it without adding to a queue."""

    def update(self, report: Report) -> float:
        """The target after ``report``."""
        queued = report.queue_bytes * 8 > QUEUE_SECONDS * self.target_bps
        self._queued = self._queued + 1 if queued else 0
        rising = report.delay_trend_ms_per_s > OVERUSE_MS_PER_S
        self._rising = self._rising + 1 if rising else 0
        # The queue the path holds beyond what the sender's own frames make on it at the rate believed: a large
        # frame crossing a 60 kbps link delays those behind it by a third of a second, which read as congestion
        # held the target near half the link.
        queue_ms = max(0.0, report.queue_delay_ms - report.own_queue_ms)
        standing = queue_ms > standing_ms(report.arrival_bps or report.received_bps)
        self._standing = self._standing + 1 if standing else 0
        # The transit target bounds the frames' whole time on the path, the queue their own burstiness makes and
        # their own length on the link included: that is the latency a viewer gets. (Judged on the queue beyond the
        # stream's own, as congestion is, a queue target was explained away at the rate believed, the target
        # itself, and on a 60 kbps link a stream at 45-50 kbps showed 20-60 ms of queue at 180-240 ms latency.)
        # Not while the queue a back-off found drains (at most `MAX_DRAIN_S`): the frames are slow for what was
        # sent before the cut, and trimming for them too cut a trace's 60 kbps stream from 46 to 36 kbps in three
        # reports while its latency stayed at 0.4-0.7 s.
        over = (self.transit_target_ms > 0 and report.transit_ms > self.transit_target_ms
                and report.time_s - self._backed_off_at >= MAX_DRAIN_S)
        self._over_target = self._over_target + 1 if over else 0
        # A steep slope alone is a filling queue only once the delay it adds is there too: one keyframe
        # crossing a free link makes the frames behind it late for a moment, and a steep slope with them. A
        # queue over the standing mark that still grows is one at once: waiting for a second report let a
        # link that fell to a fifth queue another 0.3 s of the old rate.
        hard = (report.delay_trend_ms_per_s > HARD_OVERUSE_MS_PER_S and queue_ms > HARD_QUEUE_MS
                or rising and standing)
        congested = (hard or self._rising >= 2
                     or self._queued >= 2 or self._standing >= 2)
        self.fec_useful = report.loss > 0 and not congested and not rising and not standing
        if congested:
            # Behind a queue, what arrives in the last half second is the link's rate, whatever was sent; the
            # report's whole interval may be mostly from before the link fell, or (a stream using less than its
            # target, whose keyframe made the queue) far under what the link carries: backing off to it held
            # a 60 kbps link at the 30 kbps floor.
            got = report.arrival_bps or min(r for r in (report.received_bps, self.target_bps) if r > 0)
            self.target_bps = min(self.target_bps, BACKOFF * got)
            self.capacity_bps = got
            # Send nothing while what is on the path drains at the link's whole rate: at the new target it
            # would drain at 15% of the link, seconds of latency after a drop. What is on the path now is what
            # was sent after the newest frame the receiver has seen (the delay that frame met is older news:
            # acting on it paused the sender for 1.9 s after the queue had half drained). It crosses at the
            # rate now arriving, but at least the rate the path gave out at and the floor: once the queue is
            # empty little arrives, and one keyframe in flight read as 2 s of queue.
            queue_s = (report.in_flight_bits / max(report.arrival_bps, self.capacity_bps or 0.0, self.floor_bps)
                       - DRAIN_TO_MS / 1000)
            if queue_s > 0:
                self.drain_until = max(self.drain_until, report.time_s + min(MAX_DRAIN_S, queue_s))
            self._calm("back-off")
            self._backed_off_at = report.time_s
        elif report.loss > HIGH_LOSS:
            self.target_bps *= 1 - 0.5 * report.loss
            self._calm("back-off")
            self._backed_off_at = report.time_s
        elif self._over_target >= 2:
            # Frames too long on a path whose queue neither grows nor stands past the mark: the stream fills the
            # link to within its own burstiness. A little less, without a pause, until they cross in time.
            self.target_bps *= TRANSIT_STEP
            self._calm("hold")
        elif report.loss > LOW_LOSS:
            self._calm("hold")
        else:
            if self._calm_since is None:
                self._calm_since = report.time_s
            if self.transit_target_ms > 0 and report.transit_ms > TRANSIT_HOLD * self.transit_target_ms:
                # Just within the transit target: more would cross it.
                self.state, self._step = "hold", PROBE_STEP - 1
            elif report.time_s - self._calm_since >= STABLE_S:
                # Never far above what actually got through (GCC: 1.5 times the incoming rate): a target the
                # stream does not use says nothing about the path.
                grown = min(self.target_bps * (1 + self._step),
                            max(self.target_bps, PROBE_HEADROOM * report.received_bps + PROBE_SLACK_BPS))
                cap = self.capacity_bps
                if cap is not None and self.target_bps > NEAR_CAPACITY[1] * cap:
                    self.capacity_bps = cap = None  # no congestion well above it: the path has grown
                if cap is not None and grown > NEAR_CAPACITY[0] * cap:
                    # Near the rate the path last gave out at, in small steps (GCC's additive increase, a report
                    # about a second): a multiplicative step went from 50 to 82 kbps on a 60 kbps link in two
                    # reports.
                    grown = max(self.target_bps, min(grown, max(self.target_bps, NEAR_CAPACITY[0] * cap)
                                                     + near_increase_bps(self.target_bps)))
                    self._step = PROBE_STEP - 1
                else:
                    self._step = min(MAX_PROBE_STEP - 1, 2 * self._step)
                self.target_bps = grown
                self.state = "probe"
            else:
                self.state = "hold"
        self.target_bps = min(self.ceiling_bps, max(self.floor_bps, self.target_bps))
        return self.target_bps

    @property
    def believed_bps(self) -> float:
        """The rate the path is taken to carry: what it gave out at last (`capacity_bps`), or the target if more.
        Too high a belief only makes `OwnQueue` explain less of a queue (as if it were not used)."""
        return max(self.capacity_bps or 0.0, self.target_bps)

    def _calm(self, state: str) -> None:
        """Not calm: restart the stable period and the probing steps."""
        self.state, self._calm_since, self._step = state, None, PROBE_STEP - 1

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
    at two reports in a row (or `HARD_OVERUSE_MS_PER_S` at one), or the
    sender's own queue has held more than `QUEUE_SECONDS` of the target at
    two reports in a row (one keyframe can fill either for a moment):
    back off to `BACKOFF` times what the receiver actually got;
  - *loss* above `HIGH_LOSS`: shrink by half the loss (GCC's loss-based
    rule), whatever the delay says;
  - otherwise, after `STABLE_S` seconds without either, *probe up*: by
    `PROBE_STEP` at the first report, and by twice as much more at each
    calm report after it (up to `MAX_PROBE_STEP`), to the ceiling. GCC's
    steady 8% a second would take 20 s to climb back from a fifth of a
    link; doubling the step, as TCP's slow start does, takes 6.
  Loss without rising delay is taken for random loss, which FEC repairs;
  loss with rising delay is congestion, which FEC (twice the rate) would
  make worse (`fec_useful`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

TREND_WINDOW_S = 1.0
"""Seconds of arrivals the receiver's delay slope is fitted over."""
OVERUSE_MS_PER_S = 30.0
"""A one-way delay growing faster than this (ms per second) at two reports in a row is a filling queue. On a
free 300 kbps link, keyframes crossing it and a busy receiver gave slopes of -210 to +48 ms/s, one report at a
time; sending 100 kbps into 60 grows the delay by 670 ms every second."""
HARD_OVERUSE_MS_PER_S = 150.0
"""A slope this steep is a filling queue at once."""
BASE_WINDOW_S = 30.0
"""Seconds over which the receiver keeps the least one-way delay, the path's delay with empty queues."""
STANDING_QUEUE_MS = 150.0
"""One-way delay this far above the least (twice running) is a standing queue: congestion, although the delay
no longer grows. Once a drop-tail queue is full, the trend is flat and only loss is left, which read as
random loss turned FEC on and doubled the rate into the full queue."""
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
"""Probing goes no higher than this times the rate the receiver got."""
MAX_PROBE_STEP = 1.5
"""The most one report may raise the target by, however long probing has gone well."""


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

    def queue_ms(self) -> float:
        """The window's median one-way delay above the least of the base window, in ms (0 with no frames).
        Clock offset between the two ends cancels out: both terms carry it."""
        if not self._samples or not self._lows:
            return 0.0
        delays = sorted(d for _, d in self._samples)
        return max(0.0, (delays[len(delays) // 2] - self._lows[0][1]) * 1000.0)

    def slope_ms_per_s(self) -> float:
        """Least-squares slope of the delay over the window, in ms per second (0 with fewer than 3 frames)."""
        n = len(self._samples)
        if n < 3:
            return 0.0
        mean_t = sum(t for t, _ in self._samples) / n
        mean_d = sum(d for _, d in self._samples) / n
        var = sum((t - mean_t) ** 2 for t, _ in self._samples)
        if var <= 1e-9:
            return 0.0
        cov = sum((t - mean_t) * (d - mean_d) for t, d in self._samples)
        return cov / var * 1000.0


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


class RateController:
    """Turns receiver reports into a target bitrate between ``floor_bps`` and ``ceiling_bps``."""

    def __init__(self, start_bps: float, floor_bps: float, ceiling_bps: float) -> None:
        if not 0 < floor_bps <= start_bps <= ceiling_bps:
            raise ValueError(f"need 0 < floor <= start <= ceiling, got {floor_bps}, {start_bps}, {ceiling_bps}")
        self.floor_bps, self.ceiling_bps = floor_bps, ceiling_bps
        self.target_bps = start_bps
        self.state = "probe"
        """probe (growing or at the ceiling), hold (waiting to be sure), or back-off (just cut)."""
        self._calm_since: float | None = None
        self._step = PROBE_STEP - 1
        self._queued = self._rising = self._standing = 0
        """Reports in a row at which the sender's queue was over `QUEUE_SECONDS`, and the delay rising."""
        self.fec_useful = False
        """The last loss looked random (no rising delay): FEC would repair it without adding to a queue."""

    def update(self, report: Report) -> float:
        """The target after ``report``."""
        queued = report.queue_bytes * 8 > QUEUE_SECONDS * self.target_bps
        self._queued = self._queued + 1 if queued else 0
        rising = report.delay_trend_ms_per_s > OVERUSE_MS_PER_S
        self._rising = self._rising + 1 if rising else 0
        standing = report.queue_delay_ms > STANDING_QUEUE_MS
        self._standing = self._standing + 1 if standing else 0
        congested = (report.delay_trend_ms_per_s > HARD_OVERUSE_MS_PER_S or self._rising >= 2
                     or self._queued >= 2 or self._standing >= 2)
        self.fec_useful = report.loss > 0 and not congested and not rising and not standing
        if congested:
            got = report.received_bps if report.received_bps > 0 else self.target_bps
            self.target_bps = min(self.target_bps, BACKOFF * got)
            self._calm("back-off")
        elif report.loss > HIGH_LOSS:
            self.target_bps *= 1 - 0.5 * report.loss
            self._calm("back-off")
        elif report.loss > LOW_LOSS:
            self._calm("hold")
        else:
            if self._calm_since is None:
                self._calm_since = report.time_s
            if report.time_s - self._calm_since >= STABLE_S:
                # Never far above what actually got through (GCC: 1.5 times the incoming rate): a target the
                # stream does not use says nothing about the path.
                self.target_bps = min(self.target_bps * (1 + self._step),
                                      max(self.target_bps, PROBE_HEADROOM * report.received_bps))
                self._step = min(MAX_PROBE_STEP - 1, 2 * self._step)
                self.state = "probe"
            else:
                self.state = "hold"
        self.target_bps = min(self.ceiling_bps, max(self.floor_bps, self.target_bps))
        return self.target_bps

    def _calm(self, state: str) -> None:
        """Not calm: restart the stable period and the probing steps."""
        self.state, self._calm_since, self._step = state, None, PROBE_STEP - 1

"""The output clock: when each reconstructed frame is shown.

Frame ``i`` is due at its capture time plus a playout delay. The delay is
a percentile (`ON_TIME`, the 75th by default) of the lags (capture to
ready) seen over the last 2 s plus a margin, so the output runs smoothly
at the source's frame rate: a frame interpolated between two sent frames
can only be ready once the second one arrives, which is (stride - 1)
frames after its own capture. The delay grows at once when lags grow and
shrinks slowly when all are early (in proportion to the excess once it is
large). A percentile, as WebRTC's jitter buffers use, rather than the
worst lag: one frame in four may be shown late (as soon as it is ready),
instead of every frame waiting for the slowest ones. Frames late for
something of the moment do not count (``adapt=False``): data lost, a
keyframe or a queue on the path, frames the sender skipped. (At the 95th
percentile of 3 s, a burst of such frames held every frame after it late
for 3 s.)

The sender's capture clock and ours may differ: the smallest
(arrival - capture) of any sent frame stands for their offset plus the
fastest transit, and all capture times are mapped through it. No I/O here:
times are passed in (seconds).
"""

from __future__ import annotations

from collections import deque


CATCH_UP_PER_S = 1.0
"""Share of the delay beyond what the lags need that is given back per second (the frames meanwhile come faster
than real time, or as soon as they are ready): once the lags that raised it leave the window, 2 s of excess
fall to 0.1 s in 3 s."""


ON_TIME = 0.75
"""The share of recent lags the delay covers (`vrecv --on-time`). The encoder's periodic large frames sit above it:
libvpx refreshes its golden frame every 10 frames sent, at 5-10 times an inter frame's size, and on a 60 kbps
link that frame and the one interpolated toward it are ready 100-200 ms after the rest. At the 90th percentile the
delay covered them, and every frame waited: on the lossy 60 kbps link (`vsa bench lossy`, ten rounds) latency
median 148-233 ms at the 90th, 127-262 ms at the 75th, lower in 8 rounds of 10 (README, Rate control).
Above a half, so that at stride 2 the delay still covers the interpolated frames' wait for the next sent one."""


class Playout:
    def __init__(self, fps: float, margin: float | None = None, window: float = 2.0,
                 max_delay: float = 2.0, shrink_per_s: float = 0.01, quantile: float = ON_TIME) -> None:
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        self.fps = fps
        self.quantile = quantile
        # The percentile already covers the usual jitter; a quarter frame absorbs the rest.
        self.margin = 0.25 / fps if margin is None else margin
        self.window = window
        self.max_delay = max_delay
        self.shrink_per_s = shrink_per_s
        self.offset: float | None = None
        self.delay = 0.0
        self._lags: deque[tuple[float, float]] = deque()  # (ready time, lag)
        self._last_due = float("-inf")
        self._last_update: float | None = None

    def arrived(self, capture: float, now: float) -> None:
        """A sent frame captured at ``capture`` (sender's clock) arrived ``now``."""
        gap = now - capture
        if self.offset is None or gap < self.offset:
            self.offset = gap

    def local(self, capture: float) -> float:
        """A sender capture time on our clock."""
        return capture + (self.offset or 0.0)

    def due(self, capture: float, ready: float, adapt: bool = True) -> float:
        """When to show a frame captured at ``capture`` (sender's clock) that was ready at ``ready``.

        Frames concealing a loss, or held back in the jitter buffer waiting for a frame that
        turned out lost, pass ``adapt=False``: they are late because data was lost,
        not because of jitter, and raising the delay for them would cost latency for seconds
        without making the next loss any shorter.
        """
        lag = max(0.0, ready - self.local(capture))
        if adapt:
            # (Not even into an empty window: after 3 s of a congested link's late frames, the first one let in
            # set the delay to its 2-s ceiling for the next 3 s.)
            self._lags.append((ready, lag))
        while self._lags and self._lags[0][0] < ready - self.window:
            self._lags.popleft()
        # With no lag in the window (every recent frame late for a loss), nothing says the delay is needed:
        # keeping the last one, as before, held a 4.7-s lag, and the delay at its 2-s ceiling, for as long as
        # losses lasted.
        lags = sorted(l for _, l in self._lags) or [0.0]
        want = min(self.max_delay, lags[min(len(lags) - 1, int(self.quantile * len(lags)))] + self.margin)
        if want >= self.delay:
            self.delay = want
        elif self._last_update is not None:
            # Slowly while the excess is small (a jitter spike may come back); in proportion once it is large,
            # as after a congested link drained: at 10 ms a second, 2 s of delay took minutes to give back.
            rate = max(self.shrink_per_s, CATCH_UP_PER_S * (self.delay - want))
            self.delay = max(want, self.delay - rate * (ready - self._last_update))
        self._last_update = ready
        due = max(self.local(capture) + self.delay, self._last_due)
        self._last_due = due
        return due

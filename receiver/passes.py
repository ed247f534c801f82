"""How many reprojection passes the live receiver can afford: a pure controller, fed measured times.

Each sent frame's processing time goes in with the time until the next sent
frame (the budget); the number of passes comes out. No clock and no threads,
so a test drives it with made-up times:

>>> control = PassController(most=3)
>>> control.judge(elapsed=0.010, budget=0.066, passes=3, queued=0, one_pass=0.004)
3
>>> control.judge(elapsed=0.200, budget=0.066, passes=3, queued=0, one_pass=0.004)
2
"""

from __future__ import annotations

from dataclasses import dataclass

SMOOTHING = 0.3
"""Weight of the newest frame in the moving average of processing times."""
BEHIND = 0.9
"""Drop a pass once the average takes this share of the budget."""
ROOM = 0.8
"""Add a pass back only if the average plus one pass fits in this share of the budget..."""
STREAK = 30
"""...for this many sent frames in a row."""
MAX_QUEUED = 2
"""Sent frames waiting for the worker beyond which it is behind, whatever the average says."""


@dataclass
class PassController:
    """Fewer passes when sent frames take longer than the time until the next one; more when there is room.

    The judge is a moving average of the per-frame time (or a backlog of
    frames), not one frame: a single slow frame (a collection, the sender
    busy on the same machine) costs a few ms of delay, while dropping a pass
    costs quality for at least 30 frames. A pass is added back only when
    `STREAK` frames in a row show that one more (its cost measured by the
    reconstructor, not guessed from the total, which also holds decoding and
    the mp4 writer) would still fit in `ROOM` of the budget.
    """

    most: int
    """The passes the stream started with: never more."""
    average: float | None = None
    """Moving average of a sent frame's processing time (s); None after a change of passes."""
    streak: int = 0

    def judge(self, elapsed: float, budget: float, passes: int, queued: int, one_pass: float) -> int:
        """The passes for the next frames, given one sent frame's ``elapsed`` seconds at ``passes``.

        ``budget``: seconds between two sent frames; ``queued``: sent frames waiting for the worker;
        ``one_pass``: what one more pass costs (s).
        """
        self.average = elapsed if self.average is None else (1 - SMOOTHING) * self.average + SMOOTHING * elapsed
        if (self.average > BEHIND * budget or queued > MAX_QUEUED) and passes > 1:
            self.average = None  # the next frames, at one pass fewer, start a new average
            self.streak = 0
            return passes - 1
        if passes < self.most and self.average + one_pass < ROOM * budget and queued <= 1:
            self.streak += 1
            if self.streak >= STREAK:
                self.streak = 0
                return passes + 1
            return passes
        self.streak = 0
        return passes

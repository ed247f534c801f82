"""Retransmission on request: a frame lost on the way is sent again when the receiver asks for it (a NACK).

On a path with a short round trip, WebRTC repairs random loss this way (RFC 4585's generic NACK): the
receiver notices a hole in the frame seqs, asks for what is missing, and the sender sends it again from what
it keeps of the last second. An inter-coded stream's other repair is a keyframe, which on a 60 kbps link
costs a dozen frames' worth of rate and, while it waits for the budget, stops the stream; forward error
correction (a second copy of every frame) costs twice the rate whether anything is lost or not. Measured
at 60 kbps with 5% random loss, keyframe requests held the latency median at 300-500 ms (README).

Both halves are sans-I/O, times passed in:

* `Asker` (receiver): which of the missing seqs to ask for now (new holes at once, the rest again after
  `RETRY_FACTOR` times the response time it has measured, at most `MAX_ASKS` times), and how long a hole is
  worth waiting for (`Asker.wait_s`) before the frame counts as lost.
* `History` (sender): the datagrams of the frames sent over the last `HISTORY_SECONDS` (bounded in count
  and bytes), and which to send again for a `Nack`: each at most `MAX_RESENDS` times, and not twice
  within `MIN_RESEND_GAP_S` (a request repeated while the answer was on its way).

Requests travel on the media channel, unordered and unretransmitted like the frames: on the reliable
control channel one lost request would hold every later message until SCTP's retransmission timer fires
(a second at least), and the asker repeats its own requests anyway.
"""

from __future__ import annotations

import statistics
from collections import OrderedDict, deque
from typing import Iterable

from .messages import NACK_SPAN, Nack

MAX_ASKS = 3
"""Times a receiver asks for one frame: the request and the frame sent again cross the same lossy path."""
FIRST_RESPONSE_S = 0.1
"""The response time assumed before one is measured."""
MIN_RETRY_S = 0.03
RETRY_FACTOR = 1.5
"""A frame still missing this many response times after it was asked for is asked for again."""
MAX_WAIT_S = 0.8
"""At most this long is a hole waited for: past it a keyframe is the quicker repair. (A keyframe asked for takes a
second and more on a 60 kbps link: the sender spaces them, waits for its budget, and the keyframe crosses.)"""
MAX_TRACKED = 256
"""Seqs an `Asker` keeps track of (the jitter buffer bounds the holes; this bounds the asker on its own)."""
MAX_PER_CALL = 2 * NACK_SPAN
"""Seqs asked for at one call (two `Nack` messages at the most)."""

HISTORY_SECONDS = 1.0
"""How long a sender keeps a frame to send again: past the receiver's longest wait (`MAX_WAIT_S`)."""
HISTORY_BYTES = 512 * 1024
HISTORY_FRAMES = 256
MAX_RESENDS = 2
MIN_RESEND_GAP_S = 0.02


def nacks(seqs: Iterable[int]) -> list[Nack]:
    """The fewest `Nack` messages that name every seq in ``seqs``."""
    out: list[Nack] = []
    first, mask = None, 0
    for seq in sorted(set(seqs)):
        if first is not None and seq - first < NACK_SPAN:
            mask |= 1 << (seq - first - 1)
            continue
        if first is not None:
            out.append(Nack(first, mask))
        first, mask = seq, 0
    if first is not None:
        out.append(Nack(first, mask))
    return out


class Asker:
    """The receiver's half: when to ask for which missing frame, and how long a hole is worth waiting for."""

    def __init__(self) -> None:
        self._asked: OrderedDict[int, tuple[float, float, int]] = OrderedDict()
        """seq -> (first asked, last asked, times asked)."""
        self._responses: deque[float] = deque(maxlen=16)
        self.queue_s = 0.0
        """The queue on the path now (the receiver's estimate, kept up to date by it): a frame sent again waits
        in it too. Repairs timed while the path was empty gave up on frames behind a 300 ms queue."""
        self.asked = 0
        """Requests made (a seq asked for twice counts twice)."""
        self.repaired = 0
        """Frames that arrived after they were asked for."""

    @property
    def response_s(self) -> float:
        """The median time from the first request for a frame to its arrival, over the last repairs."""
        return statistics.median(self._responses) if self._responses else FIRST_RESPONSE_S

    @property
    def expected_s(self) -> float:
        """How long an answer should take now: as the last ones did, and at least the queue it crosses."""
        return max(self.response_s, self.queue_s)

    @property
    def retry_s(self) -> float:
        return max(MIN_RETRY_S, RETRY_FACTOR * self.expected_s)

    @property
    def wait_s(self) -> float:
        """How long a missing frame is worth waiting for: a first answer, and a second try's with half an answer's
        time to spare (a try goes `retry_s` after the first and takes `expected_s`)."""
        return min(MAX_WAIT_S, self.retry_s + 1.5 * self.expected_s)

    def due(self, missing: Iterable[int], now: float) -> list[int]:
        """Of the ``missing`` seqs (oldest first), those to ask for now: ones not asked for yet, and ones asked
        for `retry_s` ago or more, fewer than `MAX_ASKS` times."""
        out: list[int] = []
        retry = self.retry_s
        for seq in missing:
            if len(out) >= MAX_PER_CALL:
                break
            entry = self._asked.get(seq)
            if entry is None:
                self._asked[seq] = (now, now, 1)
                while len(self._asked) > MAX_TRACKED:
                    self._asked.popitem(last=False)
            elif entry[2] < MAX_ASKS and now - entry[1] >= retry:
                self._asked[seq] = (entry[0], now, entry[2] + 1)
            else:
                continue
            out.append(seq)
        self.asked += len(out)
        return out

    def arrived(self, seq: int, now: float) -> bool:
        """A frame came whole: whether it was asked for (a repair, late because it was lost once)."""
        entry = self._asked.pop(seq, None)
        if entry is None:
            return False
        self.repaired += 1
        self._responses.append(now - entry[0])
        return True

    def settled(self, before: int) -> None:
        """Frames before seq ``before`` have been played or given up on: ask for none of them again."""
        for seq in [s for s in self._asked if s < before]:
            del self._asked[seq]


class History:
    """The sender's half: what was sent lately, to send again when asked."""

    def __init__(self, seconds: float = HISTORY_SECONDS, max_bytes: int = HISTORY_BYTES,
                 max_frames: int = HISTORY_FRAMES) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self._frames: OrderedDict[int, tuple[float, list[bytes], int, float]] = OrderedDict()
        """seq -> (sent at, datagrams, times sent again, last sent)."""
        self._bytes = 0
        self.resent = 0
        """Frames sent again."""
        self.unknown = 0
        """Seqs asked for that were no longer (or never) kept."""

    def add(self, seq: int, datagrams: list[bytes], now: float) -> None:
        self._frames[seq] = (now, datagrams, 0, now)
        self._bytes += sum(len(d) for d in datagrams)
        self._trim(now)

    def resend(self, seqs: Iterable[int], now: float) -> list[list[bytes]]:
        """The datagrams to send again for a request naming ``seqs``, oldest frame first."""
        self._trim(now)
        out: list[list[bytes]] = []
        for seq in sorted(set(seqs)):
            entry = self._frames.get(seq)
            if entry is None:
                self.unknown += 1
                continue
            sent_at, datagrams, times, last = entry
            if times >= MAX_RESENDS or (times and now - last < MIN_RESEND_GAP_S):
                continue
            self._frames[seq] = (sent_at, datagrams, times + 1, now)
            self.resent += 1
            out.append(datagrams)
        return out

    def _trim(self, now: float) -> None:
        while self._frames:
            seq, (sent_at, datagrams, _, _) = next(iter(self._frames.items()))
            if (now - sent_at <= self.seconds and self._bytes <= self.max_bytes
                    and len(self._frames) <= self.max_frames):
                break
            del self._frames[seq]
            self._bytes -= sum(len(d) for d in datagrams)

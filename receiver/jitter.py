"""The jitter buffer: puts frames from the unordered media channel back in order.

Frames leave in ``seq`` order. A missing frame is waited for at most
``wait`` seconds, counted from when a later frame arrived (or from the bye,
for frames at the very end); then it is declared lost and the frames behind
it move on. A frame that turns up after that is late and dropped. Nothing
is held beyond ``capacity`` frames, and a seq further ahead than
`MAX_GAP` is refused, so a hostile peer cannot make us wait or count
without bound. Time is passed in: this class does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsa.protocol.messages import Frame

MAX_GAP = 1024
"""Frames a seq may run ahead of the next expected one."""


@dataclass(frozen=True)
class Lost:
    seq: int


class JitterBuffer:
    def __init__(self, wait: float, capacity: int = 256, skip_to_keyframe: bool = False) -> None:
        """With ``skip_to_keyframe`` (inter-coded payloads), a keyframe behind a hole ends the wait at
        once: the decoder restarts there whether or not the missing frames turn up, so waiting
        would only freeze the picture longer."""
        if wait < 0:
            raise ValueError(f"wait must be >= 0, got {wait}")
        self.wait = wait
        self.skip_to_keyframe = skip_to_keyframe
        self.capacity = capacity
        self.next_seq = 0
        self._held: dict[int, tuple[Frame, float]] = {}
        self._end_seq: int | None = None
        self._end_time = 0.0
        self.late = 0
        self.lost = 0
        self.refused = 0

    def push(self, frame: Frame, now: float) -> bool:
        """Hold ``frame``; return True when it shows that an earlier frame is missing."""
        if frame.seq < self.next_seq or frame.seq in self._held:
            self.late += 1
            return False
        if frame.seq >= self.next_seq + MAX_GAP:
            self.refused += 1
            return False
        self._held[frame.seq] = (frame, now)
        return frame.seq > self.next_seq and (frame.seq - 1) not in self._held

    def seen(self, seq: int) -> bool:
        """Whether frame ``seq`` has come before (held, passed on, or given up on): a copy now is one sent again."""
        return seq < self.next_seq or seq in self._held

    def missing(self, limit: int = 64) -> list[int]:
        """Seqs known to be missing (oldest first, at most ``limit``): before the newest frame held, or before the
        bye's count."""
        upto = max(self._held, default=self.next_seq)
        if self._end_seq is not None:
            upto = max(upto, self._end_seq)
        out = []
        for seq in range(self.next_seq, upto):
            if len(out) >= limit:
                break
            if seq not in self._held:
                out.append(seq)
        return out

    def end(self, total: int, now: float) -> None:
        """The bye says ``total`` frames were sent: no seq at or past it will come."""
        self._end_seq = min(total, self.next_seq + MAX_GAP)
        self._end_time = now

    @property
    def done(self) -> bool:
        """Every frame up to the bye has left (delivered or lost)."""
        return self._end_seq is not None and self.next_seq >= self._end_seq

    def _waiting_since(self) -> float | None:
        """Since when the missing ``next_seq`` has held something up."""
        times = [t for _, t in self._held.values()]
        if self._end_seq is not None and self.next_seq < self._end_seq:
            times.append(self._end_time)
        return min(times) if times else None

    def _keyframe_waiting(self) -> bool:
        return self.skip_to_keyframe and any(frame.keyframe for frame, _ in self._held.values())

    def deadline(self) -> float | None:
        """When `pop` will next declare a frame lost, if nothing arrives before."""
        if self.next_seq in self._held:
            return 0.0
        since = self._waiting_since()
        return None if since is None else since + self.wait

    def pop(self, now: float) -> list[Frame | Lost]:
        """Frames (and losses) ready to go on, in seq order."""
        out: list[Frame | Lost] = []
        while True:
            if self.done:
                break
            held = self._held.pop(self.next_seq, None)
            if held is not None:
                out.append(held[0])
                self.next_seq += 1
                continue
            since = self._waiting_since()
            overfull = len(self._held) > self.capacity
            if since is None or (now - since < self.wait and not overfull and not self._keyframe_waiting()):
                break
            out.append(Lost(self.next_seq))
            self.lost += 1
            self.next_seq += 1
        return out

"""The live receiver's output clock after a loss, without a network: `LiveSession._work` driven directly."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from vsa.protocol.messages import Frame
from vsa.receiver.jitter import Lost
from vsa.receiver.live import LiveSession, ReceiverOptions
from vsa.receiver.stream import Kind, OutputFrame


class _Scripted:
    """A decoder whose frame messages each produce the next scripted groups of output kinds."""

    iterations = 1
    hello = None

    def __init__(self, script: list[list[list[Kind]]]) -> None:
        self._script = iter(script)
        self._index = 0

    def feed_groups(self, msg):
        for kinds in next(self._script):
            group = []
            for kind in kinds:
                group.append(OutputFrame(self._index, float(self._index), torch.zeros(3, 2, 2), kind))
                self._index += 1
            yield group

    def lost(self, seq: int) -> None:
        pass


def _frame(seq: int) -> Frame:
    return Frame(seq=seq, pts=2 * seq, keyframe=True, payload=b"x", capture_us=0)


def test_frames_late_because_of_a_loss_do_not_lengthen_the_playout_delay():
    S, I, C = Kind.SENT, Kind.INTERPOLATED, Kind.CONCEALED
    session = LiveSession(ReceiverOptions())
    session.decoder = _Scripted([[[S]], [[C, C, C], [S]], [[I], [S]], [[I], [S]], [[I], [S]]])
    scheduled: list[tuple[list[Kind], bool]] = []
    session._loop = SimpleNamespace(
        call_soon_threadsafe=lambda fn, group, ready, adapt: scheduled.append(([o.kind for o in group], adapt)))
    timed: list[float] = []
    session._adapt = timed.append  # what judges whether to drop a reprojection pass

    def work(item, backlog: int, held_by_loss: bool = False) -> list[bool]:
        session._backlog = backlog  # items submitted and unfinished, this one included
        start = len(scheduled)
        session._work(item, held_by_loss)
        return [adapt for _, adapt in scheduled[start:]]

    assert work(_frame(0), backlog=1) == [True]
    assert work(Lost(1), backlog=3, held_by_loss=True) == []
    # The frame behind the loss: its concealed frames never adapt the clock, nor does the sent frame
    # computed after them.
    assert work(_frame(2), backlog=2, held_by_loss=True) == [False, False]
    # Queued behind that recovery: late for the same reason.
    assert work(_frame(3), backlog=1) == [False, False]
    # Nothing was queued behind it, so the recovery is over: the next frames adapt the clock again.
    assert work(_frame(4), backlog=1) == [True, True]
    # Recovery work is not taken for a machine too slow for its passes either: only frames 0 and 4 count.
    assert len(timed) == 2

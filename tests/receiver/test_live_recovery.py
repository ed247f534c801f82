"""The live receiver's worker after a loss, without a network: `Recovery` alone, and a `Worker` on its thread."""

from __future__ import annotations

import asyncio

import torch

from vsa.protocol.messages import Frame
from vsa.receiver.jitter import Lost
from vsa.receiver.stream import Kind, OutputFrame
from vsa.receiver.worker import Recovery, Worker

S, I, C = Kind.SENT, Kind.INTERPOLATED, Kind.CONCEALED


def _job(recovery: Recovery, groups: list[list[Kind]], queued_behind: int, held_by_loss: bool = False):
    """One worker job as `Recovery` sees it: (adapt flag of each group, whether it was recovery work)."""
    recovery.begin(held_by_loss)
    flags = [recovery.group(kinds) for kinds in groups]
    return flags, recovery.end(queued_behind)


def test_frames_late_because_of_a_loss_do_not_lengthen_the_playout_delay():
    r = Recovery()
    assert _job(r, [[S]], queued_behind=0) == ([True], False)
    assert _job(r, [], queued_behind=2, held_by_loss=True) == ([], True)  # the loss itself
    # The frame behind the loss: its concealed frames never adapt the clock, nor does the sent frame
    # computed after them.
    assert _job(r, [[C, C, C], [S]], queued_behind=1, held_by_loss=True) == ([False, False], True)
    # Queued behind that recovery: late for the same reason.
    assert _job(r, [[I], [S]], queued_behind=0) == ([False, False], True)
    # Nothing was queued behind it, so the recovery is over: the next frames adapt the clock again.
    assert _job(r, [[I], [S]], queued_behind=0) == ([True, True], False)


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


async def test_the_worker_runs_jobs_in_order_on_its_thread_and_times_only_frames_not_late_from_a_loss():
    outputs: list[tuple[list[Kind], bool]] = []
    worker = Worker(lambda group, ready, adapt: outputs.append(([o.kind for o in group], adapt)))
    worker.decoder = _Scripted([[[S]], [[C, C, C], [S]], [[I], [S]]])
    try:
        jobs = [worker.submit(_frame(0)), worker.submit(Lost(1), held_by_loss=True),
                worker.submit(_frame(2), held_by_loss=True), worker.submit(_frame(3))]
        results = await asyncio.wait_for(asyncio.gather(*jobs), 10)
    finally:
        worker.shutdown()
    assert [len(r) for r in results] == [1, 0, 4, 2]
    assert [kinds for kinds, _ in outputs] == [[S], [C, C, C], [S], [I], [S]]
    assert outputs[0][1] and not any(adapt for _, adapt in outputs[1:3])
    # Frames 0 and 3 are timed for the pass controller; frame 2, computed while concealing, is not. (Frame 3
    # is timed unless it was queued behind the recovery, which depends on the thread's pace: at most 2.)
    assert 1 <= worker.frames_timed <= 2
    assert worker.backlog == 0 and worker.frames_queued == 0 and worker.iterations_used == {1: 3}

"""The live receiver's worker: one thread that owns the stream's decoder, fed by a queue.

Everything that touches the decoder (the hello and model chunks, model
updates, frames, losses, the end) goes through `Worker.call` or
`Worker.submit`, in order, onto one thread's queue (a one-thread
executor). Output groups leave through ``on_output(group, ready, adapt)``,
called on that thread; the session hands them to its event loop. The
worker's own counters are guarded by a lock, so the event loop reads them
without reaching into the thread's state.

`Recovery` is the pure rule for which output is late because data was lost
(such frames must not lengthen the playout delay, nor make the pass
controller drop a pass).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

from vsa.common.framecodec import FrameCodecError
from vsa.common.resample import to_uint8
from vsa.common.video import VideoWriter
from vsa.protocol.errors import ProtocolError
from vsa.protocol.messages import Frame

from .jitter import Lost
from .passes import PassController
from .stream import Kind, OutputFrame, SessionDecoder, StreamDecoder

log = logging.getLogger("vsa.recv")


class Recovery:
    """Which output is late because data was lost: frames released after a loss, those computed after concealing
    one, and those queued behind that work. Pure: the worker tells it each job's start, groups and end."""

    def __init__(self) -> None:
        self.active = False
        self._carried = False

    def begin(self, held_by_loss: bool) -> None:
        """A job starts; ``held_by_loss``: its frame waited in the jitter buffer for a lost one."""
        self.active = held_by_loss or self._carried

    def group(self, kinds: Iterable[Kind]) -> bool:
        """A group of output frames is ready; whether the output clock may adapt its delay to it."""
        self.active = self.active or any(kind is Kind.CONCEALED for kind in kinds)
        return not self.active

    def end(self, queued_behind: int) -> bool:
        """The job is done; whether it was recovery work. Jobs queued behind recovery work were held up by it."""
        was = self.active
        self._carried = was and queued_behind > 0
        return was


class Worker:
    """The thread that decodes, reprojects, interpolates and writes one stream."""

    def __init__(self, on_output: Callable[[list[OutputFrame], float, bool], None], adaptive: bool = True) -> None:
        self.on_output = on_output
        self.adaptive = adaptive
        """Drop reprojection passes when sent frames take longer than the time between them."""
        self.decoder: SessionDecoder | None = None
        """Set before the first job (the hello decides which kind); read elsewhere only for its figures."""
        self.writer: VideoWriter | None = None
        self.recovery = Recovery()
        self.passes: PassController | None = None  # built with the first sent frame's time
        self.iterations_used: dict[int, int] = {}
        self.undecodable = 0
        self.frames_timed = 0
        """Sent frames whose processing time the pass controller judged (recovery work is not judged)."""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vsa-reconstruct")
        self._lock = threading.Lock()
        self._backlog = 0
        self._frames_queued = 0

    @property
    def backlog(self) -> int:
        """Jobs submitted and not finished."""
        with self._lock:
            return self._backlog

    @property
    def frames_queued(self) -> int:
        """Frames submitted and not finished: what the worker is behind by."""
        with self._lock:
            return self._frames_queued

    def call(self, fn: Callable, *args) -> asyncio.Future:
        """Run ``fn(*args)`` on the worker's thread, in order with the frames (from the event loop)."""
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def submit(self, item: Frame | Lost | None, held_by_loss: bool = False) -> asyncio.Future:
        """Queue a frame, a loss, or (None) the end of the stream; the future gives its output frames."""
        is_frame = isinstance(item, Frame)
        with self._lock:
            self._backlog += 1
            self._frames_queued += is_frame
        return self.call(self._job, item, held_by_loss, is_frame)

    def _job(self, item, held_by_loss: bool, is_frame: bool) -> list[OutputFrame]:
        try:
            return self.process(item, held_by_loss)
        finally:
            with self._lock:
                self._backlog -= 1
                self._frames_queued -= is_frame

    def process(self, item: Frame | Lost | None, held_by_loss: bool = False) -> list[OutputFrame]:
        """One job, on the calling thread (the worker's, through `submit`): decode, reproject, interpolate, write."""
        start = time.perf_counter()
        frames: list[OutputFrame] = []
        self.recovery.begin(held_by_loss)
        try:
            if item is None:
                groups: Iterable[list[OutputFrame]] = [self.decoder.finish()]
            elif isinstance(item, Lost):
                self.decoder.lost(item.seq)
                groups = []
            else:
                groups = self.decoder.feed_groups(item)
            for group in groups:
                adapt = self.recovery.group(out.kind for out in group)
                # Each group to the output clock as soon as it is computed (frames between two sent ones come
                # before the second is finished), and before the (slower) mp4 encode.
                self.on_output(group, time.time(), adapt)
                frames += group
        except (ProtocolError, FrameCodecError) as exc:
            log.warning("dropping undecodable frame: %s", exc)
            self.undecodable += 1
        recovering = self.recovery.end(queued_behind=self.backlog - 1)
        if self.writer is not None:
            for out in frames:
                self.writer.write(to_uint8(out.frame[None])[0])
        elapsed = time.perf_counter() - start
        if isinstance(item, Frame):
            n = self.decoder.iterations
            self.iterations_used[n] = self.iterations_used.get(n, 0) + 1
            if not recovering:  # concealing a loss is extra work once, not a sign the machine is too slow
                self.frames_timed += 1
                self._judge(elapsed)
        return frames

    def _judge(self, elapsed: float) -> None:
        """Let the `PassController` judge a sent frame's processing time; apply the passes it decides."""
        decoder = self.decoder
        hello = decoder.hello
        if not self.adaptive or hello is None or not isinstance(decoder, StreamDecoder):
            return  # only reprojection has passes to drop
        n = decoder.iterations
        reconstructor = decoder.reconstructor
        if self.passes is None:
            self.passes = PassController(most=reconstructor.iterations if reconstructor is not None else n)
        budget = hello.stride / hello.fps
        one_pass = reconstructor.pass_seconds if reconstructor is not None else elapsed / n
        queued = self.frames_queued
        decided = self.passes.judge(elapsed, budget, n, queued, one_pass)
        if decided < n:
            log.info("falling behind (%.0f ms for the last sent frame, %.0f ms between two, %d waiting): "
                     "%d reprojection passes", elapsed * 1e3, budget * 1e3, queued, decided)
        decoder.iterations = decided

    def open_writer(self, path: str, width: int, height: int, fps: float) -> None:
        """Record every output frame to ``path`` (on the worker's thread, like every write)."""
        if self.writer is None:
            self.writer = VideoWriter(path, width, height, fps, preset="veryfast")

    def close(self, flush: bool) -> int:
        """On the worker's thread: with ``flush``, write out what an early end left decoded; close the recording.
        Returns the frames flushed."""
        flushed = 0
        if flush and self.decoder is not None:
            try:
                for out in self.decoder.finish(fill=False):
                    if self.writer is not None:
                        self.writer.write(to_uint8(out.frame[None])[0])
                    flushed += 1
            except Exception:  # noqa: BLE001 - best effort on the way out
                log.exception("could not flush the last frames")
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        return flushed

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)

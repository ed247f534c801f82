"""The live sender's online trainer, in a process of its own.

In a thread of the sender's process the trainer stalled the stream: each
round's fixed work (choosing weights, scoring drafts, coding the update) is
Python between torch calls, and it held the interpreter lock against the
coding thread. Median latency rose from 73 ms to 280-750 ms (README, "Online
adaptation"). Here the trainer runs in a child process at a lower scheduling
priority (``nice`` +10): the sender and a receiver on the same machine get
the CPU first, and the trainer has what is left.

The sender's coding thread hands each sent frame (its source, the low-res
frame the receiver decodes, and its payload's bytes) to a bounded queue and
never waits: when the queue is full the frame is dropped (counted; its bytes
still count towards the update budget). In the child a reader thread feeds
them to the `OnlineAdapter`; the child's main thread trains and puts each
update it decides to send on a second queue, which the sender relays to the
stream in order.

Both queues carry only this program's own objects, between processes this
program started (multiprocessing pickles them); nothing from a peer or a
file goes through them.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
from dataclasses import dataclass

import numpy as np

from .adapt_options import AdaptSettings

log = logging.getLogger("vsa.adapt")

FRAME_QUEUE = 16
"""Frames in flight to the trainer; the child drains them continuously, so this fills only if it stalls."""
NICENESS = 10
"""How much lower the trainer's scheduling priority is than the sender's."""
STOP_TIMEOUT = 2.0
"""Seconds a stopping trainer has to finish its step before it is terminated (it holds nothing worth waiting
for: what it did is reported after every round)."""


@dataclass
class TrainerStats:
    """What the trainer has done, as of its last round."""

    considered: int = 0
    steps: int = 0
    cuts: int = 0


@dataclass(frozen=True)
class _Setup:
    wire: bytes
    blobs: dict[bytes, bytes]
    scale: int
    codec: str
    crf: int
    fps: float
    settings: AdaptSettings
    frame_count: int


class TrainerProcess:
    """An `OnlineAdapter` in a child process: `observe` frames, `next_update` to collect its updates, `close`."""

    def __init__(self, wire: bytes, blobs: dict[bytes, bytes], scale: int, codec: str, crf: int, fps: float,
                 settings: AdaptSettings, frame_count: int = 0) -> None:
        """``wire``: the model the receiver holds (as sent); ``blobs``: the bases it may name, by sha256;
        ``frame_count``: the stream's length, 0 if unknown (`OnlineAdapter`)."""
        self.settings = settings
        # spawn, not fork: the parent runs threads (capture, coding, aiortc's) that a fork would copy mid-flight.
        context = mp.get_context("spawn")
        self._frames = context.Queue(maxsize=FRAME_QUEUE)
        self._updates = context.Queue()
        self._stop = context.Event()
        self._process = context.Process(target=_child, name="vsa-adapt", daemon=True,
                                        args=(self._frames, self._updates, self._stop))
        self._process.start()
        # The model goes first on the frame queue, whose feeder thread writes it: as an argument it would be
        # written to the child's pipe by `start`, which then waits until the child has started Python.
        self._frames.put(_Setup(wire, blobs, scale, codec, crf, fps, settings, frame_count))
        self.dropped = 0
        """Frames the trainer could not take in time (the queue was full)."""
        self._unsent_bytes = 0
        self.stats = TrainerStats()
        self.ready = False
        """Whether the child has built its model and is taking frames (`next_update` learns it)."""
        self.failed = False
        self._closed = False

    def observe(self, pts: int, source: np.ndarray, low: np.ndarray, payload_bytes: int) -> None:
        """A frame was sent (called by the coding thread; never blocks)."""
        try:
            self._frames.put_nowait((pts, source, low, payload_bytes + self._unsent_bytes))
            self._unsent_bytes = 0
        except queue.Full:
            self.dropped += 1
            self._unsent_bytes += payload_bytes

    def next_update(self, timeout: float):
        """The next update the trainer decided to send (a `vsa.sender.adapt.Update`), or None after ``timeout``
        seconds without one, or once the trainer has stopped."""
        if self.failed or self._closed:
            return None
        try:
            kind, value = self._updates.get(timeout=timeout)
        except queue.Empty:
            if not self._process.is_alive():
                log.error("the trainer process ended (exit code %s); streaming on with the model as it is",
                          self._process.exitcode)
                self.failed = True
            return None
        if kind == "update":
            return value
        if kind == "ready":
            self.ready = True
            log.info("trainer ready (process %d): adapting online", self._process.pid)
        elif kind == "round":
            self.stats = value
        else:  # "failed"
            log.error("online adaptation failed in the trainer process; streaming on with the model as it is:\n%s",
                      value)
            self.failed = True
        return None

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the trainer (its round ends at its next step) and end the process; updates not yet collected
        are dropped (the stream has ended), rounds are counted."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._process.join(timeout)
        if self._process.is_alive():
            log.warning("the trainer did not stop within %g s; terminating it", timeout)
            self._process.terminate()
            self._process.join(1.0)
        while True:
            try:
                kind, value = self._updates.get_nowait()
            except (queue.Empty, OSError, ValueError):
                break
            if kind == "round":
                self.stats = value
        for q in (self._frames, self._updates):
            q.cancel_join_thread()  # a frame still queued must not hold up the sender's exit
            q.close()


def _child(frames: "mp.Queue", updates: "mp.Queue", stop) -> None:
    """The trainer process: a reader thread observes frames; this thread trains and hands over updates."""
    import traceback

    parent = os.getppid()

    def orphaned() -> bool:
        # A sender killed outright (SIGKILL) never sets `stop`: without this the trainer would live on.
        return os.getppid() != parent

    try:
        os.nice(NICENESS)
    except (AttributeError, OSError):  # not on this platform, or not allowed: run at the same priority
        pass
    try:
        setup: _Setup = frames.get()
        import torch

        from vsa.common import bases
        from vsa.common import bundle as bundle_mod

        from .adapt import OnlineAdapter

        torch.set_num_threads(max(1, setup.settings.threads))
        lookup = lambda sha: setup.blobs.get(sha) or bases.builtin_wire(sha)  # noqa: E731
        received = bundle_mod.from_wire(setup.wire, bundle_mod.sha256(setup.wire), lookup)
        adapter = OnlineAdapter(received, setup.scale, setup.codec, setup.crf, setup.fps, setup.settings,
                                setup.frame_count)
        adapter.stop = stop  # a multiprocessing Event: the same set/is_set/wait as the threading one
        updates.put(("ready", None))

        def read() -> None:
            while not stop.is_set() and not orphaned():
                try:
                    pts, source, low, payload_bytes = frames.get(timeout=0.1)
                except queue.Empty:
                    continue
                except (EOFError, OSError):  # the sender's end of the queue is gone
                    return
                adapter.observe(pts, source, low, payload_bytes)

        reader = threading.Thread(target=read, name="vsa-adapt-frames", daemon=True)
        reader.start()
        while not stop.is_set() and not orphaned():
            pts = adapter.last_pts
            if not adapter.due(pts):
                stop.wait(0.05)
                continue
            update = adapter.consider(pts)
            # The round's count first: whoever collects an update has already counted the round that made it.
            updates.put(("round", TrainerStats(adapter.considered, adapter.steps_taken, adapter.cuts)))
            if update is not None:
                updates.put(("update", update))
        reader.join(1.0)
    except Exception:  # noqa: BLE001 - reported to the sender, which streams on without adapting
        updates.put(("failed", traceback.format_exc()))

"""The live receiver: WebRTC data channels in, reconstructed video out, in real time.

::

    media  --datagrams--> Reassembler --frames--> JitterBuffer --in order--> worker thread
    control --hello, model, bye--------------------------------------------> (StreamDecoder)
                                                                                 |
    display / latency  <-- Playout (output clock) <-- reconstructed frames ------+--> mp4

The event loop only moves bytes and keeps time; decoding, reprojection and
the mp4 writer run in one worker thread, in order (`vsa.receiver.worker`:
it owns the decoder and is fed by a queue), so networking never stalls
behind the model. The control channel's messages are handled in order by
`vsa.receiver.control`, which tells this session what it must act on.
The worker drops reprojection passes (down to one) when it falls behind,
before any frame is dropped (`vsa.receiver.passes`); the output clock
(`vsa.receiver.playout`) decides when each frame is shown.

The hello's payload type picks the decoder (`vsa.receiver.decoder`): an
INR-V stream brings one code per clip on the media channel, rendered in the
same worker at ``size`` (default: the sender's) and the output frame rate.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch

from vsa.common import webrtc
from vsa.common.congestion import (
    HARD_OVERUSE_MS_PER_S, STANDING_QUEUE_MS, ArrivalRate, DelayTrend, link_ms, standing_ms,
)
from vsa.common.framecodec import INTER_CODECS
from vsa.common.tasks import background
from vsa.protocol.errors import ProtocolError
from vsa.protocol.fragment import WIRE_OVERHEAD, Reassembler, wire_size
from vsa.protocol.messages import Frame, Hello, KeyframeRequest, Message, Stats
from vsa.protocol.messages import decode as decode_message
from vsa.protocol.messages import encode as encode_message
from vsa.protocol.retransmit import Asker, nacks

from .cache import ModelCache
from .control import ControlHandler
from .jitter import JitterBuffer, Lost
from .decoder import make_decoder
from .playout import ON_TIME, Playout
from .stream import Kind, OutputFrame, SessionDecoder
from .worker import Worker

log = logging.getLogger("vsa.recv")

KEYFRAME_RETRY_S = 0.25
"""A keyframe request not answered yet is sent again this often (on the media channel, where it may be lost)."""
LATE_MS = 150.0
"""A sent frame whose whole arrival is this much later than the usual delay of the last second is late for
something of the moment (a keyframe's length on the link, a queue beginning to fill), as is one behind a
standing queue (which the sender drains): what waited for it does not lengthen the output clock's delay."""
QUEUED_MS = STANDING_QUEUE_MS
"""A sent frame whose whole arrival is this much later than the least delay lately, beyond its own length on the
link at the rate arriving, is late for a queue, even once a standing one has made that the usual. (A fixed 300 ms,
set so that a 1 KB frame on a free 60 kbps link, 150-250 ms above the least learned at 300 kbps, was not late,
let the frames behind a 270 ms queue after a link fell set the output clock's delay to 410 ms.)"""
MAX_ANCHOR_WAIT_US = 1_000_000
"""How far ahead of an output frame its next sent frame may have been captured for `_behind_a_queue` to count
it (a wider span is the sender skipping, which marks the frame bridged anyway)."""
EARLY_STATS_GAP_S = 0.25
"""Least time between two reports when a queue builds (`standing_ms`), rather than a second."""


@dataclass
class ReceiverOptions:
    listen: tuple[str, int] = (webrtc.DEFAULT_HOST, webrtc.DEFAULT_PORT)
    token: str | None = None
    bind: str | None = None
    """Address for ICE host candidates; defaults to the listen address when that is loopback."""
    device: torch.device | str = "cpu"
    iterations: int | None = None
    """Reprojection passes at most; None: the model's architecture's default (2 for ae, 1 for sr)."""
    back_project: str | None = None
    """None: the model's architecture's default (auto for ae, never for sr)."""
    fps: float | None = None
    size: tuple[int, int] | None = None
    """Render size of INR-V streams (default: the sender's); autoencoder streams keep their own."""
    output: str | None = None
    jitter_frames: float = 2.0
    """How long (in source frames) a missing frame is waited for before it counts as lost (longer while a repair
    may come: `vsa.protocol.retransmit.Asker.wait_s`)."""
    on_time: float = ON_TIME
    """The share of recent frames the output clock's delay waits for (`vsa.receiver.playout.ON_TIME`): higher is
    smoother and later."""
    repair: bool = True
    """Ask the sender for frames lost on the way (an inter-coded stream from a sender that reads feedback);
    False: ask for a keyframe at once."""
    cache: ModelCache | None = None
    adaptive: bool = True
    """Drop reprojection passes when the worker falls behind."""
    idle_timeout: float = 10.0
    """End the session when nothing arrives for this long."""
    stats_interval: float = 1.0
    adapt: bool = True
    """Apply the model updates of a sender that adapts online (and say so in `Ready`)."""
    with_baseline: bool = False
    """Also make each frame's bicubic twin (`OutputFrame.baseline`): the web viewer's comparison shows it."""


@dataclass
class SessionReport:
    frames: int = 0
    counts: dict = field(default_factory=dict)
    lost: int = 0
    late: int = 0
    """Frames that arrived after the jitter buffer had given them up."""
    shown_late: int = 0
    """Frames ready only after their due time on the output clock (shown as soon as ready)."""
    garbage: int = 0
    model_transferred: bool = False
    model_resumed_at: int = 0
    """Where a model transfer cut in an earlier session was resumed from (bytes; 0: not resumed)."""
    media_bytes: int = 0
    control_bytes: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    """Capture-to-display latency of every shown frame (same-machine clocks)."""
    display_gaps_ms: list[float] = field(default_factory=list)
    """Time between consecutive shown frames."""
    iterations_used: dict[int, int] = field(default_factory=dict)
    keyframe_requests: int = 0
    repaired: int = 0
    """Frames that arrived after they were asked for again (`vsa.protocol.retransmit`)."""
    nacks: int = 0
    """Requests for a frame to be sent again (a frame asked for twice counts twice)."""
    update_bytes: int = 0
    updates_applied: int = 0
    updates_refused: int = 0
    model_version: int = 0
    """The model version playing at the end (0: the model of the hello; n: after the n-th update)."""
    scale_switches: int = 0
    """Times the frames' scale changed mid-stream (a sender moving along its ladder)."""
    error: str | None = None
    hello: Hello | None = None

    def latency(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    def summary(self) -> str:
        parts = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
        gap = max(self.display_gaps_ms, default=0.0)
        return (
            f"{self.frames} frames ({parts}); {self.lost} lost in transit, {self.garbage} bad messages"
            + (f"; {self.repaired} repaired by retransmission ({self.nacks} requests)" if self.nacks else "")
            + "\n"
            f"media {self.media_bytes * 8 / 1000 / max(self.seconds, 1e-9):.1f} kbps, "
            f"model {'transferred' if self.model_transferred else 'from cache'}\n"
            f"latency median {self.latency(0.5):.0f} ms, p95 {self.latency(0.95):.0f} ms; "
            f"longest display gap {gap:.0f} ms; {self.shown_late} frames shown late"
            + (f"\nmodel updates: {self.updates_applied} applied, {self.updates_refused} refused, "
               f"{self.update_bytes * 8 / 1000 / max(self.seconds, 1e-9):.1f} kbps; playing version "
               f"{self.model_version}" if self.update_bytes else "")
        )


class _Window:
    """Counters over the last stats interval."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.media_bytes = self.control_bytes = self.update_bytes = self.shown = 0
        self.latencies: list[float] = []


class LiveSession:
    """One stream from one sender, over an answered peer connection."""

    def __init__(self, options: ReceiverOptions, on_display: Callable[[OutputFrame, dict], None] | None = None,
                 on_stream: Callable[[int, int], None] | None = None) -> None:
        """``on_display(frame, overlay)`` shows a frame; ``on_stream(height, width)`` is told the output size
        once the model is in, before `ready` (a window opens then, not on the first frame)."""
        self.options = options
        self.on_display = on_display
        self.on_stream = on_stream
        self.worker = Worker(self._output, adaptive=options.adaptive)
        """Owns the decoder: everything that touches it runs on the worker's thread, in order."""
        # Replaced by the hello's own kind of decoder (`_decoder_for`); until then, nothing is ready.
        self.worker.decoder = self._decoder_for(None)
        self.report = SessionReport()
        self.reassembler = Reassembler()
        self.jitter: JitterBuffer | None = None
        self.playout: Playout | None = None
        self.control = self.media = None
        self.control_handler = ControlHandler(self.worker, self._send, self, self._decoder_for, options.cache,
                                              options.output, on_stream)
        """Hello, model, updates and bye, in order (`vsa.receiver.control`)."""
        self._to_show: list[tuple[float, OutputFrame]] = []
        self._new_frames = asyncio.Event()
        self._finishing = False
        self._overlay: dict = {}
        self._done = asyncio.Event()
        self._last_rx = time.monotonic()
        self._last_keyframe_request = 0.0
        self._keyframe_repeated_at = 0.0
        self._keyframe_wanted: KeyframeRequest | None = None
        """The request for a keyframe that none has answered yet: repeated on the media channel, where it may be
        lost."""
        self.asker: Asker | None = None
        """Asks for missing frames of an inter-coded stream again (set by the hello)."""
        self._repaired: set[int] = set()
        """Seqs that arrived after they were asked for and have not left the jitter buffer yet."""
        self._base_wait = 0.0
        self._window = _Window()
        self._delay = DelayTrend()
        """How fast one-way delay grows, and the queue it stands for: the sender's congestion control reads
        both in `Stats`."""
        self._arrivals = ArrivalRate()
        self._newest_capture_us = 0
        self._arrived: deque[tuple[int, bool]] = deque(maxlen=256)
        """(capture_us, whether it came over `LATE_MS` later than the path's usual delay, or `QUEUED_MS` beyond
        its own length later than its least) of the recent sent frames."""
        self._stats_due = asyncio.Event()
        """Set when a queue builds on the path: the next report goes now, not at the next second."""
        self._last_stats_at = time.monotonic()
        self._lost_reported = self._received_reported = 0
        self._last_shown_at: float | None = None
        self._started = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def decoder(self) -> SessionDecoder:
        """The worker's decoder (the event loop reads its figures; only the worker's thread changes it)."""
        return self.worker.decoder

    def _decoder_for(self, hello: Hello | None) -> SessionDecoder:
        o = self.options
        inrv = hello is not None and hello.payload == "codes"
        if o.size is not None and hello is not None and not inrv:
            log.warning("--size applies to INR-V streams; this autoencoder stream plays at its own size")
        return make_decoder(hello, o.device, o.iterations, o.back_project, with_baseline=o.with_baseline,
                            output_fps=o.fps,
                            size=o.size if inrv else None, batch=1,
                            model_lookup=o.cache.get if o.cache is not None else None, adapt=o.adapt)

    # -- wiring ------------------------------------------------------------------------------

    def attach(self, pc) -> None:
        @pc.on("datachannel")
        def on_channel(channel) -> None:
            if channel.label == webrtc.CONTROL_LABEL:
                self.control = channel
                channel.on("message", self._on_control)
            elif channel.label == webrtc.MEDIA_LABEL:
                self.media = channel
                channel.on("message", self._on_media)
            else:
                log.warning("ignoring unexpected data channel %r", channel.label)
            channel.on("close", self._on_close)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._on_close()

    def _on_close(self) -> None:
        if not self._done.is_set():
            if self.jitter is not None and not self.jitter.done:
                self.report.error = self.report.error or "sender went away before the end of the stream"
            self._done.set()

    def _send(self, msg: Message) -> None:
        if self.control is not None and self.control.readyState == "open":
            data = encode_message(msg)
            self.control.send(data)
            self._count_control(len(data))

    def _feedback_on_media(self) -> bool:
        """Whether the sender reads replies on the media channel (its hello says ``feedback``)."""
        hello = self.report.hello
        return hello is not None and hello.feedback and self.media is not None and self.media.readyState == "open"

    def _send_feedback(self, msg: Message) -> None:
        """A streaming reply (`Stats`, `KeyframeRequest`, `Nack`): on the media channel when the sender reads it
        there, where a lost one does not hold back the ones after it; else on control."""
        if not self._feedback_on_media():
            self._send(msg)
            return
        data = encode_message(msg)
        self.media.send(data)
        self._count_control(len(data))

    def _count_control(self, n: int) -> None:
        self._window.control_bytes += n
        self.report.control_bytes += n

    # -- control -----------------------------------------------------------------------------

    def _on_control(self, data) -> None:
        self._last_rx = time.monotonic()
        if not isinstance(data, bytes):
            self.report.garbage += 1
            return
        self._count_control(len(data))
        if not self.control_handler.push(data):
            self.report.garbage += 1

    # -- what the control handler tells the session (`ControlEvents`) ------------------------------

    def stream_started(self, hello: Hello) -> None:
        self.report.hello = hello
        frame_time = 1.0 / hello.fps
        inter = hello.codec in INTER_CODECS
        # An inter-coded stream cannot go on past a hole but by a keyframe: ask for the frame again first, and
        # wait as long as a repair takes. (An intra-coded one interpolates across it.)
        self.asker = Asker() if inter and hello.feedback and self.options.repair else None
        self._base_wait = self.options.jitter_frames * frame_time
        self.jitter = JitterBuffer(wait=self._repair_wait(), skip_to_keyframe=inter)
        self.playout = Playout(self.decoder.output_fps or hello.fps, quantile=self.options.on_time)
        if hello.payload == "codes":
            what = f"INR-V codes ({hello.codec}, one per {hello.stride} frames)"
        else:
            what = f"scale {hello.scale}, stride {hello.stride}, {hello.codec} payload"
        log.info("stream from %s: %dx%d at %g fps, %s, model %s (%d KiB)", hello.source or "sender",
                 hello.height, hello.width, hello.fps, what, hello.model_sha256.hex()[:12], hello.model_size // 1024)

    def update_received(self, nbytes: int) -> None:
        self._window.update_bytes += nbytes
        self.report.update_bytes += nbytes

    def stream_ending(self, frames: int) -> None:
        if self.jitter is None:
            raise ProtocolError("bye before hello")
        self.jitter.end(frames, time.monotonic())
        self._pump()

    def failed(self, reason: str) -> None:
        self.report.error = self.report.error or reason
        log.error("%s", reason)
        self._done.set()

    def refused(self) -> None:
        self.report.garbage += 1

    # -- media -------------------------------------------------------------------------------

    def _on_media(self, data) -> None:
        now = time.monotonic()
        self._last_rx = now
        if not isinstance(data, bytes):
            self.report.garbage += 1
            return
        # The rates the sender's congestion control reads are what the path carried, every header included: the
        # sender's target covers them, and a 60 kbps link carries 38 kbps of small frames at 30 a second.
        self._window.media_bytes += len(data) + WIRE_OVERHEAD
        self._arrivals.arrived(now, len(data) + WIRE_OVERHEAD)
        self.report.media_bytes += len(data)
        try:
            whole = self.reassembler.feed(data, now)
            if whole is None:
                return
            msg = decode_message(whole)
            if not isinstance(msg, Frame):
                raise ProtocolError(f"{type(msg).__name__} does not belong on the media channel")
            if self.jitter is None or not self.decoder.ready:
                raise ProtocolError("frame before the stream is ready")
        except ProtocolError as exc:
            self.report.garbage += 1
            log.debug("ignoring bad media message: %s", exc)
            return
        assert self.playout is not None
        repaired = self._note_repair(msg.seq, now)
        # A copy of a frame already held, played or given up on (sent again after the wait ended, or an FEC
        # repeat): late by a round trip and a wait, not by a queue. Read as a delay, one such copy on the lossy
        # 60 kbps link made the reported queue a second long (1028 ms) while the link's queue was empty.
        again = repaired or self.jitter.seen(msg.seq)
        if msg.capture_us:
            wall, capture = time.time(), msg.capture_us / 1e6
            self.playout.arrived(capture, wall)
            self._newest_capture_us = max(self._newest_capture_us, msg.capture_us)
            if again:
                # Late by a round trip, not by a queue: its delay says nothing of the path, and what waited
                # for it is late for a loss.
                late = True
            else:
                # The queue on the path delays a frame's first datagram; a large frame's own length only its last.
                self._delay.arrived(capture, wall - (now - self.reassembler.first_seen))
                self._delay.completed(capture, wall)
                # Whole, the frame is late by the queue ahead of it and by its own length on the link: a keyframe
                # crossing a slow link makes itself and the frames behind it late, for a moment.
                own_ms = link_ms(wire_size(len(whole)), self._arrivals.bps(now))
                late = (self._delay.above_usual_ms(capture, wall) > LATE_MS
                        or self._delay.above_least_ms(capture, wall) > QUEUED_MS + own_ms)
            self._arrived.append((msg.capture_us, late))
            if (not again and now - self._last_stats_at >= EARLY_STATS_GAP_S and not self._stats_due.is_set()
                    and self._queue_building(now)):
                # A queue is building on the path: tell the sender now, not at the next second. Sending 150
                # kbps into a link that fell to 60 fills a 16 KB queue in about a second.
                self._stats_due.set()
        log.debug("frame seq %d pts %d%s arrived", msg.seq, msg.pts, " (key)" if msg.keyframe else "")
        if msg.keyframe and self._keyframe_wanted is not None and msg.seq > self._keyframe_wanted.after_seq:
            self._keyframe_wanted = None
        if self.jitter.push(msg, now):
            log.debug("hole before seq %d", msg.seq)
            if self.asker is None:
                self._request_keyframe()  # no repair to wait for: the keyframe at once
            else:
                self._ask_again(now)
        self._pump()

    # -- repair --------------------------------------------------------------------------------

    def _repair_wait(self) -> float:
        """How long the jitter buffer waits for a missing frame: long enough for it to be sent again."""
        return max(self._base_wait, self.asker.wait_s) if self.asker is not None else self._base_wait

    def _note_repair(self, seq: int, now: float) -> bool:
        """Whether frame ``seq``, just arrived, is one that was asked for again (and still wanted)."""
        if self.asker is None or self.jitter is None or seq < self.jitter.next_seq:
            return False
        if not self.asker.arrived(seq, now):
            return False
        self._repaired.add(seq)
        self.jitter.wait = self._repair_wait()
        return True

    def _ask_again(self, now: float) -> None:
        """Ask the sender for the missing frames that are due a request (`Asker.due`), on the media channel."""
        if self.asker is None or self.jitter is None or not self._feedback_on_media():
            return
        missing = self.jitter.missing()
        if not missing:
            return
        self.asker.queue_s = self._delay.queue_ms(time.time()) / 1000
        self.jitter.wait = self._repair_wait()
        seqs = self.asker.due(missing, now)
        if not seqs:
            return
        log.debug("asking again for frames %s", seqs)
        for nack in nacks(seqs):
            self._send_feedback(nack)

    def _request_keyframe(self) -> None:
        # An inter-coded stream cannot go on past a hole: called once the frame is given up on (`_pump`).
        now = time.monotonic()
        hello = self.decoder.hello
        if hello is None or hello.codec not in INTER_CODECS or now - self._last_keyframe_request < 2.0 / hello.fps:
            return
        self._last_keyframe_request = now
        self.report.keyframe_requests += 1
        self._keyframe_wanted = KeyframeRequest(max(0, (self.jitter.next_seq if self.jitter else 1) - 1))
        self._send_feedback(self._keyframe_wanted)

    def _repeat_keyframe_request(self, now: float) -> None:
        """Ask again for a keyframe not yet come (the sender takes a repeat of a request it answered for one).
        Repeats have a clock of their own: on `_last_keyframe_request`'s they held back a new request, for a
        keyframe lost on the way, and the repeats of the answered one went unheeded until the next group."""
        if (self._keyframe_wanted is not None and self._feedback_on_media()
                and now - max(self._last_keyframe_request, self._keyframe_repeated_at) >= KEYFRAME_RETRY_S):
            self._keyframe_repeated_at = now
            self._send_feedback(self._keyframe_wanted)

    def _pump(self) -> None:
        if self.jitter is None:
            return
        # Frames released after a loss waited in the buffer for it: late because data was lost.
        held_by_loss = False
        items = self.jitter.pop(time.monotonic())
        for i, item in enumerate(items):
            if isinstance(item, Lost):
                log.debug("seq %d lost", item.seq)
                # Not when a keyframe behind the hole ended the wait: the decoder starts again there. (Asked for,
                # each keyframe that answered a loss set off another, for the holes it overtook.)
                if not any(isinstance(later, Frame) and later.keyframe for later in items[i + 1:]):
                    self._request_keyframe()
                held_by_loss = True
            elif item.seq in self._repaired:
                self._repaired.discard(item.seq)
                held_by_loss = True
            self.worker.submit(item, held_by_loss).add_done_callback(self._worked)
        if self.asker is not None:
            self.asker.settled(self.jitter.next_seq)
        if self.jitter.done and not self._finishing and self.worker.backlog == 0:
            self._finishing = True
            self.worker.submit(None).add_done_callback(self._finished)

    def _output(self, group: list[OutputFrame], ready: float, adapt: bool) -> None:
        """Called on the worker's thread with each group it computes: to the output clock, on the event loop."""
        self._loop.call_soon_threadsafe(self._schedule, group, ready, adapt)

    def _worked(self, future) -> None:
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - a worker crash must end the session, loudly
            self.report.error = f"reconstruction failed: {exc!r}"
            log.exception("reconstruction failed")
            self._done.set()
            return
        if self.jitter is not None and self.jitter.done:
            self._pump()

    def _finished(self, future) -> None:
        self._worked(future)
        # The last frames were scheduled with call_soon_threadsafe: end after them.
        self._loop.call_soon(self._done.set)

    # -- output clock ------------------------------------------------------------------------

    def _schedule(self, frames: list[OutputFrame], ready: float, adapt: bool = True) -> None:
        assert self.playout is not None
        for out in frames:
            self.report.frames += 1
            capture = out.capture_us / 1e6 if out.capture_us else ready
            # Frames late for a loss, for frames the sender skipped, or for a queue on the path (which the sender
            # drains once it hears of it, or a keyframe's length) are shown as soon as they are ready, without
            # lengthening the delay of every frame after them: raised for a congested link's second of queue, it
            # held the latency near a second for 3 s after the queue had drained, and on a 60 kbps link each
            # keyframe held it at 0.6 s.
            late_for_other = out.kind is Kind.CONCEALED or out.bridged or self._behind_a_queue(out.capture_us)
            due = self.playout.due(capture, ready, adapt=adapt and not late_for_other)
            self.report.shown_late += due < ready
            self._to_show.append((due, out))
        self._new_frames.set()

    async def _display_loop(self) -> None:
        """Show each frame at its due time; of several already due, only the newest is shown."""
        while not (self._done.is_set() and not self._to_show):
            now = time.time()
            due = 0
            while due < len(self._to_show) and self._to_show[due][0] <= now:
                due += 1
            if due:
                shown = self._to_show[due - 1][1]
                del self._to_show[:due]
                self._show(shown, now)
                continue
            if self._done.is_set():
                # The stream is over: show the rest on its own clock, without waiting for more.
                await asyncio.sleep(max(0.0, self._to_show[0][0] - now))
                continue
            wait = self._to_show[0][0] - now if self._to_show else 0.05
            self._new_frames.clear()
            try:
                await asyncio.wait_for(self._new_frames.wait(), timeout=min(max(wait, 0.0005), 0.05))
            except asyncio.TimeoutError:
                pass

    def _show(self, out: OutputFrame, now: float) -> None:
        if out.capture_us:
            latency = (now - out.capture_us / 1e6) * 1e3
            self.report.latencies_ms.append(latency)
            self._window.latencies.append(latency)
        if self._last_shown_at is not None:
            self.report.display_gaps_ms.append((now - self._last_shown_at) * 1e3)
        log.debug("show %d (%s)", out.index, out.kind.value)
        self._last_shown_at = now
        self._window.shown += 1
        if self.on_display is not None:
            self.on_display(out, self.overlay())

    # -- stats -------------------------------------------------------------------------------

    def overlay(self) -> dict:
        """The figures the display draws over the video (refreshed once a second)."""
        return dict(self._overlay)

    def _behind_a_queue(self, capture_us: float) -> bool:
        """Whether an output frame waited for a sent frame that came late (`LATE_MS`): itself, or
        (interpolated) the next sent one, the first sent frame captured at or after it."""
        arrived = self._arrived
        i = bisect.bisect_left(arrived, (capture_us - 1,))  # interpolated captures are computed: allow rounding
        return i < len(arrived) and arrived[i][1] and arrived[i][0] - capture_us < MAX_ANCHOR_WAIT_US

    def _queue_building(self, now: float) -> bool:
        """Whether the path holds a queue the sender should hear of before the next second: a standing one, or
        past `STANDING_QUEUE_MS` and growing fast (as right after a link falls, before the rate arriving, and
        with it `standing_ms`, says how far)."""
        queue = self._delay.queue_ms()
        return queue > standing_ms(self._arrivals.bps(now)) or (
            queue > STANDING_QUEUE_MS and self._delay.slope_ms_per_s() > HARD_OVERUSE_MS_PER_S)

    async def _stats_loop(self) -> None:
        """A report once a second, or sooner when a queue builds on the path (`_on_media` asks for it)."""
        interval = self.options.stats_interval
        while not self._done.is_set():
            remaining = interval - (time.monotonic() - self._last_stats_at)
            if remaining > 0:
                # The session's end wakes it too: its last report carries the final counts to the sender.
                waiters = {asyncio.ensure_future(self._done.wait()), asyncio.ensure_future(self._stats_due.wait())}
                _, pending = await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                for waiter in pending:
                    waiter.cancel()
            self._stats_due.clear()
            now = time.monotonic()
            interval_s = max(0.05, now - self._last_stats_at)  # what the window's counts were gathered over
            self._last_stats_at = now
            w = self._window
            counts = self.decoder.counts
            lat = statistics.median(w.latencies) if w.latencies else 0.0
            self._overlay = {
                "media_kbps": w.media_bytes * 8 / 1000 / interval_s,
                "control_kbps": w.control_bytes * 8 / 1000 / interval_s,
                "fps": w.shown / interval_s,
                "latency_ms": lat,
                "lost": self.decoder.frames_lost,
                "iterations": self.decoder.iterations,
                "model_version": getattr(self.decoder, "model_version", 0),
                "update_kbps": w.update_bytes * 8 / 1000 / interval_s,
            }
            o = self._overlay
            log.info(
                "media %.1f kbps on the path, control %.1f kbps | %.1f fps | received %d, interpolated %d, "
                "concealed %d, lost %d | latency %.0f ms | %d passes | model v%d, updates %.1f kbps",
                o["media_kbps"], o["control_kbps"], o["fps"], self.decoder.session.frames_received,
                counts[Kind.INTERPOLATED], counts[Kind.CONCEALED], o["lost"], lat, o["iterations"],
                o["model_version"], o["update_kbps"],
            )
            lost = self.decoder.frames_lost - self._lost_reported
            received = self.decoder.session.frames_received - self._received_reported
            self._lost_reported += lost
            self._received_reported += received
            if self.decoder.ready:
                wall = time.time()  # the delays' clock: a report on a silent path says no queue, not the last one
                trend = self._delay.slope_ms_per_s(wall)
                # The last report, at the session's end, carries the final counts: on the reliable channel.
                send = self._send if self._done.is_set() else self._send_feedback
                send(Stats(
                    received=self.decoder.session.frames_received, interpolated=counts[Kind.INTERPOLATED],
                    concealed=counts[Kind.CONCEALED], lost=self.decoder.frames_lost, fps=min(o["fps"], 1000.0),
                    media_kbps=min(o["media_kbps"], 1e7), latency_ms=min(lat, 1e7),
                    iterations=min(self.decoder.iterations, 64),  # the stats schema caps it
                    model_version=o["model_version"], updates_refused=getattr(self.decoder, "updates_refused", 0),
                    delay_trend=max(-1e5, min(1e5, trend)), queue_delay=min(self._delay.queue_ms(wall), 1e7),
                    loss=lost / (lost + received) if lost + received else 0.0,
                    arrival_kbps=min(self._arrivals.bps(now) / 1000, 1e7), newest_capture_us=self._newest_capture_us,
                    transit_ms=min(self._delay.transit_ms(wall), 1e7),
                ))
            w.reset()

    async def _timer_loop(self) -> None:
        """Expire incomplete frames and missing ones on time, and notice a silent sender."""
        while not self._done.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            if self.jitter is not None:
                self.reassembler.expire(now, self.jitter.wait)
                self._pump()
                self._ask_again(now)
                self._repeat_keyframe_request(now)
            if now - self._last_rx > self.options.idle_timeout:
                self.report.error = self.report.error or f"nothing received for {self.options.idle_timeout:g} s"
                self._done.set()

    # -- run ---------------------------------------------------------------------------------

    def _loop_failed(self, name: str, exc: BaseException) -> None:
        """A session loop raised (logged by `background`): the session ends with that error, the server goes on."""
        self.report.error = self.report.error or f"{name} failed: {exc}"
        self._done.set()

    async def run(self, pc) -> SessionReport:
        self._loop = asyncio.get_running_loop()
        loops = {"the control loop": self.control_handler.run(self._done), "the display loop": self._display_loop(),
                 "the stats loop": self._stats_loop(), "the timer loop": self._timer_loop()}
        tasks = [background(coro, name, on_error=self._loop_failed) for name, coro in loops.items()]
        try:
            await self._done.wait()
            # Let the display loop show what is left, then stop everything.
            await asyncio.wait_for(asyncio.shield(tasks[1]), timeout=5.0)
        except asyncio.TimeoutError:
            pass
        finally:
            # Every loop also ends on its own once done is set: on Python 3.11, wait_for can swallow a
            # cancellation (when its inner wait finishes at the same moment), and a loop that missed
            # its cancel would keep the event loop from ever closing.
            self._done.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.report.frames += await self.worker.call(self.worker.close, not self.decoder.ended)
            self._keep_partial_transfers()
            self.worker.shutdown()
            await pc.close()
        r = self.report
        r.counts = {k.value: n for k, n in self.decoder.counts.items()}
        r.model_transferred = self.control_handler.model_transferred
        r.model_resumed_at = self.control_handler.model_resumed_at
        r.lost = self.decoder.frames_lost
        r.late = self.jitter.late if self.jitter else 0
        r.repaired, r.nacks = (self.asker.repaired, self.asker.asked) if self.asker else (0, 0)
        r.seconds = time.monotonic() - self._started
        r.updates_applied = getattr(self.decoder, "updates_applied", 0)
        r.updates_refused = getattr(self.decoder, "updates_refused", 0)
        r.model_version = getattr(self.decoder, "model_version", 0)
        r.scale_switches = getattr(self.decoder, "scale_switches", 0)
        r.iterations_used = dict(self.worker.iterations_used)
        r.garbage += self.worker.undecodable
        return r

    def _keep_partial_transfers(self) -> None:
        """A model transfer cut by the session's end is kept, so the sender's next session sends only the rest."""
        if self.options.cache is None:
            return
        for sha, data in self.decoder.session.partial_blobs().items():
            log.info("keeping %d bytes of a cut model transfer, to resume from", len(data))
            self.options.cache.put_partial(sha, data)


async def serve(options: ReceiverOptions, sessions: int = 1, server: webrtc.SignalingServer | None = None,
                on_display: Callable[[OutputFrame, dict], None] | None = None,
                on_stream: Callable[[int, int], None] | None = None,
                on_listening: Callable[[int], None] | None = None) -> list[SessionReport]:
    """Accept ``sessions`` streams one after another (0: forever); return their reports."""
    own = server is None
    if server is None:
        server = webrtc.SignalingServer(*options.listen, token=options.token)
        await server.start()
    host = options.listen[0]
    bind = options.bind or (host if webrtc.is_loopback(host) else None)
    if on_listening is not None:
        on_listening(server.port)
    log.info("listening on %s:%d", host, server.port)
    reports = []
    try:
        while sessions == 0 or len(reports) < sessions:
            offer = await server.next_offer()
            log.info("offer from %s", offer.peer)
            pc = webrtc.make_peer()
            session = LiveSession(options, on_display, on_stream)
            try:
                session.attach(pc)
                await offer.answer(pc, bind=bind)
                report = await session.run(pc)
            except Exception as exc:  # noqa: BLE001 - one session's failure (a bad offer, a bug) never ends the server
                log.warning("session from %s failed: %s: %s", offer.peer, type(exc).__name__, exc)
                offer.close()
                await pc.close()
                report = session.report
                report.error = report.error or f"session failed: {type(exc).__name__}: {exc}"
            log.info("session ended%s", f" ({report.error})" if report.error else "")
            reports.append(report)
    finally:
        if own:
            await server.close()
    return reports

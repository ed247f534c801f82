"""The live sender: a camera or file in, a vsa stream out over WebRTC data channels.

1. Connect to the receiver (signaling with retries), open ``control``
   (reliable) and ``media`` (unordered, no retransmits).
2. Send the hello on control. The receiver answers `Ready` (model cached)
   or `ModelRequest`; the model then goes in 64 KiB chunks, with
   back-pressure, and frames wait for `Ready`.
3. Capture frames at the source's pace (a file plays at its own frame rate,
   as a camera would deliver it), code every stride-th one, cut each
   message into datagrams of at most 1200 bytes and send them paced.
4. A `Nack` from the receiver, on the media channel, names frames that did
   not arrive whole: their datagrams go again from the last second's
   (`vsa.protocol.retransmit`). A `KeyframeRequest` (a frame the receiver
   gave up on) makes the very next captured frame a keyframe, sent even off
   the stride.
5. Forward error correction (``fec``): each frame's datagrams go out a
   second time `FEC_SPACING` later, so a frame lost once is still complete at
   the receiver, a few ms late, and nothing freezes. It doubles the media
   rate, so by default (``auto``) it runs only for `FEC_HOLD` seconds after
   the receiver reports a frame lost for good (a keyframe request or a stats
   message): where retransmission is too slow to repair it.

An INR-V model streams one code per clip instead of frames
(`vsa.sender.inrv_stream.CodeEncoder`), over the same channels. Coding runs
in its own thread, in capture order, and a send loop sends what it returns
in the same order: an inversion takes most of a clip's duration and must
not stop the capture queue from being drained.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from vsa.common import webrtc
from vsa.common.congestion import QUEUE_SECONDS, OwnQueue, RateController, Report
from vsa.common.link import LinkSpec
from vsa.common.tasks import background
from vsa.common.video import VideoSource, default_working_size, fit_frame
from vsa.protocol.errors import ProtocolError
from vsa.protocol.fragment import MAX_DATAGRAM, fragment, wire_bytes
from vsa.protocol.messages import Bye, Frame, Message, ModelUpdate
from vsa.protocol.messages import decode as decode_message
from vsa.protocol.messages import encode as encode_message
from vsa.protocol.retransmit import History
from vsa.protocol.session import FramesWanted, KeyframeWanted, ModelWanted, PeerClosed, PeerReady, PeerStats

from .adapt_options import AdaptSettings
from .adapt_process import TrainerProcess
from .bitrate import BitrateKeeper
from .inrv_stream import CodeEncoder, CodeSettings
from .record import Recorder
from .shipment import load_model
from .ladder import (
    DEFAULT_LADDER, DEFAULT_LATENCY_MS, LIVE_FRAME_BYTES, Rung, rung_kbps, settle, suitable, transit_budget_ms,
    within_latency,
)
from .stream import MODEL_CHUNK, StreamEncoder, StreamSettings

log = logging.getLogger("vsa.send")

CONTROL_HIGH_WATER = 1024 * 1024
MEDIA_HIGH_WATER = 256 * 1024
"""Media queued beyond this means the path cannot keep up: frames are skipped, not queued."""
FEC_MODES = ("auto", "on", "off")
FEC_HOLD = 10.0
"""``fec="auto"``: after a reported loss, send every frame twice for this long."""
FLOOR_SHARE = 0.1
"""Under ``--kbps N``, the congestion controller may go down to this share of N ..."""
RUNG_HOLD_S = 2.0
"""Least time between two moves along the ladder: each new scale starts with a keyframe."""
RUNG_UP_HEADROOM = 1.25
"""A finer rung only once the target is this much above its rate: the move starts with a keyframe, and a rung
just under the path's rate left it no room for one (on a 60 kbps link, the 55.6 kbps rung at 192x256 queued
1.7 s of delay behind its keyframe)."""
TARGET_KEYFRAME_GAP_S = 1.0
"""Under a target, keyframe requests are answered at most this often (the receiver asks at every hole)."""
MIN_TARGET_BPS = 5000.0
"""... but never below this: under it not even the coarsest rung's frames fit."""
FEC_SPACING = 0.015
"""Seconds between a frame's two copies: apart enough to outlast a short burst of loss, close enough
that a frame recovered from its repeat is barely late (the playout delay grows by that much)."""
RECEIVER_SILENCE = 10.0
"""Seconds without a word from a ready receiver (it sends stats every second) after which it is taken for gone:
a receiver killed outright sends no goodbye, and ICE consent checks took 36 s to notice."""
INVERT_SHARE = 0.75
"""Live INR-V: a clip's inversion may take this share of the clip's duration, so coding keeps up."""


@dataclass
class SenderOptions:
    connect: tuple[str, int] = (webrtc.DEFAULT_HOST, webrtc.DEFAULT_PORT)
    token: str | None = None
    bind: str | None = None
    """Address for ICE host candidates; defaults to the receiver's address when that is loopback."""
    settings: StreamSettings = field(default_factory=lambda: StreamSettings(stride=2))
    codes: CodeSettings = field(default_factory=lambda: CodeSettings(codes="auto"))
    """For INR-V models: where each clip's code comes from, its format, the inversion budget."""
    size: tuple[int, int] | None = None
    loop: bool = False
    limit: int | None = None
    """Stop after this many source frames."""
    timeout: float = 30.0
    """For connecting, and for the receiver to load the model."""
    pace_kbps: float = 20000.0
    """Media datagrams go out no faster than this, so bursts do not overflow the receiver's socket."""
    fec: str = "auto"
    """Send each frame again with the next: "on", "off", or "auto" (for a while after a reported loss)."""
    drop_media: float = 0.0
    """Test hook: drop this fraction of media datagrams, as a lossy network would."""
    seed: int = 0
    stats_interval: float = 1.0
    adapt: AdaptSettings | None = None
    """Online adaptation (`vsa.sender.adapt`), for a model whose architecture can and a receiver that applies
    updates; None: off (`vsend --adapt` turns it on)."""
    record: str | None = None
    """Also write the stream as sent to this `.vsa` file (`vsa.sender.record`)."""
    link: LinkSpec | None = None
    """Send and receive through an emulated link (`vsa.common.link`; ``vsend --link``), for trying things."""
    reconnect: bool = False
    """When the receiver goes away mid-stream, connect again (a restarted vrecv has the model cached) and go on."""
    ladder: tuple[bool, bool] = (False, False)
    """With ``settings.kbps``: whether the scale and the stride are the ladder's to choose (`vsa.sender.ladder`)."""
    rungs: tuple[Rung, ...] = DEFAULT_LADDER
    """The ladder (`vsend --ladder PATH`: one `vsa eval --ladder` wrote)."""
    latency_ms: float = DEFAULT_LATENCY_MS
    """The latency the ladder keeps to (`vsa.sender.ladder.within_latency`; 0: none): strides that interpolate
    more frames than it leaves time for are not taken."""
    transit_target_ms: float | None = None
    """How long the frames may take on the path (`vsa.common.congestion.RateController`'s transit target; 0: no
    bound but congestion's; None: what the latency goal leaves the path, `vsa.sender.ladder.transit_budget_ms`)."""

    def __post_init__(self) -> None:
        if self.fec not in FEC_MODES:
            raise ValueError(f"fec must be one of {', '.join(FEC_MODES)}, got {self.fec!r}")


@dataclass
class SenderReport:
    frames: int = 0
    frames_sent: int = 0
    skipped_busy: int = 0
    datagrams: int = 0
    datagrams_dropped: int = 0
    datagrams_redundant: int = 0
    """Datagrams sent a second time for forward error correction (counted in ``datagrams`` too)."""
    frames_resent: int = 0
    """Frames sent again because the receiver asked (`vsa.protocol.retransmit`)."""
    datagrams_resent: int = 0
    bad_feedback: int = 0
    """Messages from the receiver on the media channel that were refused."""
    media_bytes: int = 0
    control_bytes: int = 0
    model_sent: bool = False
    reconnects: int = 0
    """New sessions after the receiver went away (``--reconnect``)."""
    model_bytes: int = 0
    """Model bytes sent: less than the model's size when the receiver resumed a cut transfer."""
    keyframe_requests: int = 0
    updates: int = 0
    update_bytes: int = 0
    """Model updates sent (online adaptation), and their deltas' bytes. One the trainer makes after the last frame
    is never sent (an update goes out before the next frame coded): counted when made, the last of a stream
    could be one the receiver never saw."""
    adapt_considered: int = 0
    adapt_steps: int = 0
    adapt_dropped: int = 0
    """Rounds the trainer ran, its training steps, and sent frames it could not take in time."""
    seconds: float = 0.0
    receiver_stats: list[dict] = field(default_factory=list)
    drains: list[tuple[float, float]] = field(default_factory=list)
    """Under ``--kbps``: (seconds since start, seconds) of each pause while a queue on the path drained."""
    targets: list[tuple[float, float]] = field(default_factory=list)
    """Under ``--kbps``: (seconds since start, target kbps) after each receiver report."""
    sent_kbps: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since start, media kbps sent over the last second), once a second."""
    skipped_budget: int = 0
    """Under ``--kbps``: frames skipped while the stream was over its budget."""
    rung_switches: list[tuple[float, int, int]] = field(default_factory=list)
    """Under ``--kbps``: (seconds since start, scale, stride) at each move along the ladder."""
    skipped_for_keyframe: int = 0
    """Under ``--kbps``: frames not sent while a keyframe the receiver asked for waited for the budget (inter
    frames past a hole cannot be decoded)."""
    codes_learned: int = 0
    inversion_steps: list[int] = field(default_factory=list)
    """INR-V: Adam steps each inverted clip got within its time budget."""

    def summary(self) -> str:
        kbps = self.media_bytes * 8 / 1000 / max(self.seconds, 1e-9)
        codes = ""
        if self.codes_learned or self.inversion_steps:
            steps = self.inversion_steps
            codes = (f"codes: {self.codes_learned} learned, {len(steps)} inverted"
                     + (f" ({min(steps)}-{max(steps)} Adam steps each)" if steps else "") + "; ")
        fec = f", {self.datagrams_redundant} of them repeats for FEC" if self.datagrams_redundant else ""
        return (codes + f"{self.frames} frames captured, {self.frames_sent} sent ({self.datagrams} datagrams{fec}, "
                f"{self.datagrams_dropped} dropped by --simulate-loss); media {kbps:.1f} kbps; "
                f"model {'sent' if self.model_sent else 'cached at the receiver'}; "
                f"{self.keyframe_requests} keyframe requests"
                + (f"; {self.updates} model updates ({self.update_bytes} bytes) from {self.adapt_considered} "
                   f"rounds, {self.adapt_steps} steps" if self.adapt_considered else "")
                + (f"; target {min(t for _, t in self.targets):g}-{max(t for _, t in self.targets):g} kbps, "
                   f"{self.skipped_budget} frames skipped to keep to it" if self.targets else ""))


def put_newest(queue: asyncio.Queue, item) -> bool:
    """Queue ``item``; when the queue is full, drop the oldest first, as a camera does. Whether one was dropped."""
    dropped = queue.full()
    if dropped:
        queue.get_nowait()
    queue.put_nowait(item)
    return dropped


class _Capture:
    """Reads the source in a thread, paced like a camera, into a small queue.

    Files and lavfi graphs are released at their own frame rate; cameras
    deliver at theirs already. When the sender falls behind, the oldest
    frame is dropped, as a camera would.
    """

    def __init__(self, spec: str, size: tuple[int, int] | None, loop: bool, limit: int | None,
                 asyncio_loop: asyncio.AbstractEventLoop) -> None:
        self.source = VideoSource(spec)
        info = self.source.info
        self.info = info
        self.size = size or default_working_size(info.width, info.height)
        self.live = info.frame_count == 0 or spec.startswith("camera")
        self.loop_file = loop
        self.limit = limit
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=3)
        self._loop = asyncio_loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vsa-capture", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 2.0) -> None:
        """Stop reading, and wait (bounded) for the reading thread to close the source: a daemon thread still
        inside the decoder when the interpreter exits ended vsend with "terminate called without an active
        exception" instead of its one-line error."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(wait)

    def _put(self, item) -> None:
        self.dropped += put_newest(self.queue, item)

    def _deliver(self, item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._put, item)
        except RuntimeError:  # the event loop has closed (vsend interrupted): nobody is listening
            self._stop.set()

    def _run(self) -> None:
        pace = not self.source.spec.startswith("camera")
        period = 1.0 / self.info.fps
        start = time.monotonic()
        count = 0
        try:
            while not self._stop.is_set():
                for rgb in self.source.frames():
                    if self._stop.is_set() or (self.limit is not None and count >= self.limit):
                        break
                    frame = fit_frame(rgb, *self.size)
                    if pace:
                        delay = start + count * period - time.monotonic()
                        if delay > 0:
                            self._stop.wait(delay)
                    capture_us = time.time_ns() // 1000
                    self._deliver((count, frame, capture_us))
                    count += 1
                if not self.loop_file or (self.limit is not None and count >= self.limit):
                    break
                self.source.close()
                self.source = VideoSource(self.source.spec)
        except Exception as exc:  # noqa: BLE001 - surfaced in the event loop
            self._deliver(exc)
        finally:
            self.source.close()
            self._deliver(None)


class LiveSender:
    """Streams ``source`` with the model at ``model_path`` (None: the base shipped with vsa).

    ``source`` names a file, lavfi graph or camera (read by `_Capture`), or is
    a capture object of the same interface, e.g. a browser's camera
    (`vsa.sender.web.BrowserCapture`).
    """

    def __init__(self, model_path: str | None, source, options: SenderOptions) -> None:
        self.options = options
        self.model_path = model_path
        self.bundle, self.shipment = load_model(model_path, options.settings.scale)
        self.wire = self.shipment.model
        self.source = source
        self.report = SenderReport()
        self._rng = random.Random(options.seed)
        self._ready = asyncio.Event()
        self._closed = asyncio.Event()
        self._force_key = False
        self._key_pending = False
        """Under a target: the receiver asked for a keyframe that has not gone yet (`_keyframe_affordable`)."""
        self._key_request_seq = -1
        """The ``after_seq`` of the last keyframe request taken: the receiver repeats one until a keyframe comes."""
        self._fec_until = float("inf") if options.fec == "on" else 0.0
        self._last_lost = 0
        self._repeats: set[asyncio.Task] = set()
        self._control_tasks: set[asyncio.Task] = set()
        self._window_media = self._window_control = self._window_frames = 0
        self.encoder: StreamEncoder | CodeEncoder | None = None
        self.controller: RateController | None = None
        """Under a target: moves it with the network (`vsa.common.congestion`)."""
        self._started = time.monotonic()
        self._last_pts, self._fps = 0, 0.0
        self._last_forced_key = float("-inf")
        self._last_rung = float("-inf")
        self._rung_scales: tuple[int, ...] | None = None
        """The scales the ladder may move to (None: any)."""
        self.links: list = []
        """With ``options.link``: the emulated links (`vsa.common.link.Link`), e.g. for a bandwidth trace."""
        self.control = self.media = None
        self._coder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vsa-code")
        self._ended: str | None = None
        """Why the session ended early, when it did: the receiver said why in its `Bye`, or a task failed."""
        self._relay: threading.Thread | None = None
        self._relay_stop = threading.Event()
        self.recorder: Recorder | None = None
        self._last_heard = time.monotonic()
        self._capture_started = False
        self._capture_done = False
        """The source has no more frames: a lost receiver then ends the run, with nothing left to reconnect for."""
        self._pts_origin: int | None = None
        self._unacked: deque[tuple[int, int]] = deque(maxlen=4096)
        """Under a target: (capture_us, bytes) of each frame sent that no receiver report has yet said arrived."""
        self._own_queue = OwnQueue()
        """Under a target: the frames sent of late, for the queue they alone make on the path."""
        self._history = History()
        """The last second's frames, to send again when the receiver asks (`Nack`)."""
        self._rungs: tuple[Rung, ...] = options.rungs
        """The ladder's rungs within the latency goal (set with the encoder, once the frame rate is known)."""

    def _size(self, capture: _Capture) -> tuple[int, int]:
        if self.options.size:
            return self.options.size
        meta = self.bundle.meta.get("size")
        if isinstance(meta, (list, tuple)) and len(meta) == 2:
            return int(meta[0]), int(meta[1])
        return capture.size

    # -- control -----------------------------------------------------------------------------

    def _send_control(self, msg: Message) -> None:
        data = encode_message(msg)
        self.control.send(data)
        self.report.control_bytes += len(data)
        self._window_control += len(data)

    def _on_control(self, data) -> None:
        self._last_heard = time.monotonic()
        try:
            if not isinstance(data, bytes):
                raise ProtocolError("control message is not binary")
            events = self.encoder.session.receive(decode_message(data))
        except ProtocolError as exc:
            log.warning("ignoring bad message from the receiver: %s", exc)
            return
        self._on_events(events)

    def _on_feedback(self, data) -> None:
        """A reply on the media channel (the hello offers it): a `Nack`, a keyframe request or a report."""
        try:
            if not isinstance(data, bytes):
                raise ProtocolError("media channel message is not binary")
            events = self.encoder.session.receive_feedback(decode_message(data))
        except ProtocolError as exc:
            self.report.bad_feedback += 1
            log.debug("ignoring bad feedback from the receiver: %s", exc)
            return
        self._last_heard = time.monotonic()
        self._on_events(events)

    def _on_events(self, events: list) -> None:
        for event in events:
            if isinstance(event, FramesWanted):
                self._send_again(event.nack.seqs())
            elif isinstance(event, ModelWanted):
                background(self._send_model(event.offset, event.sha256), "sending the model", self._control_tasks,
                           self._task_failed)
            elif isinstance(event, PeerReady):
                log.info("receiver ready (%s)", "model sent" if self.report.model_sent else "model was cached")
                self._start_adapting(event.adapt)
                self._ready.set()
            elif isinstance(event, PeerClosed):
                self._end(f"the receiver ended the session: {event.reason}")
            elif isinstance(event, KeyframeWanted):
                if event.request.after_seq == self._key_request_seq:
                    continue  # the receiver repeats a request until a keyframe comes: this one is answered or due
                self._key_request_seq = event.request.after_seq
                self._loss_reported()
                self.report.keyframe_requests += 1
                if self.controller is not None:
                    # Under a target, answered by `_stream` when the budget and the keyframe gap allow it.
                    self._key_pending = True
                    continue
                self._last_forced_key = time.monotonic()
                self.encoder.request_keyframe()
                self._force_key = True
            elif isinstance(event, PeerStats):
                s = event.stats
                self._follow_network(s)
                if s.lost > self._last_lost:
                    self._loss_reported()
                self._last_lost = s.lost
                self.report.receiver_stats.append({**s.__dict__, "at_s": round(time.monotonic() - self._started, 2)})
                log.info("receiver: %.1f fps, %d received, %d interpolated, %d concealed, %d lost, latency %.0f ms "
                         "(queue %.0f ms, transit %.0f ms), %d passes", s.fps, s.received, s.interpolated, s.concealed,
                         s.lost, s.latency_ms, s.queue_delay, s.transit_ms, s.iterations)

    def _end(self, why: str) -> None:
        """End the session early: the waits raise ConnectionError(why) and the stream stops."""
        if self._ended is None:
            self._ended = why
            log.error("%s", why)
        self._closed.set()

    def _task_failed(self, name: str, exc: BaseException) -> None:
        self._end(f"{name} failed: {exc}")

    def _follow_network(self, stats) -> None:
        """Under a target (``--kbps``): move it with what the receiver reports (`vsa.common.congestion`)."""
        keeper = getattr(self.encoder, "keeper", None)
        if self.controller is None or keeper is None or self.media is None:
            return
        now = time.monotonic()
        before = self.controller.target_bps
        # Frames sent after the newest one the receiver has seen are on the path still (or arrived since the
        # report was made, a one-way delay ago): what any queue on it holds now.
        while self._unacked and self._unacked[0][0] <= stats.newest_capture_us:
            self._unacked.popleft()
        in_flight = sum(size for _, size in self._unacked) * 8 if stats.newest_capture_us else 0
        own = (self._own_queue.queue_ms(stats.newest_capture_us / 1e6, self.controller.believed_bps)
               if stats.newest_capture_us else 0.0)
        draining = self.controller.drain_until
        self.controller.transit_target_ms = self._transit_target()
        target = self.controller.update(Report(now, stats.media_kbps * 1000, stats.loss, stats.delay_trend,
                                               self.media.bufferedAmount, stats.queue_delay,
                                               stats.arrival_kbps * 1000, in_flight, own, stats.transit_ms))
        # The ladder first: a new target's crf is reckoned for the rung the stream will be at.
        self._climb_ladder(target / 1000, now)
        self._sync_copies(keeper)
        keeper.retarget(target, self._stream_seconds())
        if self.controller.drain_until > max(draining, now):
            keeper.drain(self.controller.drain_until - now, self._stream_seconds())
            self.report.drains.append((round(now - self._started, 2), round(self.controller.drain_until - now, 2)))
        self.report.targets.append((round(now - self._started, 2), round(target / 1000, 1)))
        if abs(target - before) > 0.05 * before:
            log.info("network: %s, target %.1f kbps (received %.1f kbps, loss %.0f%%, delay %+.0f ms/s)",
                     self.controller.state, target / 1000, stats.media_kbps, 100 * stats.loss, stats.delay_trend)

    def _transit_target(self) -> float:
        """How long the frames may take on the path now (`SenderOptions.transit_target_ms`): by default what the
        latency goal leaves at the stream's stride."""
        o = self.options
        if o.transit_target_ms is not None:
            return o.transit_target_ms
        if not o.latency_ms or not isinstance(self.encoder, StreamEncoder):
            return 0.0
        return transit_budget_ms(o.latency_ms, self.encoder.stride, self._fps)

    def _climb_ladder(self, kbps: float, now: float) -> None:
        """Move to the ladder's rung for ``kbps``: down at once, up only to a rung whose rate `RUNG_UP_HEADROOM`
        times over fits the target (not squeezed) and the path's last capacity, and not within `RUNG_HOLD_S` of
        the last move. A stream its rung starves (`BitrateKeeper.starved`) goes by what this clip costs against
        the ladder (`BitrateKeeper.cost_ratio`) instead: up, if that says a finer rung fits."""
        encoder = self.encoder
        if not isinstance(encoder, StreamEncoder) or not any(self.options.ladder):
            return
        if now - self._last_rung < RUNG_HOLD_S:
            return
        # On the path (what the target is in), and the payload alone (what the keeper measures and codes).
        rates = {(r.scale, r.stride): rung_kbps(r, encoder.size, self._fps, LIVE_FRAME_BYTES) for r in self._rungs}
        payload = {(r.scale, r.stride): rung_kbps(r, encoder.size, self._fps) for r in self._rungs}
        old = rates.get((encoder.scale, encoder.stride))
        scale, stride = self._rung_for(kbps, encoder.scale, encoder.stride)
        cost = 1.0
        keeper = encoder.keeper
        if keeper is not None and old is not None and keeper.starved(self._stream_seconds()):
            # The ladder's rates are a median clip's: at its crf floor, a cheaper clip cannot use a target that
            # the ladder says is too small for the finer rung, and the target, held near what is used, cannot
            # grow to it (on a 60 kbps link the signing clip sat at stride 4 using 25 kbps of a 54 kbps target).
            cost = keeper.cost_ratio(payload[encoder.scale, encoder.stride], self._stream_seconds()) or 1.0
            finer = self._rung_for(kbps / cost, encoder.scale, encoder.stride)
            if rates.get(finer, 0.0) > rates.get((scale, stride), 0.0):
                scale, stride = finer
            else:
                cost = 1.0
        if (scale, stride) == (encoder.scale, encoder.stride):
            return
        new = rates.get((scale, stride))
        cap = self.controller.capacity_bps if self.controller is not None else None
        room = min(kbps, cap / 1000) if cap else kbps

        def fits(rung: tuple[int, int]) -> bool:
            # A finer rung only once the target covers it and its keyframe, and so does the rate the path last
            # gave out at: probing a few kbps over a 60 kbps link, the 55.6 kbps rung's keyframe queued 0.8 s.
            # The headroom is for the payload's keyframe; the headers come with every frame, keyframe or not.
            return payload[rung] * cost * RUNG_UP_HEADROOM + (rates[rung] - payload[rung]) <= room

        if new is not None and old is not None and new > old and not fits((scale, stride)):
            # The finest rung between that does fit, if any: aiming only at the target's rung, a stream at scale
            # 4 stride 2 never climbed back after the link rose, its target (held within 1.5 times what it used)
            # stalling just short of scale 2 stride 1 with its headers.
            allowed = suitable(self._rungs, encoder.size, self._rung_scales, *self._held(encoder.scale, encoder.stride))
            between = [(r.scale, r.stride) for r in allowed if old < rates[r.scale, r.stride] < new
                       and fits((r.scale, r.stride))]
            if not between:
                return
            scale, stride = max(between, key=rates.__getitem__)
            new = rates[scale, stride]
        encoder_was = (encoder.scale, encoder.stride)
        encoder.switch(scale, stride)
        if new is not None and old is not None and encoder.keeper is not None:
            encoder.keeper.rescaled(payload[scale, stride] / payload[encoder_was])
        self._mark_finest(scale, stride)
        self._last_rung = now
        self.report.rung_switches.append((round(now - self._started, 2), scale, stride))
        log.info("ladder: scale %d, stride %d for %.1f kbps", scale, stride, kbps)

    def _mark_finest(self, scale: int, stride: int) -> None:
        """Tell the keeper whether (``scale``, ``stride``) is the finest rung this stream may take (what the ladder
        would choose for any rate): only there does its crf stop at the live floor."""
        encoder = self.encoder
        if not isinstance(encoder, StreamEncoder) or encoder.keeper is None:
            return
        encoder.keeper.finest = self._rung_for(float("inf"), scale, stride) == (scale, stride)

    def _held(self, scale: int, stride: int) -> tuple[int | None, int | None]:
        """``scale`` and ``stride`` where the ladder may not move them (the user fixed them), else None."""
        return (None if self.options.ladder[0] else scale), (None if self.options.ladder[1] else stride)

    def _rung_for(self, kbps: float, scale: int, stride: int) -> tuple[int, int]:
        """The ladder's rung for ``kbps``, keeping ``scale`` or ``stride`` where the ladder may not move it."""
        assert isinstance(self.encoder, StreamEncoder)
        return settle(kbps, self.encoder.size, self._fps, *self._held(scale, stride), self._rung_scales, self._rungs,
                      LIVE_FRAME_BYTES)

    def _keyframe_affordable(self) -> bool:
        """Under a target, whether a keyframe the receiver asked for may go now: not within
        `TARGET_KEYFRAME_GAP_S` of the last one (answering every request sent several a second on a lossy
        path, each worth a second of the link: a storm that kept it congested), and not while the stream is
        over its budget (the keyframe is the largest frame there is)."""
        if time.monotonic() - self._last_forced_key < TARGET_KEYFRAME_GAP_S:
            return False
        keeper = getattr(self.encoder, "keeper", None)
        return keeper is None or not keeper.behind(self._stream_seconds())

    def _stream_seconds(self) -> float:
        """The stream's own clock: the newest captured frame's pts, in seconds (what the keeper counts in)."""
        return self._last_pts / self._fps if self._fps else 0.0

    def _loss_reported(self) -> None:
        if self.controller is not None and not self.controller.fec_useful:
            # Loss with a filling queue is congestion: FEC's second copy of every frame would add to it.
            return
        if self.options.fec == "auto":
            if self._fec_until < time.monotonic():
                log.info("loss reported: sending every frame twice for %g s (forward error correction)", FEC_HOLD)
            self._fec_until = time.monotonic() + FEC_HOLD
            keeper = getattr(self.encoder, "keeper", None)
            if keeper is not None and self._sync_copies(keeper):
                # Every frame twice from now on: the payload's share of the target halves, and its crf moves now.
                keeper.retarget(keeper.target_bps, self._stream_seconds())

    def _sync_copies(self, keeper: BitrateKeeper) -> bool:
        """Tell ``keeper`` how many times each frame goes out now (twice while FEC is on); whether that changed."""
        copies = 2 if self.fec_active else 1
        changed, keeper.copies = keeper.copies != copies, copies
        return changed

    @property
    def fec_active(self) -> bool:
        return time.monotonic() < self._fec_until

    async def _send_model(self, offset: int, sha256: bytes) -> None:
        wire = self.shipment.blob(sha256)
        assert wire is not None  # the session checked the hash against the hello
        chunks = self.encoder.session.model_chunks(wire, MODEL_CHUNK, offset)
        what = "model" if wire is self.shipment.model else "base model"
        log.info("sending the %s: %d KiB in %d chunks", what, len(wire) // 1024, len(chunks))
        self.report.model_sent = True
        self.report.model_bytes += sum(len(c.data) for c in chunks)
        for chunk in chunks:
            await webrtc.wait_buffer_below(self.control, CONTROL_HIGH_WATER, self.options.timeout)
            self._send_control(chunk)

    # -- online adaptation ---------------------------------------------------------------------

    def _start_adapting(self, receiver_adapts: bool) -> None:
        encoder = self.encoder
        if not isinstance(encoder, StreamEncoder) or encoder.adapter is None:
            return
        if not receiver_adapts:
            log.info("the receiver does not apply model updates: streaming without adapting")
            trainer, encoder.adapter = encoder.adapter, None
            threading.Thread(target=trainer.close, name="vsa-adapt-close", daemon=True).start()
            return
        self._relay = threading.Thread(target=self._relay_updates, args=(encoder.adapter,), name="vsa-adapt-relay",
                                       daemon=True)
        self._relay.start()

    def _relay_updates(self, trainer: TrainerProcess) -> None:
        """Hand each update the trainer process makes to the coding thread, which sends it before its next frame."""
        while not self._relay_stop.is_set():
            update = trainer.next_update(timeout=0.2)
            if update is not None:
                self.encoder.offer(update)  # counted once sent (`_send_loop`): one made after the last frame never is
            elif trainer.failed:
                return  # logged by the trainer: the stream goes on with the model as it is

    def _stop_adapting(self) -> None:
        """Stop the relay and the trainer process (blocking: run it off the event loop)."""
        encoder = self.encoder
        trainer = encoder.adapter if isinstance(encoder, StreamEncoder) else None
        self._relay_stop.set()
        if self._relay is not None:
            self._relay.join(1.0)
        if isinstance(trainer, TrainerProcess):
            trainer.close()
            self.report.adapt_dropped = trainer.dropped
            self.report.adapt_considered = trainer.stats.considered
            self.report.adapt_steps = trainer.stats.steps

    # -- media -------------------------------------------------------------------------------

    def _backlog_limit(self) -> int:
        """Under a target: bytes waiting in the media channel beyond which the next frames are not even coded
        (`StreamEncoder.backlogged`): `QUEUE_SECONDS` of the target. The 256 KiB at which a coded frame is
        dropped would be a minute at 30 kbps, frames waiting in SCTP for seconds; and a coded frame dropped is a
        hole the receiver must ask a keyframe for, where a frame never coded is only one to interpolate."""
        assert self.controller is not None
        return max(4 * MAX_DATAGRAM, int(QUEUE_SECONDS * self.controller.target_bps / 8))

    async def _send_frame(self, msg) -> None:
        if self.media.bufferedAmount > MEDIA_HIGH_WATER:
            # The path is congested: skipping is better than queueing (latency), and the
            # receiver will ask for a keyframe at the hole.
            self.report.skipped_busy += 1
            return
        if self.recorder is not None:
            self.recorder.write(msg)
        encoded = encode_message(msg)
        parts = fragment(encoded, msg.seq, MAX_DATAGRAM)
        self._history.add(msg.seq, parts, time.monotonic())
        wire = wire_bytes(parts)
        self._spent(wire - len(encoded))  # the encoder counted the message; the datagrams' headers are ours
        if self.controller is not None and msg.capture_us:
            size = wire * (2 if self.fec_active else 1)
            self._unacked.append((msg.capture_us, size))
            self._own_queue.sent(msg.capture_us / 1e6, time.monotonic(), size * 8)
        await self._send_datagrams(parts)
        self.report.frames_sent += 1
        if self.fec_active:
            background(self._repeat(parts), "a forward error correction repeat", self._repeats, self._task_failed)

    async def _repeat(self, parts: list[bytes]) -> None:
        await asyncio.sleep(FEC_SPACING)
        await self._send_datagrams(parts)
        self.report.datagrams_redundant += len(parts)
        self._spent(wire_bytes(parts))

    def _send_again(self, seqs: list[int]) -> None:
        """The receiver asks for frames again (`vsa.protocol.retransmit`): send what is still kept."""
        log.debug("receiver asks again for frames %s", seqs)
        for parts in self._history.resend(seqs, time.monotonic()):
            self.report.frames_resent += 1
            background(self._resend(parts), "a frame sent again", self._repeats, self._task_failed)

    async def _resend(self, parts: list[bytes]) -> None:
        await self._send_datagrams(parts)
        self.report.datagrams_resent += len(parts)
        self._spent(wire_bytes(parts))

    def _spent(self, nbytes: int) -> None:
        """Bytes on the path besides the coded messages (headers, FEC, frames sent again): under a target they
        count against it, and the payload gets what is left."""
        keeper = getattr(self.encoder, "keeper", None)
        if keeper is not None:
            keeper.sent(0, nbytes)

    async def _send_datagrams(self, parts: list[bytes]) -> None:
        rate = self.options.pace_kbps * 1000 / 8
        owed = 0.0
        for part in parts:
            self.report.datagrams += 1
            if self.options.drop_media and self._rng.random() < self.options.drop_media:
                self.report.datagrams_dropped += 1
            else:
                self.media.send(part)
            self.report.media_bytes += len(part)
            self._window_media += len(part)
            owed += len(part) / rate
            if owed > 0.002:
                await asyncio.sleep(owed)
                owed = 0.0

    # -- run ---------------------------------------------------------------------------------

    async def _stats_loop(self) -> None:
        interval = self.options.stats_interval
        while not self._closed.is_set():
            await asyncio.sleep(interval)
            log.info("media %.1f kbps, control %.1f kbps | %.1f fps captured | %d sent, %d keyframe requests",
                     self._window_media * 8 / 1000 / interval, self._window_control * 8 / 1000 / interval,
                     self._window_frames / interval, self.report.frames_sent, self.report.keyframe_requests)
            self.report.sent_kbps.append((round(time.monotonic() - self._started, 2),
                                          round(self._window_media * 8 / 1000 / interval, 1)))
            self._window_media = self._window_control = self._window_frames = 0
            silent = time.monotonic() - self._last_heard
            if self._ready.is_set() and silent > RECEIVER_SILENCE:
                self._end(f"the receiver has sent nothing for {silent:.0f} s (it reports every second): "
                          f"it is gone")

    async def run(self) -> SenderReport:
        loop = asyncio.get_running_loop()
        o = self.options
        capture = _Capture(self.source, o.size, o.loop, o.limit, loop) if isinstance(self.source, str) else self.source
        size = self._size(capture)
        capture.size = size
        info = capture.info
        frame_count = 0 if (capture.live or o.loop) else min(info.frame_count, o.limit or 1 << 62)
        what = self._make_encoder(size, info, frame_count)
        started = time.monotonic()
        try:
            while True:
                try:
                    await self._session(capture, frame_count, what)
                    break
                except (ConnectionError, TimeoutError) as exc:
                    if not o.reconnect or self._capture_done:
                        raise
                    self.report.reconnects += 1
                    log.warning("%s; reconnecting (--reconnect), attempt %d", exc, self.report.reconnects)
                    # The receiver may be a new process: a new session, from a keyframe, with the model as
                    # shipped (it has it cached, or asks for it) and no end it could know of.
                    frame_count = 0
                    self._reset_session()
                    self.report.skipped_budget += getattr(self.encoder, "frames_skipped", 0)  # this encoder's
                    what = self._make_encoder(size, info, frame_count)
        finally:
            capture.stop()
            self._coder.shutdown(wait=False, cancel_futures=True)
            if isinstance(self.encoder, CodeEncoder):
                self.report.codes_learned = self.encoder.codes_learned
                self.report.inversion_steps = [len(losses) for losses in self.encoder.inversion_losses]
            if self.recorder is not None:
                self.recorder.close()
            self.report.seconds = time.monotonic() - started
            self.report.skipped_budget += getattr(self.encoder, "frames_skipped", 0)
        return self.report

    def _make_encoder(self, size: tuple[int, int], info, frame_count: int) -> str:
        """The stream's encoder (frames or INR-V codes) and, under a target, its rate controller; says what it sends."""
        o = self.options
        if self.bundle.arch.payload == "codes":
            codes = o.codes
            if codes.invert_seconds is None:
                clip_seconds = self.bundle.config.clip_frames / info.fps
                codes = replace(codes, invert_seconds=INVERT_SHARE * clip_seconds)
            self.encoder = CodeEncoder(self.bundle, info.fps, codes, frame_count=frame_count, source=info.name,
                                       model_wire=self.wire)
            return f"INR-V codes ({codes.codes}, {codes.code_format}) at {self.encoder.size[0]}x{self.encoder.size[1]}"
        adapt = o.adapt if o.adapt is not None and self.bundle.arch.adapts else None
        settings = o.settings
        self._rungs = within_latency(o.rungs, info.fps, o.latency_ms)
        if settings.kbps and any(o.ladder):
            scale, stride = settle(settings.kbps, size, info.fps, None if o.ladder[0] else settings.scale,
                                   None if o.ladder[1] else settings.stride,
                                   getattr(self.bundle.config, "scales", None), self._rungs, LIVE_FRAME_BYTES)
            if scale != settings.scale:
                self.bundle, self.shipment = load_model(self.model_path, scale)
                self.wire = self.shipment.model
            settings = replace(settings, scale=scale, stride=stride)
        self.encoder = StreamEncoder(self.shipment, size, info.fps, settings, frame_count=frame_count,
                                     source=info.name, adapt=adapt, synchronous=False)
        if settings.kbps:
            # Asked from the coding thread before each frame: reading a counter needs no lock.
            self.encoder.backlogged = lambda: (self.media is not None
                                               and self.media.bufferedAmount > self._backlog_limit())
            ceiling = settings.kbps * 1000
            self.controller = RateController(ceiling, max(MIN_TARGET_BPS, FLOOR_SHARE * ceiling), ceiling)
            # The scales the receiver's model can take mid-stream: a delta, and online updates, carry only
            # the hello's branch; the shipped base and whole models carry every one.
            if adapt is None and self.shipment.base is None:
                self._rung_scales = tuple(getattr(self.bundle.config, "scales", ())) or None  # None: any
            else:
                self._rung_scales = (settings.scale,)
        self._fps = info.fps
        if settings.kbps:
            self._mark_finest(settings.scale, settings.stride)
        return (f"{size[0]}x{size[1]}, scale {settings.scale}, stride {settings.stride}, {settings.codec}"
                + (f", target {settings.kbps:g} kbps" if settings.kbps else ""))

    def _reset_session(self) -> None:
        """Forget one session's state (its events, tasks and pts origin) before the next one starts."""
        for task in (*self._control_tasks, *self._repeats):
            task.cancel()
        self._control_tasks.clear()
        self._repeats.clear()
        self._ready, self._closed = asyncio.Event(), asyncio.Event()
        self._ended = None
        self._force_key = False
        self._key_pending = False
        self._key_request_seq = -1
        self._last_lost = 0
        self._pts_origin = None
        self._unacked.clear()
        self._own_queue = OwnQueue()
        self._history = History()
        self._last_heard = time.monotonic()
        self.report.model_sent = False

    async def _session(self, capture, frame_count: int, what: str) -> None:
        """One connection to the receiver: offer, hello, model if it lacks it, then the frames until the end."""
        loop = asyncio.get_running_loop()
        o = self.options
        pc = webrtc.make_peer()
        self.control = pc.createDataChannel(webrtc.CONTROL_LABEL)
        self.media = pc.createDataChannel(webrtc.MEDIA_LABEL, ordered=False, maxRetransmits=0)
        self.control.on("message", self._on_control)
        self.media.on("message", self._on_feedback)
        self.control.on("close", self._closed.set)
        host = o.connect[0]
        bind = o.bind or (host if webrtc.is_loopback(host) else None)
        stats = None
        try:
            self.links = await webrtc.connect_and_offer(pc, *o.connect, token=o.token, timeout=o.timeout, bind=bind,
                                                        link=o.link)
            await webrtc.wait_open([self.control, self.media], o.timeout)
            log.info("connected to %s:%d; streaming %s at %g fps: %s", *o.connect, capture.info.name,
                     capture.info.fps, what)
            self._last_heard = time.monotonic()
            stats = background(self._stats_loop(), "the stats loop", on_error=self._task_failed)
            self.encoder.session.offer_feedback()  # `_on_feedback` reads the media channel
            hello = self.encoder.session.start()
            if o.record and self.recorder is None:
                self.recorder = Recorder(o.record, hello, self.encoder.shipment)
            self._send_control(hello)
            warming = loop.run_in_executor(self._coder, self.encoder.warm_up)
            await self._wait(self._ready, o.timeout + len(self.wire) / 50_000, "the receiver to load the model")
            await warming
            if not self._capture_started:
                capture.start()
                self._capture_started = True
            await self._stream(capture, frame_count)
            # The receiver closes once it has played everything out.
            await self._wait(self._closed, o.timeout, "the receiver to finish")
        finally:
            await loop.run_in_executor(None, self._stop_adapting)
            if stats is not None:
                stats.cancel()
            await pc.close()

    async def _wait(self, event: asyncio.Event, timeout: float, what: str) -> None:
        waiter = asyncio.ensure_future(event.wait())
        closed = asyncio.ensure_future(self._closed.wait())
        done, pending = await asyncio.wait({waiter, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        if self._ended is not None:
            raise ConnectionError(self._ended)
        if event.is_set():
            return
        if self._closed.is_set():
            raise ConnectionError(f"the receiver closed the connection while waiting for {what}")
        raise TimeoutError(f"gave up waiting {timeout:.0f} s for {what}")

    async def _stream(self, capture: _Capture, frame_count: int) -> None:
        """Drain the capture queue into the coding thread; `_send_loop` sends the results in order."""
        loop = asyncio.get_running_loop()
        # Room for a whole clip while the previous one is inverted; a few frames for the autoencoder,
        # beyond which the capture queue drops frames as a camera would, rather than adding latency.
        ahead = 2 * self.bundle.config.clip_frames if isinstance(self.encoder, CodeEncoder) else 4
        coded: asyncio.Queue = asyncio.Queue(maxsize=ahead)
        sending = asyncio.create_task(self._send_loop(coded))

        def code(*args):
            return loop.run_in_executor(self._coder, self.encoder.push, *args)

        async def queue(item) -> None:
            # Never wait on a full queue that a failed send loop will not drain: raise its error instead.
            put = asyncio.ensure_future(coded.put(item))
            await asyncio.wait({put, sending}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():
                put.cancel()
                sending.result()
                raise ConnectionError("the send loop stopped early")

        previous: tuple[int, np.ndarray, int] | None = None
        flagged_last = False
        try:
            while True:
                item = await capture.queue.get()
                if isinstance(item, Exception):
                    raise item
                if item is None:
                    self._capture_done = True
                    break
                if self._closed.is_set():
                    raise ConnectionError(self._ended or "the receiver closed the connection")
                pts, rgb, capture_us = item
                if self._pts_origin is None:
                    self._pts_origin = pts  # a session after a reconnect starts at pts 0 too
                pts -= self._pts_origin
                item = (pts, rgb, capture_us)
                self._last_pts = pts
                self.report.frames += 1
                self._window_frames += 1
                flagged_last = frame_count > 0 and pts == frame_count - 1
                if self._key_pending and not flagged_last:
                    if not self._keyframe_affordable():
                        # The receiver cannot decode inter frames past its hole: sending them would only add to
                        # the congestion that made the hole. Nothing goes until the keyframe can.
                        self.report.skipped_for_keyframe += 1
                        continue
                    self._key_pending = False
                    self._last_forced_key = time.monotonic()
                    self.encoder.request_keyframe()
                    self._force_key = True
                force, self._force_key = self._force_key, False
                await queue(code(pts, rgb, capture_us, flagged_last or force))
                previous = item
            if previous is not None and frame_count and not flagged_last and not self.encoder.wants(previous[0]):
                # The container's frame count was off: still send the true last frame.
                await queue(code(*previous, True))
            await queue(loop.run_in_executor(self._coder, self.encoder.finish))
            await queue(None)
            await sending
        finally:
            sending.cancel()

    async def _send_loop(self, coded: asyncio.Queue) -> None:
        while (future := await coded.get()) is not None:
            for msg in await future:
                if isinstance(msg, Frame):
                    await self._send_frame(msg)
                else:
                    if isinstance(msg, ModelUpdate):
                        self.report.updates += 1
                        self.report.update_bytes += len(msg.delta)
                    if isinstance(msg, Bye) and self._repeats:
                        await asyncio.wait(self._repeats, timeout=1.0)  # the last frames' repeats first
                    if self.recorder is not None:
                        self.recorder.write(msg)
                    self._send_control(msg)

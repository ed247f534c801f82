"""The sender's pipeline: full-size frames in, protocol messages out.

Every ``stride``-th frame (and the last one, when the length is known, so the
receiver can interpolate up to the end) is downscaled by ``scale`` and coded
as a low-res payload. With an `OnlineAdapter` (`vsa.sender.adapt`), every
sent frame is also decoded as the receiver will decode it and handed to the
adapter, whose updates go out as `ModelUpdate` messages before the first
frame coded for them. Everything is expressed as `vsa.protocol` messages, so
the file container and the live data channels carry exactly the same stream.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from vsa.common import bases
from vsa.common import bundle as bundle_mod
from vsa.common.framecodec import (
    DEFAULT_CODEC, DEFAULT_WEBP_QUALITY, FrameDecoder, FrameEncoder, check_lowres_size, default_crf,
)
from vsa.common.resample import downscale, to_tensor, to_uint8
from vsa.protocol.messages import MAX_CRF, Bye, Frame, Hello, Message, ModelUpdate, encode, fit_text
from vsa.protocol.session import SenderSession

from .adapt import OnlineAdapter, Update
from .adapt_options import AdaptSettings
from .adapt_process import TrainerProcess
from .bitrate import BitrateKeeper, keyint_for
from .shipment import Shipment

MODEL_CHUNK = 64 * 1024


@dataclass(frozen=True)
class StreamSettings:
    scale: int = 4
    stride: int = 1
    codec: str = DEFAULT_CODEC
    crf: int | None = None
    """The inter codecs' quality (h264 0-51, vp9 0-63); None: the codec's default. 0 for intra codecs."""
    quality: int = DEFAULT_WEBP_QUALITY
    keyint: int = 60
    """Sent frames between keyframes of an inter codec: where a receiver can restart."""
    kbps: float = 0.0
    """A target for the whole stream (payload, headers, updates, model), held by `BitrateKeeper`; 0: hold the
    payload's quality (``crf``) instead."""

    def __post_init__(self) -> None:
        if not 1 <= self.scale <= 64:
            raise ValueError(f"scale must be in [1, 64], got {self.scale}")
        if not 1 <= self.stride <= 64:
            raise ValueError(f"stride must be in [1, 64], got {self.stride}")
        if self.crf is None:
            object.__setattr__(self, "crf", default_crf(self.codec))
        top = MAX_CRF.get(self.codec, 0)
        if self.codec in MAX_CRF and not 0 <= self.crf <= top:
            raise ValueError(f"{self.codec} crf must be in [0, {top}], got {self.crf}")
        if self.codec not in MAX_CRF:
            object.__setattr__(self, "crf", 0)  # intra codecs have no crf; `quality` sets webp's
        if not 0 <= self.quality <= 100:
            raise ValueError(f"quality must be in [0, 100], got {self.quality}")
        if self.keyint < 1:
            raise ValueError(f"keyint must be at least 1, got {self.keyint}")
        if self.kbps < 0 or self.kbps > 100_000:
            raise ValueError(f"kbps must be in [0, 100000], got {self.kbps}")
        if self.kbps and self.codec not in MAX_CRF:
            raise ValueError(f"a target bitrate (--kbps) needs an inter codec (vp9 or h264), not {self.codec}")


def lowres_size(size: tuple[int, int], scale: int) -> tuple[int, int]:
    h, w = size
    if h % scale or w % scale:
        raise ValueError(f"scale {scale} does not divide the working size {h}x{w}")
    return h // scale, w // scale


def start_messages(session: SenderSession, shipment: Shipment, send_model: bool = True,
                   chunk_size: int = MODEL_CHUNK) -> list[Message]:
    """The hello and, unless the receiver holds them, the chunks of the blobs not shipped with vsa (base first)."""
    messages: list[Message] = [session.start()]
    if not send_model:
        session.skip_model()
        return messages
    blobs = shipment.to_send()
    for wire in blobs:
        messages += session.model_chunks(wire, chunk_size)
    if shipment.model not in blobs:
        session.skip_model()  # the model itself ships with vsa: every receiver has it
    return messages


class StreamEncoder:
    """Turns full-size RGB frames into the messages of one stream."""

    def __init__(
        self,
        model: Shipment | bytes,
        size: tuple[int, int],
        fps: float,
        settings: StreamSettings,
        frame_count: int = 0,
        source: str = "",
        adapt: AdaptSettings | None = None,
        synchronous: bool = True,
    ) -> None:
        """``adapt``: fine-tune the model online (`vsa.sender.adapt`); with ``synchronous`` (file mode) the
        adapter trains inside `push` when it is due, on a step budget, so a file is reproducible; otherwise
        it is a `TrainerProcess`, whose updates the caller collects (`next_update`) and hands to `offer`."""
        self.settings = settings
        self.size = size
        self.low_h, self.low_w = lowres_size(size, settings.scale)
        check_lowres_size(settings.codec, self.low_w, self.low_h)
        self.shipment = model if isinstance(model, Shipment) else Shipment(model)
        self.model_wire = self.shipment.model
        self.frame_count = frame_count
        hello = Hello(
            width=size[1], height=size[0], fps=float(fps), scale=settings.scale, stride=settings.stride,
            codec=settings.codec, payload="frames", frame_count=frame_count, source=fit_text(source),
            crf=settings.crf, adapt=adapt is not None,
            **self.shipment.hello_fields(),
        )
        self.session = SenderSession(hello)
        self.keeper: BitrateKeeper | None = None
        keyint = settings.keyint
        if settings.kbps:
            live = frame_count <= 0 or not synchronous
            keyint = keyint_for(fps, settings.stride, settings.keyint, live=live)
            fixed = len(encode(hello)) + sum(len(blob) for blob in self.shipment.to_send())
            self.keeper = BitrateKeeper(settings.kbps * 1000, fps, settings.codec, settings.crf, fixed, frame_count,
                                        live)
        self.keyint = keyint
        self.fps = fps
        self.scale, self.stride = settings.scale, settings.stride
        """The rung streaming now (`switch` moves it; the hello keeps the first)."""
        self.encoder = self._payload_encoder(settings.crf)
        self._rung: tuple[int, int] | None = None
        self.rung_switches = 0
        self._pending: deque[tuple[int, int, np.ndarray | None]] = deque()  # (pts, capture_us, source) awaiting a packet
        self.payload_bytes = 0
        self.frames_sent = 0
        self.frames_skipped = 0
        """Frames a target made the sender skip (`wants`)."""
        self.backlogged: Callable[[], bool] = lambda: False
        """Live under a target: whether the media channel holds more than it should (the sender's check, asked
        before each frame); then frames are skipped."""
        self.update_bytes = 0
        self.adapter: OnlineAdapter | TrainerProcess | None = None
        self.synchronous = synchronous
        self._offered: list[Update] = []
        self._offered_lock = threading.Lock()
        self._monitor: FrameDecoder | None = None
        if adapt is not None:
            if synchronous:
                # The adapter starts from the weights the receiver decodes, not the sender's float ones.
                lookup = lambda sha: self.shipment.blob(sha) or bases.builtin_wire(sha)  # noqa: E731
                received = bundle_mod.from_wire(self.model_wire, self.shipment.model_sha256, lookup)
                self.adapter = OnlineAdapter(received, settings.scale, settings.codec, self.hello.crf, fps, adapt,
                                             frame_count)
            else:
                base = self.shipment.base
                blobs = {bundle_mod.sha256(base): base} if base is not None else {}
                self.adapter = TrainerProcess(self.model_wire, blobs, settings.scale, settings.codec,
                                              self.hello.crf, fps, adapt, frame_count)
            self._monitor = FrameDecoder(settings.codec, self.low_w, self.low_h)

    @property
    def hello(self) -> Hello:
        return self.session.hello

    def start(self, send_model: bool = True, chunk_size: int = MODEL_CHUNK) -> list[Message]:
        """The hello and, unless the receiver has them, the chunks of the blobs not shipped with vsa."""
        return start_messages(self.session, self.shipment, send_model, chunk_size)

    def warm_up(self) -> None:
        """Nothing to prepare: the payload encoder is cheap to start (INR-V's `CodeEncoder` is not)."""

    def wants(self, pts: int, last: bool = False) -> bool:
        """Whether frame ``pts`` is sent: every stride-th, and the last one; live under a target, not while
        the stream is behind its budget (`BitrateKeeper.behind`), as after the network's rate drops, nor while
        the media channel is ``backlogged()``. (A file has no clock to keep up with: its groups' crfs alone hold
        the target.)"""
        if last:
            return True
        if pts % self.stride:
            return False
        if self.keeper is not None and not self.synchronous:
            if self.backlogged():
                self.frames_skipped += 1
                return False
            if self.keeper.behind(pts / self.fps):
                self.frames_skipped += 1
                self.keeper.skipped(pts / self.fps)  # what the crf would have cost, had it been sent
                return False
        return True

    def lowres(self, rgb: np.ndarray) -> np.ndarray:
        """The (h, w, 3) uint8 low-res frame that would be sent for ``rgb``."""
        if rgb.shape[:2] != self.size:
            raise ValueError(f"frame is {rgb.shape[0]}x{rgb.shape[1]}, the stream is {self.size[0]}x{self.size[1]}")
        return to_uint8(downscale(to_tensor(rgb), self.scale))[0]

    def push(self, pts: int, rgb: np.ndarray, capture_us: int = 0, last: bool = False) -> list[Message]:
        """Offer source frame ``pts``; returns the messages ready to send: frames, after any model update.

        Pass ``last=True`` for the final frame of a file so the receiver can
        interpolate all the way to the end.
        """
        self._take_rung()
        if not self.wants(pts, last):
            return []
        with self._offered_lock:
            offered, self._offered = self._offered, []
        messages: list[Message] = [self.update(u) for u in offered]
        if self.adapter is not None and self.synchronous and self.adapter.due(pts):
            found = self.adapter.consider(pts)
            if found is not None:
                messages.append(self.update(found))
        if self.keeper is not None and (self.encoder.at_group_start or self.keeper.group_due):
            if not self.encoder.at_group_start:
                self.encoder.new_group()  # the target moved far: its crf from this frame, not seconds later
            self.encoder.set_crf(self.keeper.next_crf(pts), self.keeper.keyframe_bytes)
        self._pending.append((pts, capture_us, rgb if self.adapter is not None else None))
        return messages + self._frames(self.encoder.encode(self.lowres(rgb)))

    def _payload_encoder(self, crf: int) -> FrameEncoder:
        """The payload codec for frames of the current low-res size."""
        return FrameEncoder(self.settings.codec, self.low_w, self.low_h, fps=self.fps, crf=crf,
                            quality=self.settings.quality, keyint=self.keyint,
                            keyframe_bytes=self.keeper.keyframe_bytes if self.keeper is not None else 0)

    def switch(self, scale: int, stride: int) -> None:
        """Move to another rung of the ladder from the next frame on (from any thread). A new scale starts a
        new payload stream with a keyframe, and its frames say their scale; a new stride needs nothing: frames
        carry their pts. The receiver's model must serve ``scale`` (the caller knows: a delta carries only the
        hello's scale, and online updates too)."""
        replace(self.settings, scale=scale, stride=stride)  # the same bounds as a stream's first rung
        low_h, low_w = lowres_size(self.size, scale)
        check_lowres_size(self.settings.codec, low_w, low_h)
        self._rung = (scale, stride)

    def _take_rung(self) -> None:
        rung, self._rung = self._rung, None
        if rung is None or rung == (self.scale, self.stride):
            return
        scale, self.stride = rung
        self.rung_switches += 1
        if scale != self.scale:
            self.scale = scale
            self.low_h, self.low_w = lowres_size(self.size, scale)
            # One frame in gives one packet out: the old codec holds nothing back.
            self.encoder = self._payload_encoder(self.keeper.crf if self.keeper is not None else self.settings.crf)

    def offer(self, update: Update) -> None:
        """From another thread: send ``update`` before the next frame coded (thread-safe)."""
        with self._offered_lock:
            self._offered.append(update)

    def update(self, update: Update) -> ModelUpdate:
        """The message for an update the adapter made; frames from now on are coded for its version."""
        self.update_bytes += len(update.delta)
        message = self.session.update(update.base_sha256, update.result_sha256, update.delta)
        if self.keeper is not None:
            self.keeper.sent(0, len(encode(message)))
        return message

    def request_keyframe(self) -> None:
        self.encoder.request_keyframe()

    def finish(self, reason: str = "end of stream") -> list[Message]:
        messages: list[Message] = list(self._frames(self.encoder.flush()))
        bye: Bye = self.session.bye(reason)
        return messages + [bye]

    def _frames(self, packets) -> list[Frame]:
        out = []
        for packet in packets:
            pts, capture_us, source = self._pending.popleft()
            out.append(self.session.frame(pts, packet.keyframe, packet.payload, capture_us, self.scale))
            self.payload_bytes += len(packet.payload)
            if self.keeper is not None:
                self.keeper.sent(len(packet.payload), len(encode(out[-1])) - len(packet.payload))
            self.frames_sent += 1
            if self.adapter is not None and self._monitor is not None and source is not None:
                low = self._monitor.decode(packet.payload, packet.keyframe)
                if low is not None:
                    self.adapter.observe(pts, source, low, len(packet.payload))
        return out


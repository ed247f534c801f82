"""The receiver's pipeline: protocol messages in, full-size frames out, in order.

`StreamDecoder` drives a `ReceiverSession`, loads the model when it is
complete (or from a cache, or a base shipped with vsa), decodes the low-res
payloads, reprojects them in batches with whatever frames architecture the
model is (`vsa.common.registry`), and fills the frames that were not sent
(or were lost) by latent interpolation between their sent neighbours. Frames
before the first received one, or after the last, are held.

Model updates (`ModelUpdate`, from a sender that adapts online) are staged
when they arrive and applied just before the first frame coded for them:
the frames queued before it are reconstructed first, with the weights they
were coded for, so an update never lands in the middle of a frame or of a
batch. Each is checked against the digest of the weights it applies to and
of its result; one that fails is refused and counted, and the model that was
playing goes on playing. A frame coded for a version that never arrived is
decoded with the newest model this receiver holds.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch

from vsa.common import bases
from vsa.common import bundle as bundle_mod
from vsa.common.bundle import Bundle
from vsa.common.framecodec import FrameDecoder, model_crf
from vsa.common.resample import to_tensor
from vsa.common.update import UpdateError, UpdateGrid, apply_update, state_digest
from vsa.protocol.errors import ProtocolError
from vsa.protocol.messages import MAX_PTS_STEP, Frame, Hello, Message, ModelUpdate
from vsa.protocol.session import (
    FrameReceived, ModelReady, ReceiverSession, State, StreamEnded, StreamStarted, UpdateReceived,
)

from .reconstruct import Reconstructor


log = logging.getLogger("vsa.receiver")

MAX_OUTPUT_RATIO = 16
"""Most output frames per source frame (``--fps`` against the stream's fps): bounds the frames one sent frame makes."""
SPAN_MEMORY = 16
"""Spans between sent frames remembered to tell the stream's stride from frames its sender skipped."""
MAX_INTERPOLATED = 64
"""Most frames interpolated across one gap; beyond that, the frames of a gap hold the frame before it."""
MAX_STAGED_UPDATES = 16
"""Most model updates held before a frame asks for them; more are refused (a sender sends each just before
the frame that needs it)."""


class Kind(enum.Enum):
    SENT = "sent"
    INTERPOLATED = "interpolated"
    CONCEALED = "concealed"
    """Interpolated across a gap longer than the stride: a frame there was lost."""
    HELD = "held"


@dataclass
class OutputFrame:
    index: int
    """Output frame number; equals the source pts when the output keeps the source frame rate."""
    position: float
    """Where the frame sits on the source's timeline, in source frames."""
    frame: torch.Tensor  # (3, H, W) float in [0, 1], on the CPU
    kind: Kind
    baseline: torch.Tensor | None = None
    """Bicubic upsampling of the same low-res data (blended for frames not sent), if asked for."""
    capture_us: float = 0.0
    """When the sender captured this moment, on its clock (interpolated between sent frames); 0 if unknown."""
    bridged: bool = False
    """Interpolated across frames the sender chose not to send (a span wider than the stream's recent stride,
    none lost): it waited for the next sent frame longer than the stride makes frames wait."""


@dataclass
class _Anchor:
    pts: int
    frame: torch.Tensor | None  # None until rendered: interpolation needs only the latent
    latent: torch.Tensor
    baseline: torch.Tensor | None
    capture_us: int = 0
    scale: int = 0
    """The scale it was sent at: latents of two scales come from two branches, so frames between such anchors
    are blended from the two rendered frames instead."""
    seq: int = -1
    """Its frame's seq: a gap in seqs between two anchors is sent frames that never made it."""


class SessionDecoder:
    """What every stream decoder shares: the receiver session, its events, the output clock and the counts.

    A subclass checks the hello and sets up its payload decoding in ``_start``
    (then calls this one), loads the model in ``_load``, turns a frame message
    into output frames in ``_frame``, and flushes in ``finish``.
    ``model_lookup(sha256) -> wire bytes | None`` lets a cache supply a blob
    (a model, a delta or a base) so its transfer can be skipped; the bases
    shipped with vsa are always looked up.
    """

    payload = ""
    """The hello payload this decoder plays."""

    def __init__(self, model_lookup: Callable[[bytes], bytes | None] | None = None,
                 output_fps: float | None = None) -> None:
        self.session = ReceiverSession(ordered=True)
        self.model_lookup = model_lookup
        self.hello: Hello | None = None
        self.received_blobs: dict[bytes, bytes] = {}
        """Blobs transferred in this session (sha256 -> bytes), for a cache to keep."""
        self._held: dict[bytes, bytes] = {}
        self.output_fps = output_fps
        self._ratio = 1.0  # source frames per output frame
        self._next_index = 0  # next output frame to emit
        self.ended = False
        self.payload_bytes = 0
        self.frames_lost = 0
        self.iterations = 0
        """Reprojection passes in use (0 for decoders that do not reproject)."""
        self.counts = {kind: 0 for kind in Kind}

    @property
    def ready(self) -> bool:
        """Whether the model is loaded, so frames can be decoded."""
        raise NotImplementedError

    @property
    def output_size(self) -> tuple[int, int]:
        """(H, W) of the output frames; known once the hello is in."""
        assert self.hello is not None
        return self.hello.height, self.hello.width

    def lost(self, seq: int) -> None:
        """A live transport gave up on frame message ``seq``."""
        self.frames_lost += 1

    def _capture_at(self, capture_us: float, at: float, pos: float) -> float:
        """When source position ``pos`` was captured, from a frame at ``at`` captured at ``capture_us`` (0: unknown)."""
        if not capture_us or self.hello is None:
            return 0.0
        return capture_us + (pos - at) * 1e6 / self.hello.fps

    def _output(self, index: int, pos: float, frame: torch.Tensor, kind: Kind,
                baseline: torch.Tensor | None = None, capture_us: float = 0.0, bridged: bool = False) -> OutputFrame:
        self.counts[kind] += 1
        return OutputFrame(index, pos, frame, kind, baseline, capture_us, bridged)

    def feed(self, msg: Message) -> list[OutputFrame]:
        """Process one message; return the output frames it completes, in order."""
        return [out for group in self.feed_groups(msg) for out in group]

    def lookup(self, sha256: bytes) -> bytes | None:
        """A blob this end holds: received in this session, shipped with vsa, or in the cache."""
        held = self._held.get(sha256) or bases.builtin_wire(sha256)
        if held is None and self.model_lookup is not None:
            held = self.model_lookup(sha256)
        return held

    def feed_groups(self, msg: Message) -> Iterator[list[OutputFrame]]:
        """Like `feed`, but yields the frames in groups, each as soon as it is computed.

        A live receiver shows the frames between two sent ones before the
        second sent frame is finished.
        """
        for event in self.session.receive(msg):
            if isinstance(event, StreamStarted):
                self._start(event.hello)
            elif isinstance(event, ModelReady):
                self.received_blobs.update(event.blobs)
                self._held.update(event.blobs)
                self._load_model()
            elif isinstance(event, FrameReceived):
                yield from (group for group in self._frame(event.frame) if group)
            elif isinstance(event, UpdateReceived):
                self._stage(event.update)
            elif isinstance(event, StreamEnded):
                if last := self.finish():
                    yield last

    def _start(self, hello: Hello) -> None:
        if hello.payload != self.payload:
            raise ProtocolError(f"this decoder plays {self.payload} streams; the stream carries {hello.payload}")
        if self.output_fps is not None and self.output_fps > hello.fps * MAX_OUTPUT_RATIO:
            raise ProtocolError(f"an output of {self.output_fps:g} fps from a {hello.fps:g} fps stream is more than "
                                f"{MAX_OUTPUT_RATIO} output frames per source frame")
        self.hello = hello
        if self.output_fps is None:
            self.output_fps = hello.fps
        self._ratio = hello.fps / self.output_fps
        for sha in self.session.wanted:
            wire = self.lookup(sha)
            if wire is not None:
                self._held[sha] = wire
                self.session.have(sha)
        if self.session.state is State.STREAMING:
            self._load_model()

    def _load_model(self) -> None:
        """Build the model from the blobs now all held (a delta is applied to its base)."""
        assert self.hello is not None
        bundle = bundle_mod.from_wire(self._held[self.hello.model_sha256], self.hello.model_sha256, self.lookup)
        if bundle.arch.payload != self.payload:
            raise bundle_mod.BundleError(f"the stream carries {self.payload}, but its model is a {bundle.kind} model "
                                         f"({bundle.arch.payload})")
        self._load(bundle)

    def _load(self, bundle: Bundle) -> None:
        raise NotImplementedError

    def _frame(self, frame: Frame) -> Iterable[list[OutputFrame]]:
        """The output frames ``frame`` completes, in groups (see `feed_groups`)."""
        raise NotImplementedError

    def _stage(self, update: ModelUpdate) -> None:
        """A model update arrived (decoders that cannot apply one play on without it)."""

    def finish(self, fill: bool = True) -> list[OutputFrame]:
        raise NotImplementedError


class StreamDecoder(SessionDecoder):
    """Reconstructs one stream of low-res frames; ``batch`` trades latency for throughput.

    ``iterations`` is the number of reprojection passes; None takes the
    model's architecture's default.
    """

    payload = "frames"

    def __init__(
        self,
        device: torch.device | str = "cpu",
        iterations: int | None = None,
        back_project: str | None = None,
        batch: int = 8,
        with_baseline: bool = False,
        model_lookup: Callable[[bytes], bytes | None] | None = None,
        output_fps: float | None = None,
        adapt: bool = True,
    ) -> None:
        super().__init__(model_lookup, output_fps)
        self.adapt = adapt
        """Whether this decoder applies model updates (without, it plays the stream on the model it started with)."""
        self.model_version = 0
        self.updates_applied = 0
        self.updates_refused = 0
        self.version_misses = 0
        """Frames coded for a model version other than the one they were decoded with."""
        self._staged: list[ModelUpdate] = []
        self._state: dict[str, torch.Tensor] | None = None  # unfused weights of the model playing now
        self._grid: UpdateGrid | None = None
        self._digest = b""
        self.device = device
        self.requested_iterations = iterations
        self.iterations = iterations or 0
        self.back_project = back_project
        self.batch = max(1, batch)
        self.with_baseline = with_baseline
        self.bundle: Bundle | None = None
        self.reconstructor: Reconstructor | None = None
        self.decoder: FrameDecoder | None = None
        self._queue: list[tuple[int, torch.Tensor, int, int]] = []  # (pts, low-res float frame, capture_us, seq)
        self._anchor: _Anchor | None = None
        self.frames_skipped = 0
        self.scale = 0
        """The scale frames come at now (the hello's, until a frame says otherwise)."""
        self.scale_switches = 0
        self._reconstructors: dict[int, Reconstructor] = {}
        self._spans: deque[int] = deque(maxlen=SPAN_MEMORY)
        """The last spans (in source frames) between two sent frames with none lost between them."""

    # -- messages -------------------------------------------------------------------------

    def _start(self, hello: Hello) -> None:
        if hello.payload == self.payload:
            self.decoder = FrameDecoder(hello.codec, hello.width // hello.scale, hello.height // hello.scale)
            self.scale = hello.scale
        super()._start(hello)

    def _load(self, bundle: Bundle) -> None:
        assert self.hello is not None
        multiple = bundle.arch.size_multiple(bundle.config)
        if self.hello.width % multiple or self.hello.height % multiple:
            raise ProtocolError(f"stream size {self.hello.height}x{self.hello.width} is not a multiple of "
                                f"{multiple}, which a {bundle.kind} model needs")
        self.bundle = bundle
        self._build(bundle.build())
        if self.hello.adapt and self.adapt:
            self._state = bundle.network_state()
            self._grid = UpdateGrid.for_model(bundle, self.hello.scale)
            self._digest = state_digest(self._state)

    def _build(self, model: torch.nn.Module) -> None:
        assert self.hello is not None
        self._reconstructors = {}
        self.reconstructor = self._reconstructor(self.scale, model)
        self.iterations = self.reconstructor.iterations

    def _reconstructor(self, scale: int, model: torch.nn.Module | None = None) -> Reconstructor:
        """The reconstructor for frames sent at ``scale``, built once per scale (a network keeps only the
        branch of its scale when it is prepared for inference): from ``model``, else from the weights playing."""
        assert self.hello is not None and self.bundle is not None
        if scale not in self._reconstructors:
            if model is None:
                weights = self.bundle if self._state is None else Bundle(self.bundle.config, self._state)
                model = weights.build()
            self._reconstructors[scale] = Reconstructor(
                model, (self.hello.height, self.hello.width), self.device, self.requested_iterations,
                self.back_project, scale=scale, crf=model_crf(self.hello.codec, self.hello.crf))
        return self._reconstructors[scale]

    def _switch_scale(self, scale: int) -> None:
        """Frames from now on come at ``scale``: a payload decoder of their size, and the network's branch."""
        assert self.hello is not None
        try:
            reconstructor = self._reconstructor(scale)
        except (ValueError, KeyError) as exc:
            raise ProtocolError(f"the model cannot reconstruct frames sent at scale {scale}: {exc}") from None
        if self.reconstructor is not None:
            reconstructor.iterations = self.reconstructor.iterations  # the passes the clock allows carry over
        self.reconstructor = reconstructor
        self.decoder = FrameDecoder(self.hello.codec, self.hello.width // scale, self.hello.height // scale)
        self.scale = scale
        self.scale_switches += 1

    def _stage(self, update: ModelUpdate) -> None:
        if not self.adapt:
            return
        if len(self._staged) >= MAX_STAGED_UPDATES:
            self.updates_refused += 1
            return
        self._staged.append(update)

    def _apply_updates(self, version: int) -> None:
        """Apply the staged updates up to ``version``, in order, each checked against both its digests.

        A refused update refuses the rest of its chain (each applies to the
        one before); the model playing is kept.
        """
        assert self.bundle is not None and self._grid is not None and self._state is not None
        state, digest, applied = self._state, self._digest, self.model_version
        while self._staged and self._staged[0].version <= version:
            update = self._staged.pop(0)
            try:
                if update.version != applied + 1 or update.base_sha256 != digest:
                    raise UpdateError(f"update {update.version} applies to another model than version {applied}")
                result = apply_update(update.delta, state, self._grid)
                if state_digest(result) != update.result_sha256:
                    raise UpdateError(f"update {update.version} does not give the weights its digest names")
            except UpdateError as exc:
                self.updates_refused += 1 + len(self._staged)
                self._staged.clear()
                log.warning("model update refused, playing on with version %d: %s", self.model_version, exc)
                break
            state, digest, applied = result, update.result_sha256, update.version
            self.updates_applied += 1
        if applied != self.model_version:
            self._build(Bundle(self.bundle.config, state).build())
            self._state, self._digest, self.model_version = state, digest, applied

    @property
    def ready(self) -> bool:
        return self.reconstructor is not None

    def lost(self, seq: int) -> None:
        """An inter-coded payload must also wait for a keyframe."""
        super().lost(seq)
        if self.decoder is not None:
            self.decoder.lost()

    def _frame(self, frame) -> Iterable[list[OutputFrame]]:
        if self.reconstructor is None or self.decoder is None:
            return ()  # cannot happen on an ordered transport: the session checks the order
        if self._staged and frame.model_version > self.model_version:
            # Between two frames: what is queued was coded for the model playing now, so it goes first.
            done = list(self._flush_queue())
            self._apply_updates(frame.model_version)
            return done + list(self._decode(frame))
        return self._decode(frame)

    def _decode(self, frame: Frame) -> Iterable[list[OutputFrame]]:
        if frame.model_version != self.model_version:
            self.version_misses += 1
        self.payload_bytes += len(frame.payload)
        done: list[list[OutputFrame]] = []
        scale = frame.scale or self.hello.scale
        if scale != self.scale:
            # Between two frames, as for updates: what is queued came at the old scale.
            done = list(self._flush_queue())
            self._switch_scale(scale)
        rgb = self.decoder.decode(frame.payload, frame.keyframe)
        if rgb is None:
            self.frames_skipped += 1  # waiting for a keyframe; the gap will be interpolated
            return done
        self._queue.append((frame.pts, to_tensor(rgb)[0], frame.capture_us, frame.seq))
        if len(self._queue) >= self.batch:
            return done + list(self._flush_queue())
        return done

    # -- reconstruction -------------------------------------------------------------------

    def _flush_queue(self) -> Iterator[list[OutputFrame]]:
        """Reconstruct the queued frames; yields groups of output frames, in order, as they become ready."""
        if not self._queue:
            return
        assert self.reconstructor is not None
        queued, self._queue = self._queue, []
        low = torch.stack([t for _, t, _, _ in queued])
        projection = self.reconstructor.project(low, self.iterations)
        baseline = self.reconstructor.bicubic(low).cpu() if self.with_baseline else None
        anchors = [_Anchor(pts, None, projection.latents[i : i + 1], baseline[i] if baseline is not None else None,
                           capture_us, self.scale, seq) for i, (pts, _, capture_us, seq) in enumerate(queued)]
        # The frames between the last anchor and the first new one need only its code: hand them
        # out before its final decode and back-projection, which they would otherwise wait for.
        early = self._emit_between(anchors[0])
        if early:
            yield early
        frames = self.reconstructor.render(projection).frames.cpu()
        out: list[OutputFrame] = []
        for anchor, frame in zip(anchors, frames):
            anchor.frame = frame
            out += self._emit_until(anchor)
        yield out

    def _position(self, index: int) -> float:
        return index * self._ratio

    def _emit_between(self, anchor: _Anchor) -> list[OutputFrame]:
        """Emit the output frames strictly between the last anchor and ``anchor`` (which needs no frame yet)."""
        previous = self._anchor
        if previous is None or anchor.pts <= previous.pts:
            return []  # before the first anchor frames are held, which needs its frame; or a late duplicate
        if previous.scale != anchor.scale and anchor.frame is None:
            return []  # across a change of scale frames are blended from both rendered frames: wait for it
        targets: list[tuple[int, float]] = []
        while self._position(self._next_index) < anchor.pts - 1e-9:
            targets.append((self._next_index, self._position(self._next_index)))
            self._next_index += 1
        return self._interpolated(previous, anchor, targets)

    def _emit_until(self, anchor: _Anchor) -> list[OutputFrame]:
        """Emit every output frame that sits at or before ``anchor`` on the source timeline."""
        previous = self._anchor
        if previous is not None and anchor.pts <= previous.pts:
            return []  # a duplicate or late frame: already past it
        out = self._emit_between(anchor)
        assert anchor.frame is not None
        while self._position(self._next_index) <= anchor.pts + 1e-9:
            index, pos = self._next_index, self._position(self._next_index)
            self._next_index += 1
            kind = Kind.SENT if abs(pos - anchor.pts) < 1e-9 else Kind.HELD
            out.append(self._output(index, pos, anchor.frame, kind, anchor.baseline,
                                    self._capture_at(anchor.capture_us, anchor.pts, pos)))
        self._anchor = anchor
        return out

    def _interpolated(self, a: _Anchor, b: _Anchor, targets: list[tuple[int, float]]) -> list[OutputFrame]:
        span = b.pts - a.pts
        # Sent frames missing in between (lost, or not decodable) make this a concealment. (Not a span wider
        # than the hello's stride: a sender under a target changes its stride, and skips frames it never sends.)
        kind = Kind.CONCEALED if b.seq - a.seq > 1 else Kind.INTERPOLATED
        bridged = False
        if kind is Kind.INTERPOLATED:
            # Wider than the stride of late: frames the sender skipped to keep to its target. The least recent
            # span is the stride (a sender under a target skips often, and moves its stride only now and then).
            # Spans with nothing to interpolate count too: at stride 1, the first skip of a stream (a pause
            # while a queue drained) otherwise found no span to compare with.
            bridged = bool(self._spans) and span > min(self._spans)
            self._spans.append(span)
        if not targets:
            return []
        assert self.reconstructor is not None
        alphas = [(pos - a.pts) / span for _, pos in targets]
        out = []
        if len(targets) > MAX_INTERPOLATED:
            # A gap this long is a freeze whatever we do: hold the last frame (no new memory per frame) and
            # interpolate only the frames just before the next one.
            held, targets, alphas = targets[:-MAX_INTERPOLATED], targets[-MAX_INTERPOLATED:], alphas[-MAX_INTERPOLATED:]
            for index, pos in held:
                out.append(self._output(index, pos, a.frame, Kind.CONCEALED, a.baseline,
                                        self._capture_at(a.capture_us, a.pts, pos)))
        if a.scale != b.scale and a.frame is not None and b.frame is not None:
            frames = torch.stack([(1 - alpha) * a.frame + alpha * b.frame for alpha in alphas])
        else:
            frames = self.reconstructor.interpolate(a.latent, b.latent, alphas).cpu()
        for (index, pos), alpha, frame in zip(targets, alphas, frames):
            base = None
            if a.baseline is not None and b.baseline is not None:
                base = (1 - alpha) * a.baseline + alpha * b.baseline
            out.append(self._output(index, pos, frame, kind, base, self._capture_at(a.capture_us, a.pts, pos),
                                    bridged))
        return out

    def finish(self, fill: bool = True) -> list[OutputFrame]:
        """Flush what is queued and, with ``fill``, hold the last frame up to the stream's known length.

        A damaged file passes ``fill=False``: its output stops at the last intact frame.
        """
        if self.ended:
            return []
        self.ended = True
        out = [frame for group in self._flush_queue() for frame in group]
        total = self.hello.frame_count if self.hello and fill else 0
        last = self._anchor
        if last is not None:
            # However long the hello said the stream is, hold the last frame no further than a frame may jump.
            total = min(total, last.pts + 1 + MAX_PTS_STEP)
            # Output frames whose source position lies before the stream's end.
            while self._position(self._next_index) <= total - 1 + 1e-9:
                index, pos = self._next_index, self._position(self._next_index)
                self._next_index += 1
                out.append(self._output(index, pos, last.frame, Kind.HELD, last.baseline,
                                        self._capture_at(last.capture_us, last.pts, pos)))
        return out

"""Sender and receiver session state machines, sans-I/O.

A session checks that messages come in a legal order and turns them into
events. Transports (the `.vsa` container, a data channel) decode bytes with
`vsa.protocol.messages.decode` and hand the messages to `ReceiverSession`;
the sender side builds its messages through `SenderSession`.

    WAIT_HELLO --hello--> WAIT_MODEL --last wanted blob complete--> STREAMING --bye--> CLOSED
                              \\------have() for every blob------------^

While streaming, a sender that adapts its model sends `ModelUpdate`s (each
turns version n - 1 into version n) and marks every frame with the version
it was coded for. The session only checks that updates come while streaming
and that their versions count up one at a time; what an update means, and
when to apply it (between two frames, never during one), is the decoder's.

The model travels as one or two *blobs*, each named by its SHA-256 and size
in the hello: the model itself and, when the model is a delta, the base it
applies to. The session does not know what a blob means; it only checks
that each one arrives whole, in order and matching its hash. A receiver that
already holds a blob (a cache, a base shipped with the software) says so
with `ReceiverSession.have`, and that blob is never transferred.

A live receiver talks back on the reliable channel: it answers the hello
with one `ModelRequest` per blob it lacks (or `Ready` when it lacks none),
says `Ready` once the model is loaded, and sends `KeyframeRequest` and
`Stats` while streaming. `SenderSession.receive` checks those replies the
same way. A sender whose hello says ``feedback`` also reads the streaming
replies on the media channel, unordered and never retransmitted: there a
lost one is not waited for (on the reliable channel it held every later
reply until SCTP's retransmission timer fired, a second at least), and a
`Nack` asks for frames again (`vsa.protocol.retransmit`). The receiver
repeats what must arrive; `SenderSession.receive_feedback` checks those and
drops a report older than one already read.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, replace
from typing import Union

from .errors import ProtocolError, SessionFailed
from .messages import (
    MAX_CHUNK_BYTES, MAX_MODEL_BYTES, MAX_PTS_STEP, Bye, Frame, Hello, KeyframeRequest, Message, ModelChunk,
    ModelRequest, ModelUpdate, Nack, Ready, Stats, fit_text, validate,
)


class State(enum.Enum):
    WAIT_HELLO = "wait-hello"
    WAIT_MODEL = "wait-model"
    STREAMING = "streaming"
    CLOSED = "closed"


@dataclass(frozen=True)
class StreamStarted:
    hello: Hello


@dataclass(frozen=True)
class ModelProgress:
    received: int
    total: int


@dataclass(frozen=True)
class ModelReady:
    """Every blob this receiver lacked has arrived, each matching its hash in the hello."""

    blobs: dict[bytes, bytes]
    """sha256 -> bytes of each blob transferred in this session."""
    model_sha256: bytes

    @property
    def wire(self) -> bytes | None:
        """The model blob, if it was transferred (rather than held already)."""
        return self.blobs.get(self.model_sha256)


@dataclass(frozen=True)
class FrameReceived:
    frame: Frame


@dataclass(frozen=True)
class UpdateReceived:
    """A model update, in version order; the decoder verifies and applies it."""

    update: ModelUpdate


@dataclass(frozen=True)
class StreamEnded:
    bye: Bye


@dataclass(frozen=True)
class ModelWanted:
    """The receiver asks for a blob (the model or its base), from ``offset``."""

    offset: int
    sha256: bytes


@dataclass(frozen=True)
class PeerReady:
    """The receiver has the model loaded: frames may flow."""

    adapt: bool = False
    """The receiver applies model updates."""


@dataclass(frozen=True)
class PeerClosed:
    """The receiver ended the session (a blob that did not match its hash, say); ``reason`` says why."""

    reason: str


@dataclass(frozen=True)
class KeyframeWanted:
    request: KeyframeRequest


@dataclass(frozen=True)
class PeerStats:
    stats: Stats


@dataclass(frozen=True)
class FramesWanted:
    """The receiver asks for frames again."""

    nack: Nack


Event = Union[StreamStarted, ModelProgress, ModelReady, FrameReceived, UpdateReceived, StreamEnded,
              ModelWanted, PeerReady, KeyframeWanted, PeerStats, PeerClosed, FramesWanted]

_SENDER_BOUND = (ModelRequest, Ready, KeyframeRequest, Stats)
_FEEDBACK = (KeyframeRequest, Stats, Nack)
"""What a receiver may send on the media channel, to a sender whose hello says ``feedback``."""


def _check_frame_scale(hello: Hello, scale: int) -> None:
    """A frame's scale (0: the hello's) must divide the stream's size, on either end."""
    if scale and (hello.width % scale or hello.height % scale):
        raise ProtocolError(f"frame scale {scale} does not divide the stream's size {hello.height}x{hello.width}")


class ReceiverSession:
    """Validates the order of received messages and reassembles the model's blobs.

    With ``ordered=True`` (files, reliable channels) frames must arrive with
    increasing ``seq``; unordered transports pass ``ordered=False`` and
    reorder in their jitter buffer.
    """

    def __init__(self, ordered: bool = True) -> None:
        self.state = State.WAIT_HELLO
        self.hello: Hello | None = None
        self.ordered = ordered
        self._wanted: dict[bytes, int] = {}  # sha256 -> size, of blobs still to come
        self._held: set[bytes] = set()  # blobs the receiver had already: their chunks, if sent, are skipped
        self._parts: dict[bytes, bytearray] = {}
        self._done: dict[bytes, bytes] = {}
        self._last_seq = -1
        self._max_pts = 0
        self.frames_received = 0
        self.update_version = 0
        """The version of the last model update received."""

    @property
    def wanted(self) -> list[bytes]:
        """Hashes of the blobs still missing, base first (a receiver asks for them in this order)."""
        return list(self._wanted)

    def wanted_size(self, sha256: bytes) -> int:
        """The size the hello gives a missing blob (0 if it is not missing)."""
        return self._wanted.get(sha256, 0)

    def resume(self, sha256: bytes, partial: bytes) -> int:
        """Start a wanted blob from the bytes an earlier, cut session received; the offset to request it from.

        Nothing checks the bytes until the blob is whole: then its SHA-256
        does, as for any transfer, and a bad start fails the session like
        a corrupted transfer. 0 (start afresh) when the partial does not fit.
        """
        size = self._wanted.get(sha256)
        if size is None or not 0 < len(partial) < size or self._parts.get(sha256):
            return 0
        self._parts[sha256] = bytearray(partial)
        return len(partial)

    def partial_blobs(self) -> dict[bytes, bytes]:
        """Blobs whose transfer began and did not finish: what a later session may resume from."""
        return {sha: bytes(part) for sha, part in self._parts.items() if part}

    def have(self, sha256: bytes) -> None:
        """The receiver already holds this blob (named in the hello): it need not be transferred."""
        if self.state is not State.WAIT_MODEL:
            raise ProtocolError(f"have() is only valid while waiting for the model, not in {self.state.value}")
        if sha256 not in self._wanted:
            raise ProtocolError("have() for a blob the hello does not name, or one already held")
        if self._parts.get(sha256):
            raise ProtocolError("have() for a blob already being transferred")
        del self._wanted[sha256]
        self._held.add(sha256)
        if not self._wanted:
            self.state = State.STREAMING

    def bye(self, reason: str) -> Bye:
        """Close the session from this end (after a `SessionFailed`, say): the message that tells the sender why."""
        self.state = State.CLOSED
        return validate(Bye(0, fit_text(reason)))

    def model_cached(self) -> None:
        """The receiver already holds every blob the hello names: skip the transfer."""
        for sha in self.wanted:
            self.have(sha)

    def receive(self, msg: Message) -> list[Event]:
        """Feed one decoded message; return the events it causes."""
        validate(msg)
        if isinstance(msg, _SENDER_BOUND):
            raise ProtocolError(f"{type(msg).__name__} is sent by receivers, not to them")
        if self.state is State.CLOSED:
            raise ProtocolError(f"{type(msg).__name__.lower()} message after bye")
        if isinstance(msg, Hello):
            if self.state is not State.WAIT_HELLO:
                raise ProtocolError("second hello in one session")
            self.hello = msg
            self.state = State.WAIT_MODEL
            if msg.base_sha256:
                self._wanted[msg.base_sha256] = msg.base_size
            self._wanted[msg.model_sha256] = msg.model_size
            return [StreamStarted(msg)]
        if self.state is State.WAIT_HELLO:
            raise ProtocolError(f"{type(msg).__name__.lower()} message before hello")
        if isinstance(msg, ModelChunk):
            return self._receive_chunk(msg)
        if isinstance(msg, Frame):
            if self.state is State.WAIT_MODEL:
                raise ProtocolError("frame before the model was complete")
            if self.ordered and msg.seq <= self._last_seq:
                raise ProtocolError(f"frame seq {msg.seq} does not follow seq {self._last_seq}")
            _check_frame_scale(self.hello, msg.scale)
            if msg.pts > self._max_pts + MAX_PTS_STEP:
                raise ProtocolError(f"frame pts {msg.pts} jumps more than {MAX_PTS_STEP} frames past pts "
                                    f"{self._max_pts}: the frames in between would all have to be made")
            self._last_seq = max(self._last_seq, msg.seq)
            self._max_pts = max(self._max_pts, msg.pts)
            self.frames_received += 1
            return [FrameReceived(msg)]
        if isinstance(msg, ModelUpdate):
            if self.state is State.WAIT_MODEL:
                raise ProtocolError("model update before the model was complete")
            if not self.hello.adapt:
                raise ProtocolError("model update in a stream whose hello did not announce any")
            if msg.version != self.update_version + 1:
                raise ProtocolError(f"model update {msg.version} does not follow update {self.update_version}")
            self.update_version = msg.version
            return [UpdateReceived(msg)]
        assert isinstance(msg, Bye)
        self.state = State.CLOSED
        return [StreamEnded(msg)]

    def _receive_chunk(self, chunk: ModelChunk) -> list[Event]:
        assert self.hello is not None
        if chunk.sha256 in self._held:
            # A file carries every blob its reader might lack; one this reader holds is skipped, not stored.
            return []
        if self.state is not State.WAIT_MODEL:
            raise ProtocolError("model chunk after the model was complete")
        size = self._wanted.get(chunk.sha256)
        if size is None:
            raise ProtocolError("model chunk names a different model than the hello (or one already complete)")
        if chunk.total != size:
            raise ProtocolError(f"model chunk says its blob has {chunk.total} bytes, the hello {size}")
        part = self._parts.setdefault(chunk.sha256, bytearray())
        if chunk.offset != len(part):
            raise ProtocolError(f"model chunk at offset {chunk.offset}, expected {len(part)}")
        part += chunk.data
        events: list[Event] = [ModelProgress(len(part), chunk.total)]
        if len(part) == chunk.total:
            wire = bytes(part)
            del self._parts[chunk.sha256], self._wanted[chunk.sha256]
            if hashlib.sha256(wire).digest() != chunk.sha256:
                self.state = State.CLOSED
                raise SessionFailed("model SHA-256 does not match the hello: transfer corrupted")
            self._done[chunk.sha256] = wire
            if not self._wanted:
                self.state = State.STREAMING
                events.append(ModelReady(dict(self._done), self.hello.model_sha256))
                self._done = {}
        return events


class SenderSession:
    """Builds the messages of one stream in a legal order."""

    def __init__(self, hello: Hello) -> None:
        self.hello = validate(hello)
        self.state = State.WAIT_HELLO
        self._next_seq = 0
        self.peer_ready = False
        """Whether the receiver said `Ready`; a live sender holds frames back until then."""
        self.peer_adapts = False
        """Whether the receiver said it applies model updates (and the hello announced them)."""
        self.model_version = 0
        """The version of the model frames are coded for now."""
        self._stats_received = -1
        """The newest report's ``received``: an older one, overtaken on the unordered channel, is dropped."""

    def offer_feedback(self) -> None:
        """Say in the hello that this sender reads replies on the media channel (a live sender; before `start`)."""
        if self.state is not State.WAIT_HELLO:
            raise ProtocolError("feedback offered after the hello was sent")
        self.hello = replace(self.hello, feedback=True)

    def receive_feedback(self, msg: Message) -> list[Event]:
        """Feed one message the receiver sent on the media channel (``hello.feedback``): a `Nack`, a
        `KeyframeRequest` or `Stats`. Before the receiver's `Ready` they say nothing and cause nothing."""
        validate(msg)
        if not self.hello.feedback:
            raise ProtocolError("feedback on the media channel, which this stream's hello did not offer")
        if not isinstance(msg, _FEEDBACK):
            raise ProtocolError(f"{type(msg).__name__} does not belong on the media channel")
        if not self.peer_ready:
            return []  # overtook the receiver's `Ready` on the reliable channel: nothing streams yet
        # (After the sender's bye too: the receiver may still ask for the last frames.)
        if isinstance(msg, Nack):
            return [FramesWanted(msg)]
        return self._streaming_reply(msg)

    def _streaming_reply(self, msg: KeyframeRequest | Stats) -> list[Event]:
        if isinstance(msg, KeyframeRequest):
            return [KeyframeWanted(msg)]
        if msg.received < self._stats_received:
            return []
        self._stats_received = msg.received
        return [PeerStats(msg)]

    def receive(self, msg: Message) -> list[Event]:
        """Feed one message from the receiver; return the events it causes."""
        validate(msg)
        if not isinstance(msg, (*_SENDER_BOUND, Bye)):
            raise ProtocolError(f"{type(msg).__name__} is sent to receivers, not by them")
        if self.state is State.WAIT_HELLO:
            raise ProtocolError(f"{type(msg).__name__} before the hello was sent")
        if isinstance(msg, Bye):
            self.state = State.CLOSED
            return [PeerClosed(msg.reason or "no reason given")]
        if isinstance(msg, ModelRequest):
            if self.state is not State.WAIT_MODEL:
                raise ProtocolError(f"model requested in {self.state.value}")
            sha = msg.sha256 or self.hello.model_sha256
            size = self._blob_sizes().get(sha)
            if size is None:
                raise ProtocolError("model requested by a hash the hello does not name")
            if msg.offset >= size:
                raise ProtocolError(f"model requested from offset {msg.offset} of {size} bytes")
            return [ModelWanted(msg.offset, sha)]
        if isinstance(msg, Ready):
            if self.peer_ready:
                raise ProtocolError("second ready")
            if self.state is State.WAIT_MODEL:
                self.skip_model()  # the receiver had the model cached
            self.peer_ready = True
            self.peer_adapts = msg.adapt and self.hello.adapt
            return [PeerReady(self.peer_adapts)]
        assert isinstance(msg, (KeyframeRequest, Stats))
        return self._streaming_reply(msg)

    def start(self) -> Hello:
        if self.state is not State.WAIT_HELLO:
            raise ProtocolError("hello already sent")
        self.state = State.WAIT_MODEL
        return self.hello

    def _blob_sizes(self) -> dict[bytes, int]:
        sizes = {self.hello.model_sha256: self.hello.model_size}
        if self.hello.base_sha256:
            sizes[self.hello.base_sha256] = self.hello.base_size
        return sizes

    def model_chunks(self, wire: bytes, chunk_size: int = 64 * 1024, offset: int = 0) -> list[ModelChunk]:
        """Split a blob the hello names (the model or its base), from ``offset``, into chunks.

        The model's own chunks end the model phase: send the base's first.
        """
        if self.state is not State.WAIT_MODEL:
            raise ProtocolError(f"model can only follow the hello, not come in {self.state.value}")
        if not 1 <= chunk_size <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_size {chunk_size} outside [1, {MAX_CHUNK_BYTES}]")
        digest = hashlib.sha256(wire).digest()
        size = self._blob_sizes().get(digest)
        if size is None:
            raise ProtocolError("model bytes do not match hello.model_sha256 (nor its base's)")
        if len(wire) > MAX_MODEL_BYTES or len(wire) != size:
            raise ProtocolError(f"model of {len(wire)} bytes does not match the hello's size {size}")
        if digest == self.hello.model_sha256:
            self.state = State.STREAMING
        if not 0 <= offset < len(wire):
            raise ProtocolError(f"model offset {offset} outside its {len(wire)} bytes")
        return [ModelChunk(start, len(wire), digest, wire[start : start + chunk_size])
                for start in range(offset, len(wire), chunk_size)]

    def skip_model(self) -> None:
        """The receiver has the model cached."""
        if self.state is not State.WAIT_MODEL:
            raise ProtocolError(f"cannot skip the model in {self.state.value}")
        self.state = State.STREAMING

    def frame(self, pts: int, keyframe: bool, payload: bytes, capture_us: int = 0, scale: int = 0) -> Frame:
        """The next frame; ``scale`` when it is sent at another scale than the hello's (from a keyframe on)."""
        if self.state is not State.STREAMING:
            raise ProtocolError(f"frames can only be sent after the model, not in {self.state.value}")
        if scale == self.hello.scale:
            scale = 0
        _check_frame_scale(self.hello, scale)
        msg = validate(Frame(self._next_seq, pts, keyframe, payload, capture_us, self.model_version, scale))
        self._next_seq += 1
        return msg

    def update(self, base_sha256: bytes, result_sha256: bytes, delta: bytes) -> ModelUpdate:
        """The next model update; frames from now on are marked with its version."""
        if self.state is not State.STREAMING:
            raise ProtocolError(f"model updates can only be sent while streaming, not in {self.state.value}")
        if not self.hello.adapt:
            raise ProtocolError("the hello did not announce model updates")
        msg = validate(ModelUpdate(self.model_version + 1, base_sha256, result_sha256, delta))
        self.model_version = msg.version
        return msg

    def bye(self, reason: str = "") -> Bye:
        if self.state is State.CLOSED:
            raise ProtocolError("bye already sent")
        self.state = State.CLOSED
        return validate(Bye(self._next_seq, fit_text(reason)))

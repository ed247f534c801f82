"""Sender and receiver session state machines, sans-I/O.

A session checks that messages come in a legal order and turns them into
events. Transports (the `.vsa` container, a data channel) decode bytes with
`vsa.protocol.messages.decode` and hand the messages to `ReceiverSession`;
the sender side builds its messages through `SenderSession`.

    WAIT_HELLO --hello--> WAIT_MODEL --last model chunk--> STREAMING --bye--> CLOSED
                              \\------model_cached()-------^

A live receiver talks back on the reliable channel: it answers the hello
with `ModelRequest` (or `Ready` when it has the model cached), says `Ready`
once the model is loaded, and sends `KeyframeRequest` and `Stats` while
streaming. `SenderSession.receive` checks those replies the same way.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Union

from .errors import ProtocolError
from .messages import (
    MAX_CHUNK_BYTES, MAX_MODEL_BYTES, Bye, Frame, Hello, KeyframeRequest, Message, ModelChunk, ModelRequest, Ready,
    Stats, validate,
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
    """The whole model arrived and its SHA-256 matches the hello."""

    wire: bytes


@dataclass(frozen=True)
class FrameReceived:
    frame: Frame


@dataclass(frozen=True)
class StreamEnded:
    bye: Bye


@dataclass(frozen=True)
class ModelWanted:
    """The receiver asks for the model, from ``offset``."""

    offset: int


@dataclass(frozen=True)
class PeerReady:
    """The receiver has the model loaded: frames may flow."""


@dataclass(frozen=True)
class KeyframeWanted:
    request: KeyframeRequest


@dataclass(frozen=True)
class PeerStats:
    stats: Stats


Event = Union[StreamStarted, ModelProgress, ModelReady, FrameReceived, StreamEnded,
              ModelWanted, PeerReady, KeyframeWanted, PeerStats]

_SENDER_BOUND = (ModelRequest, Ready, KeyframeRequest, Stats)


class ReceiverSession:
    """Validates the order of received messages and reassembles the model.

    With ``ordered=True`` (files, reliable channels) frames must arrive with
    increasing ``seq``; unordered transports pass ``ordered=False`` and
    reorder in their jitter buffer.
    """

    def __init__(self, ordered: bool = True) -> None:
        self.state = State.WAIT_HELLO
        self.hello: Hello | None = None
        self.ordered = ordered
        self._model = bytearray()
        self._last_seq = -1
        self.frames_received = 0

    def model_cached(self) -> None:
        """The receiver already holds the model named in the hello: skip the transfer."""
        if self.state is not State.WAIT_MODEL:
            raise ProtocolError(f"model_cached() is only valid while waiting for the model, not in {self.state.value}")
        self.state = State.STREAMING

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
            return [StreamStarted(msg)]
        if self.state is State.WAIT_HELLO:
            raise ProtocolError(f"{type(msg).__name__.lower()} message before hello")
        if isinstance(msg, ModelChunk):
            return self._receive_chunk(msg)
        if isinstance(msg, Frame):
            if self.ordered and msg.seq <= self._last_seq:
                raise ProtocolError(f"frame seq {msg.seq} does not follow seq {self._last_seq}")
            self._last_seq = max(self._last_seq, msg.seq)
            self.frames_received += 1
            return [FrameReceived(msg)]
        assert isinstance(msg, Bye)
        self.state = State.CLOSED
        return [StreamEnded(msg)]

    def _receive_chunk(self, chunk: ModelChunk) -> list[Event]:
        assert self.hello is not None
        if self.state is not State.WAIT_MODEL:
            raise ProtocolError("model chunk after the model was complete")
        if chunk.sha256 != self.hello.model_sha256 or chunk.total != self.hello.model_size:
            raise ProtocolError("model chunk names a different model than the hello")
        if chunk.offset != len(self._model):
            raise ProtocolError(f"model chunk at offset {chunk.offset}, expected {len(self._model)}")
        self._model += chunk.data
        events: list[Event] = [ModelProgress(len(self._model), chunk.total)]
        if len(self._model) == chunk.total:
            wire = bytes(self._model)
            self._model = bytearray()
            if hashlib.sha256(wire).digest() != self.hello.model_sha256:
                raise ProtocolError("model SHA-256 does not match the hello: transfer corrupted")
            self.state = State.STREAMING
            events.append(ModelReady(wire))
        return events


class SenderSession:
    """Builds the messages of one stream in a legal order."""

    def __init__(self, hello: Hello) -> None:
        self.hello = validate(hello)
        self.state = State.WAIT_HELLO
        self._next_seq = 0
        self.peer_ready = False
        """Whether the receiver said `Ready`; a live sender holds frames back until then."""

    def receive(self, msg: Message) -> list[Event]:
        """Feed one message from the receiver; return the events it causes."""
        validate(msg)
        if not isinstance(msg, _SENDER_BOUND):
            raise ProtocolError(f"{type(msg).__name__} is sent to receivers, not by them")
        if self.state is State.WAIT_HELLO:
            raise ProtocolError(f"{type(msg).__name__} before the hello was sent")
        if isinstance(msg, ModelRequest):
            if self.state is not State.WAIT_MODEL:
                raise ProtocolError(f"model requested in {self.state.value}")
            if msg.offset >= self.hello.model_size:
                raise ProtocolError(f"model requested from offset {msg.offset} of {self.hello.model_size} bytes")
            return [ModelWanted(msg.offset)]
        if isinstance(msg, Ready):
            if self.peer_ready:
                raise ProtocolError("second ready")
            if self.state is State.WAIT_MODEL:
                self.skip_model()  # the receiver had the model cached
            self.peer_ready = True
            return [PeerReady()]
        if isinstance(msg, KeyframeRequest):
            return [KeyframeWanted(msg)]
        assert isinstance(msg, Stats)
        return [PeerStats(msg)]

    def start(self) -> Hello:
        if self.state is not State.WAIT_HELLO:
            raise ProtocolError("hello already sent")
        self.state = State.WAIT_MODEL
        return self.hello

    def model_chunks(self, wire: bytes, chunk_size: int = 64 * 1024, offset: int = 0) -> list[ModelChunk]:
        """Split the model's wire form, from ``offset``, into chunks; the hello must name its hash and size."""
        if self.state is not State.WAIT_MODEL:
            raise ProtocolError(f"model can only follow the hello, not come in {self.state.value}")
        if not 1 <= chunk_size <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_size {chunk_size} outside [1, {MAX_CHUNK_BYTES}]")
        if len(wire) > MAX_MODEL_BYTES or len(wire) != self.hello.model_size:
            raise ProtocolError(f"model of {len(wire)} bytes does not match hello.model_size={self.hello.model_size}")
        digest = hashlib.sha256(wire).digest()
        if digest != self.hello.model_sha256:
            raise ProtocolError("model bytes do not match hello.model_sha256")
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

    def frame(self, pts: int, keyframe: bool, payload: bytes, capture_us: int = 0) -> Frame:
        if self.state is not State.STREAMING:
            raise ProtocolError(f"frames can only be sent after the model, not in {self.state.value}")
        msg = validate(Frame(self._next_seq, pts, keyframe, payload, capture_us))
        self._next_seq += 1
        return msg

    def bye(self, reason: str = "") -> Bye:
        if self.state is State.CLOSED:
            raise ProtocolError("bye already sent")
        self.state = State.CLOSED
        return validate(Bye(self._next_seq, reason[:256]))

"""Protocol messages and their msgpack encoding.

Version 2 (what this peer writes) packs a message as a msgpack array:
``[2, type id, field values in declaration order...]``, trailing fields that
hold their defaults left out. Version 1 (read, for `.vsa` files written
before) was a map with a version field ``v``, a type field ``t`` and a key
per field. The map's keys cost a frame about 60 bytes, as much as the
payload of a low-res frame at 15 kbps, and at 30 fps 14 kbps of a stream's
rate; the array costs about 20. Decoding validates every field's type, range
and size, so a peer (or a file) can never make us allocate or trust more
than the bounds below allow. A newer peer may add optional fields at the
end of a message; this one ignores them.

Bounds a peer can claim are module constants so transports and tests share
them.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any, Union

import msgpack

from .codes import CODE_FORMATS
from .errors import ProtocolError

VERSION = 2
READ_VERSIONS = (1, 2)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_DIMENSION = 8192
MAX_SCALE = 64
MAX_STRIDE = 64
MAX_FPS = 1000.0
MAX_MODEL_BYTES = 512 * 1024 * 1024
MAX_CHUNK_BYTES = 4 * 1024 * 1024
MAX_FRAME_PAYLOAD_BYTES = 8 * 1024 * 1024
MAX_SEQ = 2**53
MAX_TEXT = 256
"""Longest text field, in UTF-8 bytes: msgpack limits strings by their encoded length, so the schema does too."""
MAX_PTS_STEP = 1024
"""How far one frame's pts may run past the highest pts before it (and the first frame's past 0), in source
frames: 34 s at 30 fps. Every frame in such a gap is output (interpolated or held), so a peer claiming a larger
jump is asking the receiver for unbounded work. Receivers also stop a stream's tail fill this far past its last
frame, whatever ``hello.frame_count`` says."""
SHA256_BYTES = 32
MAX_UPDATE_BYTES = 256 * 1024
"""Largest model update: one message on an aiortc data channel (whose largest message is 256 KiB)."""
NACK_SPAN = 33
"""Frames one `Nack` can name: its seq and the 32 after it."""
MAX_MODEL_VERSION = 2**31 - 1

FRAME_CODECS = ("png", "webp", "h264", "vp9")
MAX_CRF = {"h264": 51, "vp9": 63}
"""Inter codecs' quality scales (libx264 crf 0-51, libvpx-vp9 crf 0-63); other codecs say 0."""
PAYLOAD_KINDS = ("frames", "codes")
"""frames: low-res frames (``codec`` is a FRAME_CODECS entry).
codes: one code per clip of ``stride`` frames (``codec`` is a CODE_FORMATS entry, ``scale`` is 1).
Which network reconstructs them is the model's business, not the protocol's."""
LEGACY_PAYLOADS = {"ae": "frames", "inrv": "codes"}
"""Names the first release wrote in its hellos (.vsa files made then still play)."""


@dataclass(frozen=True)
class Hello:
    """Stream parameters, sent first."""

    width: int
    height: int
    fps: float
    scale: int
    stride: int
    codec: str
    model_sha256: bytes
    model_size: int
    payload: str = "frames"
    frame_count: int = 0
    """Number of source frames, or 0 for a live stream of unknown length."""
    source: str = ""
    base_sha256: bytes = b""
    """When the model is a delta: the blob it applies to (empty otherwise). A receiver that lacks it asks for it."""
    base_size: int = 0
    crf: int = 0
    """h264 and vp9 payloads: the crf they were coded at (h264 1-51, vp9 1-63; 0 = not said). A receiver may
    tune to it."""
    adapt: bool = False
    """The sender may send `ModelUpdate`s mid-stream (it does only to a receiver whose `Ready` says it applies
    them; a file carries them for any reader, and one that cannot apply them plays the stream without)."""
    feedback: bool = False
    """The sender reads `Stats`, `KeyframeRequest` and `Nack` on the media channel as well as on control
    (`vsa.protocol.session`); a receiver then sends them there. A file's hello says False."""


@dataclass(frozen=True)
class ModelChunk:
    """A slice of the model's wire form: ``data`` sits at ``offset`` of ``total`` bytes."""

    offset: int
    total: int
    sha256: bytes
    data: bytes


@dataclass(frozen=True)
class Frame:
    """One low-res frame payload.

    ``seq`` counts sent frames; ``pts`` is the source frame index, so the
    receiver knows how many frames to interpolate between two sent ones.
    ``keyframe`` marks where an inter-coded payload stream can be decoded
    from scratch. ``capture_us`` is the sender's capture clock in
    microseconds (0 when unknown), used for latency.
    """

    seq: int
    pts: int
    keyframe: bool
    payload: bytes
    capture_us: int = 0
    model_version: int = 0
    """The model version the sender coded this frame for: 0 is the model of the hello, n the result of the
    n-th `ModelUpdate`. A receiver applies update n just before the first frame that asks for it."""
    scale: int = 0
    """The scale this frame was sent at when it is not the hello's (0: the hello's). A sender under a target
    moves along its ladder mid-stream; it changes scale only at a keyframe, and the output size stays."""


@dataclass(frozen=True)
class ModelUpdate:
    """A change to the model mid-stream, sent on the reliable channel before the first frame that needs it.

    ``delta`` (`vsa.common.update`) turns the model whose state digest is
    ``base_sha256`` (version ``version - 1``) into the one whose digest is
    ``result_sha256`` (version ``version``). Versions count up from 1, one
    at a time.
    """

    version: int
    base_sha256: bytes
    result_sha256: bytes
    delta: bytes


@dataclass(frozen=True)
class Bye:
    """End of stream."""

    frames: int = 0
    reason: str = ""


@dataclass(frozen=True)
class ModelRequest:
    """Receiver to sender, in answer to the hello: send a blob from ``offset``.

    ``sha256`` names the blob: the hello's model (empty, the default) or its
    base. A receiver that already holds everything answers with `Ready` instead.
    """

    offset: int = 0
    sha256: bytes = b""


@dataclass(frozen=True)
class Ready:
    """Receiver to sender: the model is loaded, start sending frames."""

    adapt: bool = False
    """This receiver applies `ModelUpdate`s (a sender sends none to one that does not)."""


@dataclass(frozen=True)
class KeyframeRequest:
    """Receiver to sender: a frame was lost, make the next sent frame a keyframe."""

    after_seq: int = 0
    """The last frame seq the receiver decoded (for the sender's log)."""


@dataclass(frozen=True)
class Nack:
    """Receiver to sender, on the media channel: frames that did not arrive whole; send them again
    (`vsa.protocol.retransmit`). Like RFC 4585's generic NACK, one seq and a bitmask of the ones after it, so a
    request is small and bounded by its form."""

    seq: int
    following: int = 0
    """Bit ``i`` set: frame ``seq + 1 + i`` is missing too."""

    def seqs(self) -> list[int]:
        return [self.seq] + [self.seq + 1 + i for i in range(NACK_SPAN - 1) if self.following >> i & 1]


@dataclass(frozen=True)
class Stats:
    """Receiver to sender, about once a second: what the receiver sees."""

    received: int = 0
    interpolated: int = 0
    concealed: int = 0
    lost: int = 0
    fps: float = 0.0
    media_kbps: float = 0.0
    """Media received since the last report, in kbps on the path: each datagram with its headers
    (`vsa.protocol.fragment.WIRE_OVERHEAD`), as a sender's target counts them."""
    latency_ms: float = 0.0
    """Median end-to-end latency over the last second (capture to display)."""
    iterations: int = 0
    """Reprojection passes in use (the receiver drops passes to keep up)."""
    model_version: int = 0
    """The model version the receiver is playing with."""
    updates_refused: int = 0
    """Model updates refused (a hash that does not match, a version out of turn): the old model kept playing."""
    delay_trend: float = 0.0
    """How fast the frames' one-way delay grew over the last second, in ms per second (a filling queue on the
    path; the sender's congestion control backs off on it)."""
    loss: float = 0.0
    """Share of the last second's frames that never arrived, in [0, 1]."""
    queue_delay: float = 0.0
    """How far the last 0.3 s's one-way delay sits above the least seen lately, in ms: a standing queue on the
    path, which a delay that no longer grows (a full drop-tail queue) hides from ``delay_trend``."""
    arrival_kbps: float = 0.0
    """Media received over the last half second, in kbps on the path (as ``media_kbps``): what the path delivers
    now (while a queue holds data, its capacity), where ``media_kbps`` covers the whole interval since the last
    report."""
    newest_capture_us: int = 0
    """The newest frame received's ``capture_us`` (the sender's clock): which frames the report's delays speak
    of."""
    transit_ms: float = 0.0
    """The 75th percentile over the last second of the frames' capture to last datagram in, above the least one-way
    delay, in ms: the queue ahead of each and its own length on the link."""


Message = Union[Hello, ModelChunk, Frame, ModelUpdate, Bye, ModelRequest, Ready, KeyframeRequest, Stats, Nack]

_TYPE_NAMES: dict[type, str] = {
    Hello: "hello", ModelChunk: "model", Frame: "frame", ModelUpdate: "model-update", Bye: "bye",
    ModelRequest: "model-request", Ready: "ready", KeyframeRequest: "keyframe-request", Stats: "stats",
    Nack: "nack",
}
_TYPES_BY_NAME = {name: cls for cls, name in _TYPE_NAMES.items()}
_TYPE_IDS: dict[type, int] = {Hello: 1, ModelChunk: 2, Frame: 3, Bye: 4, ModelRequest: 5, Ready: 6,
                              KeyframeRequest: 7, Stats: 8, ModelUpdate: 9, Nack: 10}
"""Version 2's type ids: fixed forever, new types take new ids."""
_TYPES_BY_ID = {i: cls for cls, i in _TYPE_IDS.items()}

_INT, _FLOAT, _BYTES, _STR, _BOOL = "int", "float", "bytes", "str", "bool"

# field -> (kind, low, high). For bytes and str, low/high bound the length.
_SCHEMA: dict[type, dict[str, tuple[str, float, float]]] = {
    Hello: {
        "width": (_INT, 64, MAX_DIMENSION),
        "height": (_INT, 64, MAX_DIMENSION),
        "fps": (_FLOAT, 1e-3, MAX_FPS),
        "scale": (_INT, 1, MAX_SCALE),
        "stride": (_INT, 1, MAX_STRIDE),
        "codec": (_STR, 1, 16),
        "model_sha256": (_BYTES, SHA256_BYTES, SHA256_BYTES),
        "model_size": (_INT, 1, MAX_MODEL_BYTES),
        "payload": (_STR, 1, 16),
        "frame_count": (_INT, 0, MAX_SEQ),
        "source": (_STR, 0, MAX_TEXT),
        "base_sha256": (_BYTES, 0, SHA256_BYTES),
        "base_size": (_INT, 0, MAX_MODEL_BYTES),
        "crf": (_INT, 0, max(MAX_CRF.values())),
        "adapt": (_BOOL, 0, 1),
        "feedback": (_BOOL, 0, 1),
    },
    ModelChunk: {
        "offset": (_INT, 0, MAX_MODEL_BYTES),
        "total": (_INT, 1, MAX_MODEL_BYTES),
        "sha256": (_BYTES, SHA256_BYTES, SHA256_BYTES),
        "data": (_BYTES, 1, MAX_CHUNK_BYTES),
    },
    Frame: {
        "seq": (_INT, 0, MAX_SEQ),
        "pts": (_INT, 0, MAX_SEQ),
        "keyframe": (_BOOL, 0, 1),
        "payload": (_BYTES, 1, MAX_FRAME_PAYLOAD_BYTES),
        "capture_us": (_INT, 0, 2**63 - 1),
        "model_version": (_INT, 0, MAX_MODEL_VERSION),
        "scale": (_INT, 0, MAX_SCALE),
    },
    ModelUpdate: {
        "version": (_INT, 1, MAX_MODEL_VERSION),
        "base_sha256": (_BYTES, SHA256_BYTES, SHA256_BYTES),
        "result_sha256": (_BYTES, SHA256_BYTES, SHA256_BYTES),
        "delta": (_BYTES, 1, MAX_UPDATE_BYTES),
    },
    Bye: {
        "frames": (_INT, 0, MAX_SEQ),
        "reason": (_STR, 0, MAX_TEXT),
    },
    ModelRequest: {"offset": (_INT, 0, MAX_MODEL_BYTES), "sha256": (_BYTES, 0, SHA256_BYTES)},
    Ready: {"adapt": (_BOOL, 0, 1)},
    KeyframeRequest: {"after_seq": (_INT, 0, MAX_SEQ)},
    Nack: {"seq": (_INT, 0, MAX_SEQ), "following": (_INT, 0, 2 ** (NACK_SPAN - 1) - 1)},
    Stats: {
        "received": (_INT, 0, MAX_SEQ),
        "interpolated": (_INT, 0, MAX_SEQ),
        "concealed": (_INT, 0, MAX_SEQ),
        "lost": (_INT, 0, MAX_SEQ),
        "fps": (_FLOAT, 0.0, MAX_FPS),
        "media_kbps": (_FLOAT, 0.0, 1e7),
        "latency_ms": (_FLOAT, 0.0, 1e7),
        "iterations": (_INT, 0, 64),
        "model_version": (_INT, 0, MAX_MODEL_VERSION),
        "updates_refused": (_INT, 0, MAX_SEQ),
        "delay_trend": (_FLOAT, -1e5, 1e5),
        "loss": (_FLOAT, 0.0, 1.0),
        "queue_delay": (_FLOAT, 0.0, 1e7),
        "arrival_kbps": (_FLOAT, 0.0, 1e7),
        "newest_capture_us": (_INT, 0, 2**63 - 1),
        "transit_ms": (_FLOAT, 0.0, 1e7),
    },
}


def _check_field(cls: type, name: str, value: Any) -> Any:
    kind, low, high = _SCHEMA[cls][name]
    where = f"{_TYPE_NAMES[cls]}.{name}"
    if kind == _INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"{where} must be an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise ProtocolError(f"{where}={value} is outside [{low}, {high}]")
    elif kind == _FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtocolError(f"{where} must be a number, got {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value) or not low <= value <= high:
            raise ProtocolError(f"{where}={value} is outside [{low}, {high}]")
    elif kind == _BOOL:
        if not isinstance(value, bool):
            raise ProtocolError(f"{where} must be a boolean, got {type(value).__name__}")
    else:
        want = bytes if kind == _BYTES else str
        if not isinstance(value, want):
            raise ProtocolError(f"{where} must be {kind}, got {type(value).__name__}")
        length = len(value) if kind == _BYTES else _utf8_length(value, where)
        if not low <= length <= high:
            raise ProtocolError(f"{where} has length {length}, outside [{int(low)}, {int(high)}]")
    return value


def _utf8_length(text: str, where: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ProtocolError(f"{where} is not valid Unicode text") from None


def fit_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character (for names and reasons)."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text.encode("utf-8", errors="replace").decode("utf-8")
    return data[:limit].decode("utf-8", errors="ignore")


def _check_semantics(msg: Message) -> None:
    if isinstance(msg, Hello):
        # Which sizes a network can take is checked where the network is known: the receiver's decoder.
        if msg.width % msg.scale or msg.height % msg.scale:
            raise ProtocolError(f"hello scale {msg.scale} does not divide size {msg.height}x{msg.width}")
        if msg.payload not in PAYLOAD_KINDS:
            raise ProtocolError(f"hello.payload {msg.payload!r} is not one of {', '.join(PAYLOAD_KINDS)}")
        if len(msg.base_sha256) not in (0, SHA256_BYTES) or bool(msg.base_sha256) != bool(msg.base_size):
            raise ProtocolError("hello names a base with a malformed hash or without its size (or a size without it)")
        if msg.base_sha256 == msg.model_sha256:
            raise ProtocolError("hello names the same blob as model and base")
        codecs = FRAME_CODECS if msg.payload == "frames" else CODE_FORMATS
        if msg.codec not in codecs:
            raise ProtocolError(f"hello.codec {msg.codec!r} is not one of {', '.join(codecs)} "
                                f"(payload {msg.payload})")
        if msg.crf > MAX_CRF.get(msg.codec, 0):
            raise ProtocolError(f"hello.crf {msg.crf} is out of range for codec {msg.codec} "
                                f"(at most {MAX_CRF.get(msg.codec, 0)})")
    elif isinstance(msg, ModelRequest):
        if len(msg.sha256) not in (0, SHA256_BYTES):
            raise ProtocolError(f"model-request.sha256 has length {len(msg.sha256)}, expected 0 or {SHA256_BYTES}")
    elif isinstance(msg, ModelChunk):
        if msg.offset + len(msg.data) > msg.total:
            raise ProtocolError(
                f"model chunk [{msg.offset}, {msg.offset + len(msg.data)}) runs past its total {msg.total}"
            )


def validate(msg: Message) -> Message:
    """Check every field of ``msg``; return it unchanged or raise ProtocolError."""
    cls = type(msg)
    if cls not in _SCHEMA:
        raise ProtocolError(f"not a protocol message: {cls.__name__}")
    for f in fields(cls):
        _check_field(cls, f.name, getattr(msg, f.name))
    _check_semantics(msg)
    return msg


def encode(msg: Message) -> bytes:
    """Validate ``msg`` and return its msgpack bytes (version 2: a positional array)."""
    validate(msg)
    values = [getattr(msg, f.name) for f in fields(msg)]
    defaults = [f.default for f in fields(msg)]
    while values and defaults[len(values) - 1] is not MISSING and values[-1] == defaults[len(values) - 1] \
            and type(values[-1]) is type(defaults[len(values) - 1]):
        values.pop()
    return msgpack.packb([VERSION, _TYPE_IDS[type(msg)], *values], use_bin_type=True)


def decode(data: bytes) -> Message:
    """Parse and validate one message; raise ProtocolError on anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"message must be bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        body = msgpack.unpackb(
            bytes(data),
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_bin_len=MAX_FRAME_PAYLOAD_BYTES,
            max_str_len=MAX_TEXT,
            max_array_len=64,
            max_map_len=64,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"malformed message: {exc}") from None
    if isinstance(body, list):
        cls, values = _positional(body)
    elif isinstance(body, dict):
        cls, values = _keyed(body)
    else:
        raise ProtocolError(f"message must be an array or a map, got {type(body).__name__}")
    required = {f.name for f in fields(cls) if f.default is MISSING}
    missing = required - values.keys()
    if missing:
        raise ProtocolError(f"{_TYPE_NAMES[cls]} message lacks {', '.join(sorted(missing))}")
    # Before the fields are checked: only a string can name a legacy payload (a map here is not hashable).
    if cls is Hello and isinstance(values.get("payload"), str) and values["payload"] in LEGACY_PAYLOADS:
        values["payload"] = LEGACY_PAYLOADS[values["payload"]]
    for key, value in values.items():
        values[key] = _check_field(cls, key, value)
    msg = cls(**values)
    _check_semantics(msg)
    return msg


def _positional(body: list) -> tuple[type, dict[str, Any]]:
    """Version 2: [2, type id, values...]."""
    if len(body) < 2 or body[0] != 2:
        raise ProtocolError(f"unsupported protocol version {body[0] if body else None!r} (this peer speaks "
                            f"{', '.join(map(str, READ_VERSIONS))})")
    kind = body[1]
    cls = _TYPES_BY_ID.get(kind) if isinstance(kind, int) and not isinstance(kind, bool) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    names = [f.name for f in fields(cls)]
    # Values past the known fields are a newer peer's optional additions.
    return cls, dict(zip(names, body[2:]))


def _keyed(body: dict) -> tuple[type, dict[str, Any]]:
    """Version 1: a map with ``v``, ``t`` and a key per field."""
    version = body.pop("v", None)
    if version != 1:
        raise ProtocolError(f"unsupported protocol version {version!r} (this peer speaks "
                            f"{', '.join(map(str, READ_VERSIONS))})")
    name = body.pop("t", None)
    cls = _TYPES_BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {name!r}")
    known = {f.name for f in fields(cls)}
    # Unknown keys are ignored so a newer peer can add optional fields.
    return cls, {k: v for k, v in body.items() if k in known}

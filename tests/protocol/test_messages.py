import hashlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsa.protocol.errors import ProtocolError
from vsa.protocol.messages import (
    MAX_FRAME_PAYLOAD_BYTES, MAX_MESSAGE_BYTES, MAX_UPDATE_BYTES, VERSION, Bye, Frame, Hello, KeyframeRequest,
    ModelChunk, ModelRequest, ModelUpdate, Nack, Ready, Stats, decode, encode,
)

SHA = hashlib.sha256(b"model").digest()
HELLO = Hello(width=448, height=256, fps=30.0, scale=4, stride=2, codec="h264", model_sha256=SHA,
              model_size=1000, frame_count=282, source="clip.mp4")
SAMPLES = [
    HELLO,
    ModelChunk(offset=0, total=1000, sha256=SHA, data=b"x" * 500),
    Frame(seq=3, pts=6, keyframe=True, payload=b"\x00\x01payload", capture_us=123456),
    Frame(seq=4, pts=8, keyframe=False, payload=b"p", model_version=3),
    ModelUpdate(version=3, base_sha256=SHA, result_sha256=hashlib.sha256(b"next").digest(), delta=b"VSAU..."),
    Ready(adapt=True),
    Bye(frames=10, reason="done"),
    ModelRequest(offset=0),
    Ready(),
    KeyframeRequest(after_seq=41),
    Nack(seq=40, following=0b11),
    Hello(width=448, height=256, fps=30.0, scale=4, stride=2, codec="vp9", model_sha256=SHA, model_size=1000,
          feedback=True),
    Stats(received=10, interpolated=9, concealed=2, lost=1, fps=30.0, media_kbps=19.5, latency_ms=61.0,
          iterations=2),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    assert decode(encode(msg)) == msg


def _raw(**fields):
    return msgpack.packb({"v": 1, **fields}, use_bin_type=True)  # version 1: the map form old files hold


@pytest.mark.parametrize(
    "raw, needle",
    [
        (b"\xc1", "malformed"),
        (msgpack.packb([1, 2]), "unsupported protocol version"),
        (msgpack.packb("text"), "must be an array or a map"),
        (msgpack.packb([2, 99]), "unknown message type"),
        (msgpack.packb({"v": 99, "t": "bye"}), "unsupported protocol version"),
        (_raw(t="nope"), "unknown message type"),
        (_raw(t="frame", seq=1, pts=1, keyframe=True), "lacks payload"),
        (_raw(t="frame", seq=-1, pts=1, keyframe=True, payload=b"x"), "frame.seq=-1"),
        (_raw(t="frame", seq=1, pts=1, keyframe=1, payload=b"x"), "boolean"),
        (_raw(t="frame", seq=1, pts=1, keyframe=True, payload="text"), "must be bytes"),
        (_raw(t="frame", seq=1, pts=1, keyframe=True, payload=b""), "length 0"),
        (_raw(t="model", offset=900, total=1000, sha256=SHA, data=b"x" * 200), "runs past"),
        (_raw(t="model", offset=0, total=1000, sha256=b"short", data=b"x"), "sha256 has length 5"),
        (_raw(t="hello", width=102, height=256, fps=30.0, scale=4, stride=1, codec="h264",
              model_sha256=SHA, model_size=10), "does not divide"),
        (_raw(t="hello", width=448, height=256, fps=30.0, scale=4, stride=1, codec="h264",
              model_sha256=SHA, model_size=10, base_sha256=b"short", base_size=10), "malformed hash"),
        (_raw(t="hello", width=448, height=256, fps=30.0, scale=4, stride=1, codec="h264",
              model_sha256=SHA, model_size=10, base_sha256=SHA, base_size=10), "same blob"),
        (_raw(t="hello", width=448, height=256, fps=30.0, scale=4, stride=1, codec="h264",
              model_sha256=SHA, model_size=10, crf=52), "hello.crf 52 is out of range for codec h264"),
        (_raw(t="hello", width=448, height=256, fps=30.0, scale=4, stride=1, codec="vp9",
              model_sha256=SHA, model_size=10, crf=64), "hello.crf=64"),
        (_raw(t="hello", width=448, height=256, fps=30.0, scale=4, stride=1, codec="webp",
              model_sha256=SHA, model_size=10, crf=20), "out of range for codec webp"),
        (_raw(t="model-request", offset=0, sha256=b"abc"), "expected 0 or 32"),
        (_raw(t="hello", width=448, height=256, fps=float("nan"), scale=4, stride=1, codec="h264",
              model_sha256=SHA, model_size=10), "hello.fps"),
        (_raw(t="hello", width=448, height=256, fps=30, scale=4, stride=1, codec="mpeg2",
              model_sha256=SHA, model_size=10), "hello.codec"),
        (_raw(t="hello", width=448, height=256, fps=30, scale=4, stride=1, codec="h264",
              model_sha256=SHA, model_size=10**12), "hello.model_size"),
        # Found by `vsa fuzz`: a map where the payload's name goes escaped as a TypeError (unhashable).
        (msgpack.packb([2, 1, 320, 256, 30.0, 4, 2, "vp9", SHA, 90_000, {}], use_bin_type=True), "hello.payload"),
    ],
)
def test_bad_messages_raise_protocol_error_naming_the_problem(raw, needle):
    with pytest.raises(ProtocolError, match=needle):
        decode(raw)


def test_oversized_message_is_refused_before_parsing():
    with pytest.raises(ProtocolError, match="exceeds"):
        decode(b"\x00" * (MAX_MESSAGE_BYTES + 1))


def test_oversized_payload_claim_is_refused():
    # A frame whose payload header claims more than the bound, with no data behind it.
    raw = bytearray(_raw(t="frame", seq=1, pts=1, keyframe=True))
    assert raw[0] == 0x85  # fixmap of 5 entries
    raw[0] = 0x86
    raw += msgpack.packb("payload") + b"\xc6" + (MAX_FRAME_PAYLOAD_BYTES + 1).to_bytes(4, "big")
    with pytest.raises(ProtocolError):
        decode(bytes(raw))


def test_unknown_fields_are_ignored_for_forward_compatibility():
    raw = _raw(t="bye", frames=1, reason="", future_field=[1, 2, 3])
    assert decode(raw) == Bye(frames=1, reason="")


def test_encode_validates_too():
    with pytest.raises(ProtocolError):
        encode(Frame(seq=0, pts=0, keyframe=True, payload=b""))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_only_ever_raise_protocol_error(data):
    try:
        decode(data)
    except ProtocolError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([encode(m) for m in SAMPLES]), st.data())
def test_mutated_messages_only_ever_raise_protocol_error(raw, data):
    mutated = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and mutated:
            i = data.draw(st.integers(0, len(mutated) - 1))
            mutated[i] = data.draw(st.integers(0, 255))
        elif op == "cut" and mutated:
            i = data.draw(st.integers(0, len(mutated) - 1))
            del mutated[i:]
        else:
            i = data.draw(st.integers(0, len(mutated)))
            mutated[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        msg = decode(bytes(mutated))
    except ProtocolError:
        return
    assert decode(encode(msg)) == msg  # whatever decodes is itself valid


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "t", "seq", "pts", "keyframe", "payload", "width", "offset", "data"]),
                       st.one_of(st.integers(-2**63, 2**64 - 1), st.floats(), st.text(max_size=8), st.binary(max_size=8),
                                 st.booleans(), st.none(), st.lists(st.integers(-2**63, 2**63 - 1), max_size=3)),
                       max_size=8))
def test_structured_garbage_only_ever_raises_protocol_error(fields):
    fields.setdefault("v", 1)
    try:
        decode(msgpack.packb(fields, use_bin_type=True))
    except ProtocolError:
        pass


def test_version_2_frames_cost_about_20_bytes_and_version_1_files_still_read():
    frame = Frame(seq=1000, pts=1000, keyframe=False, payload=b"x" * 100, capture_us=0, model_version=3)
    assert len(encode(frame)) - 100 <= 16
    old = msgpack.packb({"v": 1, "t": "frame", "seq": 1000, "pts": 1000, "keyframe": False, "payload": b"x" * 100},
                        use_bin_type=True)
    assert decode(old) == Frame(1000, 1000, False, b"x" * 100)
    # A newer peer's optional trailing fields are ignored.
    assert decode(msgpack.packb([2, 3, 1, 2, True, b"p", 0, 0, 0, "future"], use_bin_type=True)) == Frame(1, 2, True, b"p")


@settings(max_examples=200, deadline=None)
@given(st.integers(-5, 2**33), st.binary(min_size=0, max_size=40), st.binary(min_size=0, max_size=300))
def test_model_update_fields_are_bounded(version, digest, delta):
    """Whatever a peer claims, a model update decodes only with a positive version, 32-byte digests and a delta
    of 1 byte up to MAX_UPDATE_BYTES."""
    raw = msgpack.packb([2, 9, version, digest, digest, delta], use_bin_type=True)
    try:
        msg = decode(raw)
    except ProtocolError:
        assert not (1 <= version < 2**31 and len(digest) == 32 and 1 <= len(delta) <= MAX_UPDATE_BYTES)
        return
    assert msg.version == version >= 1 and len(msg.base_sha256) == 32 and 1 <= len(msg.delta)


def test_an_update_larger_than_one_data_channel_message_is_refused():
    with pytest.raises(ProtocolError, match="delta has length"):
        encode(ModelUpdate(1, SHA, SHA, b"x" * (MAX_UPDATE_BYTES + 1)))

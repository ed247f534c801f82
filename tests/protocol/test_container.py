import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsa.protocol.container import MAGIC, ContainerReader, file_header, record
from vsa.protocol.errors import ProtocolError
from vsa.protocol.messages import Bye, Frame, Hello, ModelChunk

SHA = hashlib.sha256(b"m" * 10).digest()
MESSAGES = [
    Hello(width=256, height=192, fps=30.0, scale=4, stride=1, codec="png", model_sha256=SHA, model_size=10),
    ModelChunk(0, 10, SHA, b"m" * 10),
    *[Frame(seq=i, pts=i, keyframe=True, payload=bytes([i]) * 50) for i in range(5)],
    Bye(frames=5),
]
FILE = file_header() + b"".join(record(m) for m in MESSAGES)


def read_all(data: bytes, chunk: int = 7):
    reader = ContainerReader()
    out = []
    for i in range(0, len(data), chunk):
        reader.feed(data[i : i + chunk])
        while (msg := reader.next_message()) is not None:
            out.append(msg)
    return reader, out


def test_round_trip_in_small_chunks():
    reader, out = read_all(FILE)
    reader.close()
    assert out == MESSAGES


def test_truncated_file_yields_intact_records_then_a_clear_error():
    reader, out = read_all(FILE[:-5])
    assert out == MESSAGES[:-1]
    with pytest.raises(ProtocolError, match="truncated"):
        reader.close()


def test_corrupted_record_is_caught_by_crc_after_earlier_records():
    data = bytearray(FILE)
    offset = len(file_header()) + sum(len(record(m)) for m in MESSAGES[:4]) + 12
    data[offset] ^= 0xFF
    reader = ContainerReader()
    reader.feed(bytes(data))
    got = []
    with pytest.raises(ProtocolError, match="CRC"):
        while (msg := reader.next_message()) is not None:
            got.append(msg)
    assert got == MESSAGES[:4]
    with pytest.raises(ProtocolError):  # stays failed
        reader.next_message()


def test_bad_magic():
    reader = ContainerReader()
    reader.feed(b"RIFF....")
    with pytest.raises(ProtocolError, match="not a .vsa file"):
        reader.next_message()


def test_huge_length_claim_is_refused_without_allocating():
    reader = ContainerReader()
    reader.feed(MAGIC + b"\xff\xff\xff\xff\x00\x00\x00\x00")
    with pytest.raises(ProtocolError, match="over the"):
        reader.next_message()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_after_magic_only_raise_protocol_error(tail):
    reader = ContainerReader()
    reader.feed(MAGIC + tail)
    try:
        while reader.next_message() is not None:
            pass
        reader.close()
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(FILE) - 1), st.integers(0, 255))
def test_any_single_byte_change_is_detected_or_harmless(position, value):
    data = bytearray(FILE)
    data[position] = value
    try:
        reader, out = read_all(bytes(data))
        reader.close()
    except ProtocolError:
        return
    # The only undetectable changes are those that leave the bytes as they were.
    assert bytes(data) == FILE and out == MESSAGES

"""INR-V code payloads: round trips, and hostile codes refused with ProtocolError only."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsa.protocol.codes import code_size, pack_code, unpack_code
from vsa.protocol.errors import ProtocolError
from vsa.protocol.messages import Hello, decode, encode


@pytest.mark.parametrize("fmt,tolerance", [("f16", 2e-3), ("i8", 3.0 / 254)])
def test_round_trip_within_the_format_precision(fmt, tolerance):
    code = [math.sin(i) * 2.5 for i in range(64)]
    payload = pack_code(code, fmt)
    assert len(payload) == code_size(fmt, 64)
    back = unpack_code(payload, fmt, 64)
    assert max(abs(a - b) for a, b in zip(code, back)) <= tolerance


@pytest.mark.parametrize("fmt", ["f16", "i8"])
def test_bad_codes_are_refused_clearly(fmt):
    with pytest.raises(ProtocolError, match="non-finite"):
        pack_code([0.0, float("nan")], fmt)
    good = pack_code([0.5] * 16, fmt)
    with pytest.raises(ProtocolError, match="bytes"):
        unpack_code(good[:-1], fmt, 16)
    with pytest.raises(ProtocolError, match="bytes"):
        unpack_code(good, fmt, 17)


def test_nan_and_hostile_scales_in_a_payload_are_refused():
    with pytest.raises(ProtocolError, match="NaN"):
        unpack_code(struct.pack("<4e", 0.0, float("nan"), 1.0, 2.0), "f16", 4)
    for scale in (float("nan"), float("inf"), -1.0, 0.0, 1e30):
        with pytest.raises(ProtocolError, match="scale"):
            unpack_code(struct.pack("<f", scale) + bytes(4), "i8", 4)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["f16", "i8"]), st.integers(1, 80))
def test_random_bytes_never_raise_anything_but_protocol_error(data, fmt, dim):
    try:
        values = unpack_code(data, fmt, dim)
    except ProtocolError:
        return
    assert len(values) == dim and all(math.isfinite(v) for v in values)


def test_an_inrv_hello_round_trips_and_needs_a_code_format():
    hello = Hello(width=64, height=96, fps=30.0, scale=1, stride=16, codec="i8", model_sha256=bytes(32),
                  model_size=10, payload="codes", frame_count=40)
    assert decode(encode(hello)) == hello
    with pytest.raises(ProtocolError, match="codec"):
        encode(Hello(width=64, height=64, fps=30.0, scale=1, stride=16, codec="h264", model_sha256=bytes(32),
                     model_size=10, payload="codes"))


def test_hellos_of_the_first_release_still_decode():
    """Its hellos said payload "ae" or "inrv"; they now say what the stream carries, frames or codes."""
    import msgpack

    from vsa.protocol.messages import decode

    for old, new in (("ae", "frames"), ("inrv", "codes")):
        raw = msgpack.packb({"v": 1, "t": "hello", "width": 64, "height": 64, "fps": 30.0, "scale": 1, "stride": 16,
                             "codec": "f16" if new == "codes" else "png", "model_sha256": bytes(32), "model_size": 10,
                             "payload": old}, use_bin_type=True)
        assert decode(raw).payload == new

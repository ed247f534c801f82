import pytest
from hypothesis import given
from hypothesis import strategies as st

from vsa.protocol.errors import ProtocolError
from vsa.protocol.signaling import MAX_SIGNAL_BYTES, Signal, decode_signal, encode_signal, token_matches


def test_offer_round_trips_as_one_json_line():
    offer = Signal("offer", sdp="v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", token="s3cret")
    line = encode_signal(offer)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_signal(line) == offer


@pytest.mark.parametrize(
    "line, needle",
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"type": "hack"}', "unknown signal type"),
        (b'{"type": "offer", "sdp": 5}', "must be a string"),
        (b'{"type": "answer", "sdp": "hello"}', "carries no SDP"),
        (b'{"type": "error", "token": "' + b"x" * 300 + b'"}', "token longer"),
        (b" " * (MAX_SIGNAL_BYTES + 1), "exceeds"),
    ],
)
def test_bad_signals_get_clear_errors(line, needle):
    with pytest.raises(ProtocolError, match=needle):
        decode_signal(line)


def test_tokens():
    assert token_matches(None, "") and token_matches("", "anything")
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abd") and not token_matches("abc", "")


@given(st.binary(max_size=2000))
def test_garbage_signals_raise_only_protocol_error(data):
    try:
        decode_signal(data)
    except ProtocolError:
        pass

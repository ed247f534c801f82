import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vsa.protocol.errors import ProtocolError
from vsa.protocol.signaling import (
    FAILURE_WINDOW, MAX_CLOCK_SKEW, MAX_FAILURES, MAX_SIGNAL_BYTES, OfferGuard, Signal, check_answer, decode_signal,
    encode_signal, make_answer, make_offer,
)

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
OTHER_SDP = "v=0\r\no=- 2 2 IN IP4 10.0.0.66\r\n"
NOW = 1_800_000_000.0


def _nonce(i: int = 0) -> bytes:
    return i.to_bytes(16, "big")


def test_offer_round_trips_as_one_json_line_without_the_token():
    offer = make_offer(SDP, "s3cret", _nonce(), NOW)
    line = encode_signal(offer)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_signal(line) == offer
    assert b"s3cret" not in line and "token" not in json.loads(line)  # the token never goes on the wire


def test_the_right_token_is_accepted_and_the_answer_checks_out():
    offer = make_offer(SDP, "s3cret", _nonce(), NOW)
    OfferGuard("s3cret").check(decode_signal(encode_signal(offer)), "10.0.0.2", NOW + 1)
    answer = make_answer(OTHER_SDP, "s3cret", offer)
    check_answer(decode_signal(encode_signal(answer)), "s3cret", offer)


@pytest.mark.parametrize("tamper, needle", [
    (lambda o: make_offer(SDP, "wrong", _nonce(), NOW), "wrong or missing token"),
    (lambda o: make_offer(SDP, None, _nonce(), NOW), "wrong or missing token"),
    (lambda o: Signal("offer", sdp=OTHER_SDP, nonce=o.nonce, time=o.time, mac=o.mac), "wrong or missing token"),
    (lambda o: Signal("offer", sdp=o.sdp, nonce=o.nonce, time=o.time + 1, mac=o.mac), "wrong or missing token"),
    (lambda o: Signal("offer", sdp=o.sdp), "no nonce"),
    (lambda o: make_offer(SDP, "s3cret", _nonce(), NOW - MAX_CLOCK_SKEW - 5), "off this receiver's clock"),
])
def test_a_receiver_refuses_offers_that_do_not_prove_the_token(tamper, needle):
    offer = tamper(make_offer(SDP, "s3cret", _nonce(), NOW))
    with pytest.raises(ProtocolError, match=needle):
        OfferGuard("s3cret").check(offer, "10.0.0.2", NOW)


def test_a_replayed_offer_is_refused():
    guard, offer = OfferGuard("s3cret"), make_offer(SDP, "s3cret", _nonce(), NOW)
    guard.check(offer, "10.0.0.2", NOW)
    with pytest.raises(ProtocolError, match="replay"):
        guard.check(offer, "10.0.0.3", NOW + 10)  # from anywhere, within the clock window
    with pytest.raises(ProtocolError, match="clock"):
        guard.check(offer, "10.0.0.3", NOW + 3 * MAX_CLOCK_SKEW)  # and after it, the clock refuses it


def test_a_sender_refuses_a_swapped_or_foreign_answer():
    offer = make_offer(SDP, "s3cret", _nonce(1), NOW)
    earlier = make_offer(SDP, "s3cret", _nonce(2), NOW - 30)
    for answer in (Signal("answer", sdp=OTHER_SDP),  # no MAC
                   make_answer(OTHER_SDP, "wrong", offer),
                   make_answer(OTHER_SDP, "s3cret", earlier),  # a real answer, to another offer
                   Signal("answer", sdp=OTHER_SDP, mac=make_answer(SDP, "s3cret", offer).mac)):  # SDP swapped
        with pytest.raises(ProtocolError, match="not authenticated"):
            check_answer(answer, "s3cret", offer)


def test_without_a_token_anything_well_formed_is_accepted():
    offer = make_offer(SDP, None, _nonce(), NOW)
    assert offer.mac == ""
    OfferGuard(None).check(offer, "127.0.0.1", NOW + 10_000)  # no clock check either: there is nothing to replay
    check_answer(make_answer(OTHER_SDP, None, offer), None, offer)


def test_an_address_that_keeps_failing_is_refused_for_a_while():
    guard = OfferGuard("s3cret")
    for i in range(MAX_FAILURES):
        with pytest.raises(ProtocolError, match="wrong or missing token"):
            guard.check(make_offer(SDP, "guess%d" % i, _nonce(i), NOW), "10.0.0.9", NOW + i)
    good = make_offer(SDP, "s3cret", _nonce(99), NOW + 10)
    with pytest.raises(ProtocolError, match="too many failed attempts"):
        guard.check(good, "10.0.0.9", NOW + 10)  # even with the right token, for now
    guard.check(good, "10.0.0.10", NOW + 10)  # other addresses are not affected
    later = make_offer(SDP, "s3cret", _nonce(100), NOW + MAX_FAILURES + FAILURE_WINDOW + 1)
    guard.check(later, "10.0.0.9", later.time)  # and the window passes


@pytest.mark.parametrize(
    "line, needle",
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"type": "hack"}', "unknown signal type"),
        (b'{"type": "offer", "sdp": 5}', "must be a string"),
        (b'{"type": "answer", "sdp": "hello"}', "carries no SDP"),
        (b'{"type": "offer", "sdp": "v=0", "time": "now"}', "whole number"),
        (b'{"type": "offer", "sdp": "v=0", "mac": "' + b"f" * 300 + b'"}', "too long"),
        (b'{"type": "error", "reason": "' + b"x" * 300 + b'"}', "reason longer"),
        (b" " * (MAX_SIGNAL_BYTES + 1), "exceeds"),
    ],
)
def test_bad_signals_get_clear_errors(line, needle):
    with pytest.raises(ProtocolError, match=needle):
        decode_signal(line)


@given(st.binary(max_size=2000))
def test_garbage_signals_raise_only_protocol_error(data):
    try:
        decode_signal(data)
    except ProtocolError:
        pass

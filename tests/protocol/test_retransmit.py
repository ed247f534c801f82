"""Retransmission on request, sans-I/O: which frames a receiver asks for and when, what a sender sends again."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vsa.protocol.errors import ProtocolError
from vsa.protocol.messages import NACK_SPAN, Nack, decode, encode
from vsa.protocol.retransmit import (
    FIRST_RESPONSE_S, MAX_ASKS, MAX_RESENDS, MAX_WAIT_S, MIN_RESEND_GAP_S, Asker, History, nacks,
)


@given(st.sets(st.integers(min_value=0, max_value=500), max_size=80))
def test_nacks_name_exactly_the_seqs_asked_for_in_few_bounded_messages(seqs):
    messages = nacks(seqs)
    named = [seq for m in messages for seq in decode(encode(m)).seqs()]
    assert sorted(named) == sorted(seqs) and len(named) == len(set(named))
    # One message covers a run of NACK_SPAN: never more messages than the spans the seqs touch.
    assert len(messages) <= len({s // NACK_SPAN for s in seqs}) * 2
    assert all(len(encode(m)) <= 12 for m in messages)


def test_a_hole_is_asked_for_at_once_then_again_after_a_response_time_at_most_max_asks_times():
    asker = Asker()
    assert asker.due([5, 6], now=0.0) == [5, 6]
    assert asker.due([5, 6], now=0.01) == []  # asked a moment ago: the answer is on its way
    retry = asker.retry_s
    assert retry >= FIRST_RESPONSE_S
    times = [0.0]
    t = 0.0
    while True:
        t += 0.01
        if asker.due([5], now=t):
            times.append(t)
        if t > 5 * retry * MAX_ASKS:
            break
    assert len(times) == MAX_ASKS
    assert all(b - a >= retry - 1e-9 for a, b in zip(times, times[1:]))


def test_the_asker_learns_the_response_time_and_waits_for_a_repair_within_bounds():
    asker = Asker()
    for i in range(10):
        asker.due([i], now=i)
        assert asker.arrived(i, now=i + 0.04)  # asked for: a repair
    assert abs(asker.response_s - 0.04) < 1e-9
    assert asker.repaired == 10 and asker.asked == 10
    assert not asker.arrived(99, now=20.0)  # never asked for: an ordinary arrival
    # Enough for the first answer and one more try, never more than the cap.
    assert asker.response_s + asker.retry_s <= asker.wait_s <= MAX_WAIT_S
    slow = Asker()
    slow.due([1], 0.0)
    slow.arrived(1, 5.0)
    assert slow.wait_s == MAX_WAIT_S


def test_settled_frames_are_not_asked_for_again_and_the_asker_stays_bounded():
    asker = Asker()
    asker.due(range(0, 10), now=0.0)
    asker.settled(8)
    assert asker.due([8, 9], now=10.0) == [8, 9]  # still missing, asked again
    assert asker.due(range(100, 100 + 1000), now=0.0)  # a flood of holes
    assert len(asker._asked) <= 256


def test_the_sender_sends_again_what_it_kept_only_a_few_times_and_not_twice_at_once():
    history = History(seconds=1.0)
    history.add(0, [b"a0", b"a1"], now=0.0)
    history.add(1, [b"b0"], now=0.1)
    assert history.resend([1, 0, 7], now=0.2) == [[b"a0", b"a1"], [b"b0"]]  # oldest first; 7 never sent
    assert history.unknown == 1
    assert history.resend([0], now=0.2 + MIN_RESEND_GAP_S / 2) == []  # a repeated request crossing the answer
    sent = 1
    t = 0.2
    for _ in range(10):
        t += MIN_RESEND_GAP_S
        sent += len(history.resend([0], now=t))
    assert sent == MAX_RESENDS
    assert history.resend([1], now=1.2) == []  # past the history's second
    assert history.resent == MAX_RESENDS + 1


def test_the_history_is_bounded_in_bytes_and_frames():
    history = History(seconds=10.0, max_bytes=1000, max_frames=5)
    for seq in range(20):
        history.add(seq, [bytes(300)], now=seq * 0.01)
    kept = [seq for seq in range(20) if history.resend([seq], now=0.5)]
    assert kept == [17, 18, 19]  # 3 x 300 bytes fit in 1000


def test_a_nack_round_trips_and_a_peer_cannot_claim_more_than_its_span():
    msg = Nack(10, 0b101)
    assert decode(encode(msg)) == msg and msg.seqs() == [10, 11, 13]
    with pytest.raises(ProtocolError, match="outside"):
        decode(msgpack.packb([2, 10, 0, 2 ** (NACK_SPAN - 1)]))
    with pytest.raises(ProtocolError, match="outside"):
        decode(msgpack.packb([2, 10, -1]))


def test_a_queue_on_the_path_lengthens_the_wait_for_a_repair():
    asker = Asker()
    for i in range(5):
        asker.due([i], now=float(i))
        asker.arrived(i, now=i + 0.03)  # answers in 30 ms while the path was empty
    quick = asker.wait_s
    asker.queue_s = 0.3  # a 300 ms queue now: the answer waits in it too
    assert asker.wait_s > quick and asker.wait_s >= 0.3 + asker.retry_s
    assert asker.retry_s >= 0.3

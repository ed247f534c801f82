import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsa.protocol.errors import ProtocolError
from vsa.protocol.fragment import HEADER, MAX_DATAGRAM, MAX_FRAGMENTS, STALL_SECONDS, Reassembler, fragment


def test_every_datagram_fits_and_the_message_comes_back_in_any_order():
    message = bytes(random.Random(0).randbytes(10_000))
    parts = fragment(message, seq=7)
    assert len(parts) == 9 and all(len(p) <= MAX_DATAGRAM for p in parts)
    random.Random(1).shuffle(parts)
    reassembler = Reassembler()
    results = [reassembler.feed(p, now=0.0) for p in parts]
    assert results[:-1] == [None] * 8 and results[-1] == message


def test_a_frame_missing_a_fragment_is_dropped_once_a_newer_one_arrived_and_later_fragments_are_ignored():
    parts = fragment(b"x" * 3000, seq=1)
    (newer,) = fragment(b"y", seq=2)
    reassembler = Reassembler()
    assert reassembler.feed(parts[0], now=0.0) is None
    assert reassembler.expire(now=0.2, max_age=0.1) == []  # nothing newer yet: still coming, on a slow link
    assert reassembler.feed(newer, now=0.25) == b"y"
    assert reassembler.expire(now=0.3, max_age=0.1) == []
    assert reassembler.expire(now=0.4, max_age=0.1) == [1]
    assert reassembler.dropped == 1 and reassembler.pending == 0
    assert reassembler.feed(parts[1], now=0.5) is None and reassembler.pending == 0


def test_a_frame_trickling_in_on_a_slow_link_is_kept_and_a_stalled_one_is_dropped():
    # A 6 KB keyframe at 60 kbps: one datagram every 160 ms, far past the 66 ms a receiver waits for a hole.
    parts = fragment(b"k" * 6000, seq=7)
    reassembler = Reassembler()
    for i, part in enumerate(parts[:-1]):
        assert reassembler.feed(part, now=0.16 * i) is None
        assert reassembler.expire(now=0.16 * i + 0.15, max_age=0.066) == []
    assert reassembler.feed(parts[-1], now=0.16 * len(parts)) == b"k" * 6000
    stalled = fragment(b"s" * 3000, seq=8)
    assert reassembler.feed(stalled[0], now=10.0) is None
    assert reassembler.expire(now=10.0 + STALL_SECONDS - 0.01, max_age=0.066) == []
    assert reassembler.expire(now=10.0 + STALL_SECONDS + 0.01, max_age=0.066) == [8]


def test_a_whole_message_tells_when_its_first_datagram_arrived():
    """A queue on the path delays a frame's first datagram; its own length only the last. Queue delay is
    measured from the first."""
    r = Reassembler()
    parts = fragment(bytes(3000), 7, MAX_DATAGRAM)
    assert len(parts) == 3
    assert r.feed(parts[0], 1.0) is None and r.feed(parts[1], 1.2) is None
    assert r.feed(parts[2], 1.4) is not None and r.first_seen == 1.0
    assert r.feed(fragment(b"one", 8, MAX_DATAGRAM)[0], 2.0) == b"one" and r.first_seen == 2.0


def test_duplicates_are_counted_not_delivered_twice():
    reassembler = Reassembler()
    (only,) = fragment(b"small", seq=3)
    assert reassembler.feed(only, 0.0) == b"small"
    assert reassembler.feed(only, 0.0) is None and reassembler.duplicates == 1


def test_pending_frames_and_bytes_are_bounded():
    reassembler = Reassembler(max_pending=4, max_pending_bytes=10_000)
    for seq in range(10):
        reassembler.feed(fragment(b"y" * 5000, seq)[0], now=0.0)
        assert reassembler.pending <= 4
        assert reassembler._held <= 10_000
    assert reassembler.dropped >= 6


@pytest.mark.parametrize(
    "datagram, needle",
    [
        (b"\xf7\x00", "shorter than its header"),
        (HEADER.pack(0x00, 1, 0, 1) + b"x", "magic"),
        (HEADER.pack(0xF7, 1, 5, 2) + b"x", "out of range"),
        (HEADER.pack(0xF7, 1, 0, MAX_FRAGMENTS + 1) + b"x", "out of range"),
    ],
)
def test_malformed_datagrams_get_a_clear_error(datagram, needle):
    with pytest.raises(ProtocolError, match=needle):
        Reassembler().feed(datagram, 0.0)


def test_a_frame_cannot_change_its_fragment_count():
    reassembler = Reassembler()
    reassembler.feed(HEADER.pack(0xF7, 1, 0, 3) + b"a", 0.0)
    with pytest.raises(ProtocolError, match="claims 4 fragments"):
        reassembler.feed(HEADER.pack(0xF7, 1, 1, 4) + b"b", 0.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=1500), max_size=40))
def test_garbage_never_escapes_as_anything_but_protocol_error(datagrams):
    reassembler = Reassembler(max_pending=8)
    for d in datagrams:
        try:
            out = reassembler.feed(d, 0.0)
        except ProtocolError:
            continue
        assert out is None or isinstance(out, bytes)
    assert reassembler.pending <= 8


def test_what_a_message_costs_on_the_path_counts_every_datagrams_headers():
    from vsa.protocol.fragment import HEADER, WIRE_OVERHEAD, wire_bytes, wire_size

    for size in (1, 500, MAX_DATAGRAM - HEADER.size, MAX_DATAGRAM - HEADER.size + 1, 5000):
        parts = fragment(b"x" * size, 7)
        assert wire_size(size) == wire_bytes(parts) == size + len(parts) * (HEADER.size + WIRE_OVERHEAD)

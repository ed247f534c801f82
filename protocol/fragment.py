"""Media packetisation: split encoded frame messages into small datagrams and join them again.

An unreliable WebRTC data channel loses a whole message when any of its SCTP
fragments is lost, and a burst of large messages overflows the socket's
receive buffer. So the sender cuts every frame message into datagrams of at
most `MAX_DATAGRAM` bytes, each with a 9-byte header::

    magic 0xF7 | frame seq (u32) | fragment index (u16) | fragment count (u16)

and the receiver's `Reassembler` joins them. A frame whose fragments stop
coming is dropped (`expire`): once a newer frame's datagram has arrived
and the wait has passed (datagrams leave in order, so the missing ones are
lost), or once none of its own has come for `STALL_SECONDS`. Counting from
its first fragment instead dropped every multi-datagram frame on a slow
link, where a 6 KB keyframe takes 0.8 s to cross at 60 kbps. Time is passed
in by the caller, so this stays sans-I/O.
"""

from __future__ import annotations

import struct
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from .errors import ProtocolError
from .messages import MAX_FRAME_PAYLOAD_BYTES

MAGIC = 0xF7
HEADER = struct.Struct(">BIHH")
MAX_DATAGRAM = 1200
"""Bytes per media message, header included: one IP packet on any path."""
MAX_FRAGMENTS = -(-(MAX_FRAME_PAYLOAD_BYTES + 1024) // (MAX_DATAGRAM - HEADER.size))
SEQ_MODULO = 2**32
WIRE_OVERHEAD = 93
"""Bytes each datagram costs on a path beyond its own: IPv4 (20) and UDP (8), a DTLS 1.2 record (13) with AES-GCM's
nonce (8) and tag (16), SCTP's common header (12) and DATA chunk header (16). At 30 small frames a second that is
22 kbps, a third of a 60 kbps link: a rate controller that leaves it out overfills the link it measures."""
STALL_SECONDS = 0.5
"""An incomplete frame none of whose datagrams has arrived for this long is given up, newer frames or not."""


def wire_bytes(datagrams: list[bytes]) -> int:
    """What ``datagrams`` cost on the path, every header included (`WIRE_OVERHEAD`)."""
    return sum(len(d) + WIRE_OVERHEAD for d in datagrams)


def wire_size(message_bytes: int, size: int = MAX_DATAGRAM) -> int:
    """What a message of ``message_bytes`` costs on the path once cut into datagrams of at most ``size``."""
    count = max(1, -(-message_bytes // (size - HEADER.size)))
    return message_bytes + count * (HEADER.size + WIRE_OVERHEAD)


def fragment(message: bytes, seq: int, size: int = MAX_DATAGRAM) -> list[bytes]:
    """Cut one encoded message into datagrams of at most ``size`` bytes."""
    if not HEADER.size < size <= 65535:
        raise ValueError(f"datagram size {size} must be in ({HEADER.size}, 65535]")
    if not message:
        raise ValueError("cannot fragment an empty message")
    room = size - HEADER.size
    count = -(-len(message) // room)
    if count > MAX_FRAGMENTS:
        raise ValueError(f"message of {len(message)} bytes needs {count} fragments, more than {MAX_FRAGMENTS}")
    seq %= SEQ_MODULO
    return [HEADER.pack(MAGIC, seq, i, count) + message[i * room : (i + 1) * room] for i in range(count)]


@dataclass
class _Partial:
    count: int
    last_seen: float
    """When its newest datagram arrived."""
    first_seen: float = 0.0
    """When its first datagram arrived."""
    overtaken: float | None = None
    """When a datagram of a newer frame first arrived."""
    parts: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


def _newer(a: int, b: int) -> bool:
    """Whether seq ``a`` comes after ``b`` (seqs wrap at `SEQ_MODULO`)."""
    return 0 < (a - b) % SEQ_MODULO < SEQ_MODULO // 2


class Reassembler:
    """Joins datagrams back into messages, with every size and count bounded.

    ``max_pending`` frames may be incomplete at once (the oldest is dropped
    beyond that) and at most ``max_pending_bytes`` are held for them.
    Fragments of a frame already completed or dropped are ignored.
    """

    def __init__(self, max_pending: int = 32, max_pending_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self._partial: OrderedDict[int, _Partial] = OrderedDict()
        self._held = 0
        self._done: deque[int] = deque(maxlen=1024)
        self._done_set: set[int] = set()
        self.first_seen = 0.0
        """When the first datagram of the last message `feed` returned arrived: a queue on the path delays it,
        while a large message's own length delays only its last (a receiver reading queues wants the first)."""
        self.dropped = 0
        """Frames given up on: deadline passed, or pushed out by newer ones."""
        self.duplicates = 0

    @staticmethod
    def parse(datagram: bytes) -> tuple[int, int, int, bytes]:
        """(seq, index, count, body) of one datagram, or ProtocolError."""
        if len(datagram) <= HEADER.size:
            raise ProtocolError(f"media datagram of {len(datagram)} bytes is shorter than its header")
        if len(datagram) > 65535:
            raise ProtocolError(f"media datagram of {len(datagram)} bytes is too large")
        magic, seq, index, count = HEADER.unpack_from(datagram)
        if magic != MAGIC:
            raise ProtocolError(f"media datagram has magic {magic:#x}, expected {MAGIC:#x}")
        if not 1 <= count <= MAX_FRAGMENTS or index >= count:
            raise ProtocolError(f"media fragment {index} of {count} is out of range")
        return seq, index, count, bytes(datagram[HEADER.size :])

    def feed(self, datagram: bytes, now: float) -> bytes | None:
        """Take one datagram; return the whole message once its last fragment is in."""
        seq, index, count, body = self.parse(datagram)
        for other, waiting in self._partial.items():
            if waiting.overtaken is None and _newer(seq, other):
                waiting.overtaken = now
        if seq in self._done_set:
            self.duplicates += 1
            return None
        if count == 1:
            self._finish(seq)
            self.first_seen = now
            return body
        partial = self._partial.get(seq)
        if partial is None:
            partial = self._partial[seq] = _Partial(count, now, now)
            while len(self._partial) > self.max_pending:
                self._drop(next(iter(self._partial)))
        elif partial.count != count:
            raise ProtocolError(f"media frame {seq} claims {count} fragments, earlier {partial.count}")
        partial.last_seen = now
        if index in partial.parts:
            self.duplicates += 1
            return None
        partial.parts[index] = body
        partial.size += len(body)
        self._held += len(body)
        while self._held > self.max_pending_bytes and self._partial:
            oldest = next(iter(self._partial))
            self._drop(oldest)
            if oldest == seq:
                return None
        if len(partial.parts) < count:
            return None
        del self._partial[seq]
        self._held -= partial.size
        self._finish(seq)
        self.first_seen = partial.first_seen
        return b"".join(partial.parts[i] for i in range(count))

    def expire(self, now: float, max_age: float) -> list[int]:
        """Drop incomplete frames overtaken by a newer one more than ``max_age`` seconds ago, or with no
        datagram for `STALL_SECONDS` (or ``max_age``, if longer); return their seqs."""
        stall = max(STALL_SECONDS, max_age)
        old = [seq for seq, p in self._partial.items()
               if (p.overtaken is not None and now - p.overtaken > max_age) or now - p.last_seen > stall]
        for seq in old:
            self._drop(seq)
        return old

    @property
    def pending(self) -> int:
        return len(self._partial)

    def _drop(self, seq: int) -> None:
        partial = self._partial.pop(seq)
        self._held -= partial.size
        self.dropped += 1
        self._finish(seq)

    def _finish(self, seq: int) -> None:
        if len(self._done) == self._done.maxlen:
            self._done_set.discard(self._done[0])
        self._done.append(seq)
        self._done_set.add(seq)

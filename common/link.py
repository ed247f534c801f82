"""A network link emulated in user space: a rate limit with a drop-tail queue, delay, jitter and random loss.

netem is not in this kernel (`tc qdisc add ... netem` answers "unknown
qdisc"), so links are emulated where the peer connection's UDP leaves and
enters the process: at the datagram transports of the ICE connection
(`shape_peer`). Every datagram of the connection goes through it, STUN,
DTLS and SCTP alike, so SCTP's own congestion control sees the same link
the media does.

`Link` is the model of one direction, sans-I/O: given a datagram's size and
the time it is sent, it says when it arrives, or that it is lost (random
loss) or dropped (the queue is full). Tests drive it with a synthetic flow;
`shape_peer` schedules its answers on the event loop.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass, replace
from typing import Any

MAX_QUEUE_BYTES = 16 * 1024 * 1024
IP_UDP_BYTES = 28
"""What IPv4 and UDP add to each datagram on a real link: the rate limit and the queue count them too."""


@dataclass(frozen=True)
class LinkSpec:
    """One direction of a link; ``vsend --link "rate=100k,delay=40ms,jitter=5ms,loss=2%,queue=32k"``."""

    rate_bps: float = 0.0
    """0: no rate limit."""
    delay_s: float = 0.0
    jitter_s: float = 0.0
    """Each datagram's delay varies uniformly by up to this much either way (never reordering)."""
    loss: float = 0.0
    queue_bytes: int = 64 * 1024
    """The drop-tail queue in front of the rate limit."""

    def __post_init__(self) -> None:
        if self.rate_bps < 0 or self.delay_s < 0 or self.jitter_s < 0 or not 0 <= self.loss < 1:
            raise ValueError("a link needs rate, delay and jitter of at least 0 and a loss in [0, 1)")
        if not 1500 <= self.queue_bytes <= MAX_QUEUE_BYTES:
            raise ValueError(f"a link's queue must hold 1500 to {MAX_QUEUE_BYTES} bytes, got {self.queue_bytes}")

    @classmethod
    def parse(cls, text: str) -> "LinkSpec":
        """``rate=100k,delay=40ms,jitter=5ms,loss=2%,queue=32k`` (any subset, any order; rates in bits per
        second with k or m, times in ms or s, the queue in bytes with k or m)."""
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, value = (x.strip().lower() for x in item.partition("="))
            patterns = {"rate": _RATE, "delay": _TIME, "jitter": _TIME, "loss": _LOSS, "queue": _SIZE}
            if key not in patterns:
                raise ValueError(f"unknown link setting {key!r} in {text!r} (rate, delay, jitter, loss, queue)")
            match = patterns[key].fullmatch(value)
            if not match:
                raise ValueError(f"bad link setting {item!r}: e.g. rate=100k, delay=40ms, loss=2%, queue=32k")
            number, unit = float(match.group(1)), match.group(2) or ""
            if key == "rate":
                values["rate_bps"] = number * {"": 1, "k": 1e3, "m": 1e6}[unit]
            elif key in ("delay", "jitter"):
                values[f"{key}_s"] = number if unit == "s" else number / 1000
            elif key == "loss":
                values["loss"] = number / 100 if unit == "%" else number
            else:
                values["queue_bytes"] = int(number * {"": 1, "k": 1024, "m": 1024 * 1024}[unit])
        return cls(**values)


_RATE = re.compile(r"([0-9]*\.?[0-9]+)\s*([km]?)(?:bps|bit/s|b)?")
_TIME = re.compile(r"([0-9]*\.?[0-9]+)\s*(ms|s)?")
_LOSS = re.compile(r"([0-9]*\.?[0-9]+)\s*(%)?")
_SIZE = re.compile(r"([0-9]*\.?[0-9]+)\s*([km]?)(?:b|bytes)?")


class Link:
    """One direction: when each datagram arrives, or None when it is lost or dropped."""

    def __init__(self, spec: LinkSpec, seed: int = 0) -> None:
        self.spec = spec
        # Separate draws for loss and jitter: which datagrams are lost does not depend on how many queued.
        self._loss_rng, self._jitter_rng = random.Random(seed), random.Random(f"jitter-{seed}")
        self._free_at = 0.0
        """When the rate limit has sent everything queued so far."""
        self._last_arrival = 0.0
        self.sent = self.lost = self.dropped = 0
        self.bytes_offered = 0
        """Bytes of every datagram sent into the link, lost and dropped ones included (with every header, IP's and
        UDP's too)."""

    def set_rate(self, rate_bps: float) -> None:
        """A new rate from now on (a bandwidth trace); what is queued keeps its place."""
        self.spec = replace(self.spec, rate_bps=rate_bps)

    def queued_bytes(self, now: float) -> float:
        """Bytes waiting in the queue at ``now``."""
        if not self.spec.rate_bps:
            return 0.0
        return max(0.0, self._free_at - now) * self.spec.rate_bps / 8

    def send(self, size: int, now: float) -> float | None:
        """A datagram of ``size`` bytes (UDP payload) sent at ``now`` (seconds): its arrival time, or None."""
        self.sent += 1
        size += IP_UDP_BYTES
        self.bytes_offered += size
        if self.spec.loss and self._loss_rng.random() < self.spec.loss:
            self.lost += 1
            return None
        leaves = now
        if self.spec.rate_bps:
            if self.queued_bytes(now) + size > self.spec.queue_bytes:
                self.dropped += 1
                return None
            self._free_at = max(now, self._free_at) + size * 8 / self.spec.rate_bps
            leaves = self._free_at
        jitter = self._jitter_rng.uniform(-self.spec.jitter_s, self.spec.jitter_s) if self.spec.jitter_s else 0.0
        arrival = max(leaves + max(0.0, self.spec.delay_s + jitter), self._last_arrival)
        self._last_arrival = arrival
        return arrival


class _ShapedTransport:
    """Stands in for an asyncio datagram transport: ``sendto`` goes through a `Link`."""

    def __init__(self, inner: asyncio.DatagramTransport, link: Link) -> None:
        self._inner, self._link = inner, link
        self._loop = asyncio.get_running_loop()

    def sendto(self, data: bytes, addr: Any = None) -> None:
        arrival = self._link.send(len(data), self._loop.time())
        if arrival is not None:
            self._loop.call_at(arrival, self._deliver, data, addr)

    def _deliver(self, data: bytes, addr: Any) -> None:
        if not self._inner.is_closing():
            self._inner.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def shape_peer(pc: Any, outgoing: LinkSpec, incoming: LinkSpec | None = None, seed: int = 0) -> list[Link]:
    """Send every datagram of ``pc``'s ICE connection through ``outgoing``, and receive through ``incoming``
    (the same spec when None). Call once the connection has gathered its candidates (after
    ``setLocalDescription``). Returns the links [outgoing, incoming] of each socket, for their counters.

    It reaches into aioice (the ICE connection's protocols and their transports): aiortc offers no hook
    between the socket and ICE. A test checks that it still finds them.
    """
    if pc.sctp is None:
        raise RuntimeError("shape_peer() needs the SCTP transport: create the data channels first")
    connection = pc.sctp.transport.transport.iceGatherer._connection
    protocols = list(getattr(connection, "_protocols", []))
    if not protocols:
        raise RuntimeError("the ICE connection has no sockets yet: shape it after setLocalDescription")
    loop = asyncio.get_running_loop()
    links: list[Link] = []
    for i, protocol in enumerate(protocols):
        out_link = Link(outgoing, seed + 2 * i)
        in_link = Link(incoming or outgoing, seed + 2 * i + 1)
        protocol.transport = _ShapedTransport(protocol.transport, out_link)
        receive = protocol.datagram_received

        def shaped(data: bytes, addr: Any, receive=receive, in_link=in_link) -> None:
            arrival = in_link.send(len(data), loop.time())
            if arrival is not None:
                loop.call_at(arrival, receive, data, addr)

        protocol.datagram_received = shaped
        links += [out_link, in_link]
    return links

"""The link emulator: its model of one direction, driven by a synthetic flow, and its hold on a real connection."""

import asyncio
import time

import pytest

from vsa.common import webrtc
from vsa.common.link import IP_UDP_BYTES, Link, LinkSpec, shape_peer


def _flow(link: Link, kbps: float, seconds: float, size: int = 1000) -> list[tuple[float, float | None]]:
    """Datagrams of ``size`` bytes at ``kbps`` for ``seconds``: (sent, arrived or None) each."""
    interval = size * 8 / (kbps * 1000)
    return [(i * interval, link.send(size, i * interval)) for i in range(int(seconds / interval))]


def test_the_link_holds_its_rate_delay_and_loss_within_ten_percent():
    spec = LinkSpec.parse("rate=100k,delay=40ms,jitter=5ms,loss=5%,queue=8k")
    link = Link(spec, seed=1)
    flow = _flow(link, kbps=200, seconds=20)  # twice what the link carries
    arrived = [(s, a) for s, a in flow if a is not None]
    carried_kbps = len(arrived) * (1000 + IP_UDP_BYTES) * 8 / 1000 / (arrived[-1][1] - arrived[0][1])
    assert carried_kbps == pytest.approx(100, rel=0.1)
    assert link.lost / link.sent == pytest.approx(0.05, rel=0.3)  # about 20 of 500: the 10% is on the rate
    assert link.dropped > 0 and link.queued_bytes(flow[-1][0]) <= 8 * 1024  # drop-tail, bounded
    # Below the rate nothing queues: each datagram takes its serialisation time (IP and UDP headers too) plus the
    # delay, give or take jitter.
    light = Link(LinkSpec.parse("rate=100k,delay=40ms,jitter=5ms"), seed=2)
    delays = [a - s for s, a in _flow(light, kbps=50, seconds=10)]
    serialise = (1000 + IP_UDP_BYTES) * 8 / 100_000
    assert min(delays) >= serialise + 0.035 - 1e-9 and max(delays) <= serialise + 0.045 + 1e-9
    assert sum(delays) / len(delays) == pytest.approx(serialise + 0.040, rel=0.1)
    # Jitter never reorders: arrivals keep the order datagrams were sent in.
    arrivals = [a for _, a in _flow(Link(spec, seed=3), kbps=50, seconds=5) if a is not None]
    assert arrivals == sorted(arrivals)


def test_a_rate_change_takes_effect_for_what_is_sent_after_it():
    link = Link(LinkSpec(rate_bps=300_000, queue_bytes=1 << 20))
    before = _flow(link, kbps=100, seconds=2)
    link.set_rate(60_000)
    late = [link.send(1000, 2.0 + i * 0.08) for i in range(50)]  # 100 kbps into 60
    assert all(a is not None for _, a in before)
    assert late[-1] - (2.0 + 49 * 0.08) > 1.0  # the queue grew by 40 kbps for 4 s: over a second of delay


@pytest.mark.parametrize("text, error", [("rate=fast", "bad link"), ("speed=1", "unknown link setting"),
                                         ("loss=200%", "loss in"), ("queue=10", "queue must hold")])
def test_bad_link_specs_are_one_line_errors(text, error):
    with pytest.raises(ValueError, match=error):
        LinkSpec.parse(text)


async def test_a_shaped_connection_carries_data_at_the_link_rate():
    """Two aiortc peers on loopback, one shaped at 60 kbps: a 120 kbps flow arrives at about 60, and late."""
    a, b = webrtc.make_peer(), webrtc.make_peer()
    channel = a.createDataChannel("media", ordered=False, maxRetransmits=0)
    got: list[float] = []
    b.on("datachannel", lambda dc: dc.on("message", lambda m: got.append(time.monotonic())))
    try:
        webrtc.bind_candidates(a, "127.0.0.1")
        await a.setLocalDescription(await a.createOffer())
        links = shape_peer(a, LinkSpec.parse("rate=60k,queue=256k"))
        await b.setRemoteDescription(a.localDescription)
        webrtc.bind_candidates(b, "127.0.0.1")
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        await webrtc.wait_open([channel], 10)
        start = time.monotonic()
        for _ in range(60):  # 1000 bytes every 66 ms: 120 kbps for 4 s
            channel.send(b"x" * 1000)
            await asyncio.sleep(0.066)
        deadline = time.monotonic() + 15
        while len(got) < 60 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert len(got) >= 55  # SCTP may abandon a few under its own timers
        kbps = (len(got) - 1) * 1000 * 8 / 1000 / (got[-1] - got[0])
        assert 45 < kbps < 70, kbps
        assert got[-1] - start > 6.0  # 4 s of data needed about 8 s of link
        assert any(link.sent for link in links)
    finally:
        await a.close()
        await b.close()

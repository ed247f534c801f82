"""The aiortc shell: signaling over TCP, peer connections and the two data channels.

Everything here moves bytes; what the bytes mean lives in `vsa.protocol`.

* Signaling: the receiver listens; the sender connects (with retries, since
  aiortc's ``TcpSocketSignaling`` has none), writes its offer as one JSON
  line (`vsa.protocol.signaling`) and reads the answer.
* ICE: no STUN server (``iceServers=[]``): vsa is meant for peers that can
  reach each other directly. ``bind`` restricts host candidates to one
  address; aioice leaves 127.0.0.1 out of its candidates otherwise, so
  loopback tests need it.
* Channels: ``control`` is reliable and ordered; ``media`` is unordered with
  ``maxRetransmits=0``, so a late frame is dropped instead of delaying the
  ones behind it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from vsa.protocol.errors import ProtocolError
from vsa.protocol.signaling import (
    MAX_SIGNAL_BYTES, NONCE_BYTES, OfferGuard, Signal, check_answer, decode_signal, encode_signal, make_answer,
    make_offer,
)

from .link import Link, LinkSpec, shape_peer

log = logging.getLogger("vsa.webrtc")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_ENV = "VSA_TOKEN"
CONTROL_LABEL = "control"
MEDIA_LABEL = "media"


class SignalingError(Exception):
    """The peers could not exchange offer and answer."""


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` or ``:PORT`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad port in {text!r}; expected HOST:PORT, e.g. 127.0.0.1:{DEFAULT_PORT}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_from_env(token: str | None) -> str | None:
    return token if token else os.environ.get(TOKEN_ENV) or None


def make_peer() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def bind_candidates(pc: RTCPeerConnection, address: str) -> None:
    """Gather host candidates on ``address`` only.

    Call after the data channels or tracks exist (offerer) or after the
    remote offer is set (answerer), and before ``setLocalDescription``, which gathers.
    aioice offers no per-connection switch, so this narrows the one
    connection's address list rather than patching the module.
    """
    if pc.sctp is not None:
        dtls = pc.sctp.transport
    elif pc.getTransceivers():  # a media-only connection (a browser viewer) has no SCTP transport
        dtls = pc.getTransceivers()[0].sender.transport
    else:
        raise RuntimeError("bind_candidates() needs a transport: create the data channels or tracks first")
    connection = dtls.transport.iceGatherer._connection
    original = connection.get_component_candidates

    async def only_bound(component: int, addresses: list[str], timeout: int = 5):
        return await original(component=component, addresses=[address], timeout=timeout)

    connection.get_component_candidates = only_bound


# -- signaling ---------------------------------------------------------------------------


async def _read_signal(reader: asyncio.StreamReader, timeout: float) -> Signal:
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout)
    except asyncio.TimeoutError:
        raise SignalingError(f"peer sent nothing for {timeout:g} s") from None
    except asyncio.LimitOverrunError:
        raise SignalingError(f"peer's signal exceeds {MAX_SIGNAL_BYTES} bytes") from None
    except asyncio.IncompleteReadError:
        raise SignalingError("peer closed the signaling connection") from None
    try:
        return decode_signal(line)
    except ProtocolError as exc:
        raise SignalingError(f"bad signal from peer: {exc}") from None


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nothing listens on now (for tools and tests that start a receiver on loopback)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


async def connect_and_offer(
    pc: RTCPeerConnection, host: str, port: int, token: str | None = None, timeout: float = 30.0,
    bind: str | None = None, link: LinkSpec | None = None,
) -> list[Link]:
    """Offer to the receiver at host:port and apply its answer, retrying the connection until ``timeout``.

    ``link``: send and receive every datagram of the connection through an emulated link (`vsa.common.link`);
    returns its `Link`s (outgoing, incoming for each socket), to read or to change their rate.
    """
    if bind:
        bind_candidates(pc, bind)
    await pc.setLocalDescription(await pc.createOffer())
    links = shape_peer(pc, link) if link is not None else []
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=MAX_SIGNAL_BYTES),
                                                    max(0.1, deadline - time.monotonic()))
            break
        except (OSError, asyncio.TimeoutError) as exc:
            if time.monotonic() + delay >= deadline:
                raise SignalingError(f"no receiver at {host}:{port} after {timeout:g} s ({exc})") from None
            log.info("no receiver at %s:%d yet; retrying in %.1f s", host, port, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        offer = make_offer(pc.localDescription.sdp, token, os.urandom(NONCE_BYTES), time.time())
        writer.write(encode_signal(offer))
        await writer.drain()
        answer = await _read_signal(reader, max(1.0, deadline - time.monotonic()))
    finally:
        writer.close()
    if answer.type == "error":
        raise SignalingError(f"receiver refused the connection: {answer.reason}")
    try:
        check_answer(answer, token, offer)
    except ProtocolError as exc:
        raise SignalingError(f"refused the receiver's answer: {exc}") from None
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
    return links


@dataclass
class Offer:
    signal: Signal
    peer: str
    _writer: asyncio.StreamWriter
    _token: str | None = None

    @property
    def sdp(self) -> str:
        return self.signal.sdp

    async def answer(self, pc: RTCPeerConnection, bind: str | None = None) -> None:
        """Apply this offer to ``pc`` and send the answer back (authenticated with the token, if there is one)."""
        await pc.setRemoteDescription(RTCSessionDescription(sdp=self.sdp, type="offer"))
        if bind:
            bind_candidates(pc, bind)
        await pc.setLocalDescription(await pc.createAnswer())
        self._writer.write(encode_signal(make_answer(pc.localDescription.sdp, self._token, self.signal)))
        await self._writer.drain()
        self._writer.close()

    def close(self) -> None:
        """Hang up on the offering peer without answering (after a failure)."""
        self._writer.close()


class SignalingServer:
    """Accepts offers on host:port; peers that cannot prove they hold the token are refused
    (`vsa.protocol.signaling.OfferGuard`: the token's HMAC, the clock, replays, repeated failures).

    Listening beyond loopback without a token is refused outright: anyone on
    the network could otherwise push a stream (and a model) at us.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None,
                 read_timeout: float = 10.0) -> None:
        if not is_loopback(host) and not token:
            raise SignalingError(
                f"listening on {host} needs a shared token: pass --token or set {TOKEN_ENV}"
            )
        self.host, self.port, self.token = host, port, token
        self.read_timeout = read_timeout
        self.refused = 0
        self._guard = OfferGuard(token)
        self._offers: asyncio.Queue[Offer] = asyncio.Queue(maxsize=4)
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_SIGNAL_BYTES)
        except OSError as exc:
            raise SignalingError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        peer = f"{host}:{port}"
        try:
            signal = await _read_signal(reader, self.read_timeout)
            try:
                self._guard.check(signal, host, time.time())
            except ProtocolError as exc:
                self.refused += 1
                log.warning("refused %s: %s", peer, exc)
                writer.write(encode_signal(Signal("error", reason=str(exc)[:200])))
                await writer.drain()
                writer.close()
                return
            self._offers.put_nowait(Offer(signal, peer, writer, self.token))
        except asyncio.QueueFull:
            writer.write(encode_signal(Signal("error", reason="receiver busy")))
            writer.close()
        except (SignalingError, OSError) as exc:
            log.warning("signaling with %s failed: %s", peer, exc)
            writer.close()

    async def next_offer(self, timeout: float | None = None) -> Offer:
        return await asyncio.wait_for(self._offers.get(), timeout)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def wait_open(channels: list[RTCDataChannel], timeout: float) -> None:
    """Wait until every channel is open, or raise SignalingError."""
    deadline = time.monotonic() + timeout
    while any(c.readyState != "open" for c in channels):
        if time.monotonic() > deadline:
            raise SignalingError(f"data channels did not open within {timeout:g} s (ICE failed?)")
        await asyncio.sleep(0.01)


async def wait_buffer_below(channel: RTCDataChannel, limit: int, timeout: float) -> None:
    """Back-pressure for bulk sends: wait while more than ``limit`` bytes are queued."""
    deadline = time.monotonic() + timeout
    while channel.bufferedAmount > limit:
        if channel.readyState != "open":
            raise ConnectionError("channel closed while sending")
        if time.monotonic() > deadline:
            raise TimeoutError(f"peer took no data for {timeout:g} s")
        await asyncio.sleep(0.002)


def install_uvloop() -> bool:
    """Use uvloop as the event loop when it is installed (it is faster for many small datagrams)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True

"""Signaling messages: the WebRTC offer and answer, as JSON lines, authenticated with a shared token.

The sender connects to the receiver over TCP and writes one line,
``{"type": "offer", "sdp": ..., "nonce": ..., "time": ..., "mac": ...}``;
the receiver answers with ``{"type": "answer", "sdp": ..., "mac": ...}`` or
``{"type": "error", "reason": ...}`` and closes the connection. The TCP
part lives in `vsa.common.webrtc`; this module builds, bounds and checks the
lines.

The token never goes on the wire. With a token, each side proves it holds
it with an HMAC-SHA256 over what it sends: the offer's MAC covers a fresh
random nonce, the sender's clock and the SDP; the answer's covers the
offer's nonce and the answer's SDP. So nobody on the path can learn the
token, swap either SDP, or replay an old offer (the receiver remembers the
nonces it has accepted within the clock window, and refuses an offer whose
time is off by more than `MAX_CLOCK_SKEW`), nor pass off an old answer as
the answer to a new offer. The SDPs then carry the DTLS fingerprints, which
secure the media. Without a token (loopback only) the lines carry no MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict, deque
from dataclasses import dataclass

from .errors import ProtocolError

MAX_SIGNAL_BYTES = 64 * 1024
"""Longest line a peer may send; an SDP for two data channels is about 1 KB."""
MAX_TOKEN = 256
SIGNAL_TYPES = ("offer", "answer", "error")
NONCE_BYTES = 16
MAC_BYTES = 32
MAX_CLOCK_SKEW = 120.0
"""Seconds an offer's time may differ from the receiver's clock (the two ends' clocks need only this much sync)."""
MAX_NONCES = 4096
"""Offer nonces a receiver remembers at most (within the clock window) to refuse replays."""
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
"""An address with `MAX_FAILURES` failed offers within `FAILURE_WINDOW` seconds is refused until the window passes."""


@dataclass(frozen=True)
class Signal:
    type: str
    sdp: str = ""
    reason: str = ""
    nonce: str = ""
    """Offers: 2 x `NONCE_BYTES` hex digits, fresh for each offer."""
    time: int = 0
    """Offers: the sender's clock, seconds since the epoch."""
    mac: str = ""
    """With a token: the HMAC-SHA256, hex, of what the signal says (`offer_mac`, `answer_mac`)."""


def _mac(token: str, *parts: str) -> str:
    return hmac.new(token.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def offer_mac(token: str, nonce: str, time: int, sdp: str) -> str:
    return _mac(token, "vsa-offer", nonce, str(time), sdp)


def answer_mac(token: str, offer_nonce: str, sdp: str) -> str:
    return _mac(token, "vsa-answer", offer_nonce, sdp)


def make_offer(sdp: str, token: str | None, nonce: bytes, now: float) -> Signal:
    """The offer line's content; ``nonce`` must be fresh random bytes (`NONCE_BYTES` of them)."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} bytes, not {len(nonce)}")
    time = int(now)
    mac = offer_mac(token, nonce.hex(), time, sdp) if token else ""
    return Signal("offer", sdp=sdp, nonce=nonce.hex(), time=time, mac=mac)


def make_answer(sdp: str, token: str | None, offer: Signal) -> Signal:
    return Signal("answer", sdp=sdp, mac=answer_mac(token, offer.nonce, sdp) if token else "")


def check_answer(answer: Signal, token: str | None, offer: Signal) -> None:
    """Raise ProtocolError unless ``answer`` answers ``offer`` and, with a token, proves it holds it."""
    if answer.type != "answer":
        raise ProtocolError(f"expected an answer, got {answer.type!r}")
    if token and not hmac.compare_digest(answer.mac, answer_mac(token, offer.nonce, answer.sdp)):
        raise ProtocolError("the answer is not authenticated with our token (wrong token, or altered on the way)")


class OfferGuard:
    """The receiver's checks on offers: the token's MAC, the clock, replays, and addresses that keep failing.

    Sans-I/O: every call takes the time (``now``, seconds since the epoch) from the caller.
    """

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._failures: dict[str, deque[float]] = {}

    def check(self, offer: Signal, address: str, now: float) -> None:
        """Raise ProtocolError (its message is what to tell the peer) unless ``offer`` is to be answered."""
        self._forget(now)
        failures = self._failures.get(address)
        if failures is not None and len(failures) >= MAX_FAILURES:
            raise ProtocolError(f"too many failed attempts from {address}; try again in {FAILURE_WINDOW:g} s")
        try:
            self._check(offer, now)
        except ProtocolError:
            self._failures.setdefault(address, deque(maxlen=MAX_FAILURES)).append(now)
            raise

    def _check(self, offer: Signal, now: float) -> None:
        if offer.type != "offer":
            raise ProtocolError(f"expected an offer, got {offer.type!r}")
        if len(offer.nonce) != 2 * NONCE_BYTES:
            raise ProtocolError("the offer has no nonce")
        if not self.token:
            return
        if not hmac.compare_digest(offer.mac, offer_mac(self.token, offer.nonce, offer.time, offer.sdp)):
            raise ProtocolError("wrong or missing token")
        if abs(now - offer.time) > MAX_CLOCK_SKEW:
            raise ProtocolError(f"the offer's time is {now - offer.time:+.0f} s off this receiver's clock "
                                f"(at most {MAX_CLOCK_SKEW:g} s): a replay, or a clock to set")
        if offer.nonce in self._nonces:
            raise ProtocolError("this offer was already used (a replay)")
        self._nonces[offer.nonce] = now
        while len(self._nonces) > MAX_NONCES:
            self._nonces.popitem(last=False)

    def _forget(self, now: float) -> None:
        # A nonce older than twice the skew cannot come back: its offer's time would be refused.
        while self._nonces and next(iter(self._nonces.values())) < now - 2 * MAX_CLOCK_SKEW:
            self._nonces.popitem(last=False)
        for address in [a for a, f in self._failures.items() if f and f[-1] < now - FAILURE_WINDOW]:
            del self._failures[address]


def encode_signal(signal: Signal) -> bytes:
    """One JSON line, newline included."""
    _check(signal)
    body: dict = {"type": signal.type}
    for key in ("sdp", "reason", "nonce", "time", "mac"):
        value = getattr(signal, key)
        if value:
            body[key] = value
    line = json.dumps(body, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_SIGNAL_BYTES:
        raise ProtocolError(f"signal of {len(line)} bytes exceeds {MAX_SIGNAL_BYTES}")
    return line


def decode_signal(line: bytes) -> Signal:
    """Parse one line from a peer; raise ProtocolError on anything unexpected."""
    if len(line) > MAX_SIGNAL_BYTES:
        raise ProtocolError(f"signal of {len(line)} bytes exceeds {MAX_SIGNAL_BYTES}")
    try:
        body = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"signal is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError("signal must be a JSON object")
    values = {}
    for key in ("type", "sdp", "reason", "nonce", "mac"):
        value = body.get(key, "")
        if not isinstance(value, str):
            raise ProtocolError(f"signal field {key!r} must be a string")
        values[key] = value
    time = body.get("time", 0)
    if not isinstance(time, int) or isinstance(time, bool) or not 0 <= time < 2**40:
        raise ProtocolError("signal field 'time' must be a whole number of seconds")
    values["time"] = time
    signal = Signal(**values)
    _check(signal)
    return signal


def _check(signal: Signal) -> None:
    if signal.type not in SIGNAL_TYPES:
        raise ProtocolError(f"unknown signal type {signal.type!r}")
    if signal.type in ("offer", "answer") and not signal.sdp.startswith("v=0"):
        raise ProtocolError(f"{signal.type} carries no SDP")
    if len(signal.nonce) > 2 * NONCE_BYTES or len(signal.mac) > 2 * MAC_BYTES:
        raise ProtocolError("signal nonce or mac too long")
    if len(signal.reason) > MAX_TOKEN:
        raise ProtocolError(f"reason longer than {MAX_TOKEN} characters")

"""Signaling messages: the WebRTC offer and answer, as JSON lines.

The sender connects to the receiver over TCP and writes one line,
``{"type": "offer", "sdp": ..., "token": ...}``; the receiver answers with
``{"type": "answer", "sdp": ...}`` or ``{"type": "error", "reason": ...}``
and closes the connection. The TCP part lives in `vsa.common.webrtc`; this
module only builds, bounds and checks the lines.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass

from .errors import ProtocolError

MAX_SIGNAL_BYTES = 64 * 1024
"""Longest line a peer may send; an SDP for two data channels is about 1 KB."""
MAX_TOKEN = 256
SIGNAL_TYPES = ("offer", "answer", "error")


@dataclass(frozen=True)
class Signal:
    type: str
    sdp: str = ""
    token: str = ""
    reason: str = ""


def encode_signal(signal: Signal) -> bytes:
    """One JSON line, newline included."""
    _check(signal)
    body = {"type": signal.type}
    if signal.sdp:
        body["sdp"] = signal.sdp
    if signal.token:
        body["token"] = signal.token
    if signal.reason:
        body["reason"] = signal.reason
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
    for key in ("type", "sdp", "token", "reason"):
        value = body.get(key, "")
        if not isinstance(value, str):
            raise ProtocolError(f"signal field {key!r} must be a string")
        values[key] = value
    signal = Signal(**values)
    _check(signal)
    return signal


def _check(signal: Signal) -> None:
    if signal.type not in SIGNAL_TYPES:
        raise ProtocolError(f"unknown signal type {signal.type!r}")
    if signal.type in ("offer", "answer") and not signal.sdp.startswith("v=0"):
        raise ProtocolError(f"{signal.type} carries no SDP")
    if len(signal.token) > MAX_TOKEN:
        raise ProtocolError(f"token longer than {MAX_TOKEN} characters")
    if len(signal.reason) > MAX_TOKEN:
        raise ProtocolError(f"reason longer than {MAX_TOKEN} characters")


def token_matches(expected: str | None, given: str) -> bool:
    """Constant-time token check; no expected token accepts any peer."""
    if not expected:
        return True
    return hmac.compare_digest(expected.encode(), given.encode())

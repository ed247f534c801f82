"""INR-V code payloads: one clip's instance code as the bytes of a frame message.

A stream whose hello says ``payload="inrv"`` carries, in each `Frame`, the
code of one clip of ``hello.stride`` frames starting at ``frame.pts``, and
``hello.codec`` names its format:

* ``f16``: the code as little-endian IEEE half floats, 2 bytes per value.
* ``i8``: a little-endian float32 scale, then one signed byte per value;
  value = byte * scale. Half the size of f16, at 1/254 of the code's range.

Decoding checks the exact length for the model's code size and refuses
non-finite or absurd values, so a hostile code can never poison the renderer.
Pure Python (``struct``): the protocol depends on nothing heavier.
"""

from __future__ import annotations

import math
import struct
from typing import Sequence

from .errors import ProtocolError

CODE_FORMATS = ("f16", "i8")
MAX_CODE_DIM = 4096
MAX_CODE_ABS = 1000.0
"""Trained codes sit near a standard Gaussian; anything this large is not a code."""


def code_size(fmt: str, dim: int) -> int:
    """Bytes of one code of ``dim`` values in ``fmt``."""
    if fmt not in CODE_FORMATS:
        raise ProtocolError(f"unknown code format {fmt!r}; expected one of {', '.join(CODE_FORMATS)}")
    if not 1 <= dim <= MAX_CODE_DIM:
        raise ProtocolError(f"code size {dim} is outside [1, {MAX_CODE_DIM}]")
    return 2 * dim if fmt == "f16" else 4 + dim


def pack_code(values: Sequence[float], fmt: str) -> bytes:
    """Quantise a code to ``fmt``; raises ProtocolError for non-finite or out-of-range values."""
    values = [float(v) for v in values]
    code_size(fmt, len(values))
    if not all(math.isfinite(v) and abs(v) <= MAX_CODE_ABS for v in values):
        raise ProtocolError(f"code holds a non-finite value or one beyond +-{MAX_CODE_ABS:g}")
    if fmt == "f16":
        return struct.pack(f"<{len(values)}e", *values)
    scale = max(abs(v) for v in values) / 127 or 1.0
    return struct.pack("<f", scale) + struct.pack(f"<{len(values)}b", *(max(-127, min(127, round(v / scale)))
                                                                      for v in values))


def unpack_code(payload: bytes, fmt: str, dim: int) -> list[float]:
    """The ``dim`` values of a code payload, validated; ProtocolError says what is wrong."""
    expected = code_size(fmt, dim)
    if len(payload) != expected:
        raise ProtocolError(f"{fmt} code payload has {len(payload)} bytes; a {dim}-value code has {expected}")
    if fmt == "f16":
        values = list(struct.unpack(f"<{dim}e", payload))
    else:
        (scale,) = struct.unpack("<f", payload[:4])
        if not math.isfinite(scale) or not 0 < scale <= MAX_CODE_ABS / 127:
            raise ProtocolError(f"i8 code scale {scale!r} is not a positive finite number within range")
        values = [b * scale for b in struct.unpack(f"<{dim}b", payload[4:])]
    if not all(math.isfinite(v) and abs(v) <= MAX_CODE_ABS for v in values):
        raise ProtocolError("code holds NaN, infinity, or a value beyond +-1000")
    return values

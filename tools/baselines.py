"""The classic codecs vsa is judged against, run through PyAV.

Each baseline is a real encode and decode of the full-size frames at a target
bitrate (the encoder's own rate control), in 4:2:0 as deployed. The bytes
counted are the packets the encoder produced, nothing estimated.

* ``x264-zerolatency``: libx264 ``veryfast`` + ``tune=zerolatency``, what a
  real-time sender uses (no B-frames, no look-ahead).
* ``x264-medium``: libx264 ``medium``, the offline default.
* ``vp8`` and ``vp9``: libvpx in ``deadline=realtime`` mode, no lag.
* ``av1``: SVT-AV1 preset 10, decoded with dav1d (PyAV wheels carry no libaom).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np


@dataclass(frozen=True)
class Baseline:
    name: str
    encoder: str
    decoder: str
    options: dict[str, str] = field(default_factory=dict)


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("x264-zerolatency", "libx264", "h264", {"preset": "veryfast", "tune": "zerolatency"}),
        Baseline("x264-medium", "libx264", "h264", {"preset": "medium"}),
        Baseline("vp8", "libvpx", "vp8", {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}),
        Baseline("vp9", "libvpx-vp9", "vp9",
                 {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "row-mt": "1"}),
        Baseline("av1", "libsvtav1", "libdav1d", {"preset": "10"}),
    )
}


@dataclass
class CodedClip:
    """One baseline operating point: what came out of the decoder and what it cost."""

    frames: np.ndarray  # (N, H, W, 3) uint8, decoded
    packets: list[bytes]
    encode_s: float
    decode_s: float

    @property
    def num_bytes(self) -> int:
        return sum(len(p) for p in self.packets)


def _context(baseline: Baseline, width: int, height: int, fps: float, kbps: float) -> av.CodecContext:
    ctx = av.CodecContext.create(baseline.encoder, "w")
    ctx.width, ctx.height = width, height
    ctx.pix_fmt = "yuv420p"
    rate = Fraction(fps).limit_denominator(1001)
    ctx.framerate = rate
    ctx.time_base = 1 / rate
    ctx.bit_rate = int(kbps * 1000)
    ctx.options = dict(baseline.options)
    return ctx


def run_baseline(name: str, frames: np.ndarray, fps: float, kbps: float) -> CodedClip:
    """Encode ``frames`` (N, H, W, 3 uint8) with baseline ``name`` at ``kbps``, then decode them."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    baseline = BASELINES[name]
    n, height, width, _ = frames.shape
    # SVT-AV1 prints its whole configuration to stderr unless told to keep to errors.
    os.environ.setdefault("SVT_LOG", "1")
    ctx = _context(baseline, width, height, fps, kbps)
    packets: list[bytes] = []
    start = time.perf_counter()
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in ctx.encode(frame)]
    packets += [bytes(p) for p in ctx.encode(None)]
    encode_s = time.perf_counter() - start

    decoder = av.CodecContext.create(baseline.decoder, "r")
    out: list[np.ndarray] = []
    start = time.perf_counter()
    for payload in packets:
        out += [f.to_ndarray(format="rgb24") for f in decoder.decode(av.Packet(payload))]
    out += [f.to_ndarray(format="rgb24") for f in decoder.decode(None)]
    decode_s = time.perf_counter() - start
    if len(out) != n:
        raise RuntimeError(f"{name}: {n} frames in, {len(out)} decoded")
    return CodedClip(np.stack(out), packets, encode_s, decode_s)

"""Hostile streams and files: each is refused or plays, and the receiver's memory stays bounded.

Each case runs the real command (`vsa decode`, `vrecv`) in a subprocess that
reports its own peak RSS, so the bound is measured, not assumed. Before these
bounds, the model blob asked for 62 GB, the pts and frame_count cases for a
loop of 10^9 and 2^53 output frames.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys

import msgpack
import numpy as np
import pytest
import zstandard

from vsa.common import bases
from vsa.common.framecodec import FrameEncoder
from vsa.protocol.container import file_header, record
from vsa.protocol.errors import ProtocolError
from vsa.protocol.messages import MAX_PTS_STEP, MAX_TEXT, Bye, Frame, Hello, ModelChunk, decode, encode

PEAK_RSS_LIMIT_MB = 1500
"""A receiver that imports torch and decodes a small stream peaks at a few hundred MB."""

_RUN = """
import resource, sys
from vsa.receiver.cli import main as vrecv
from vsa.tools.cli import main as vsa
try:
    code = {command}({argv!r})
except SystemExit as exc:
    code = exc.code
print("peak_rss_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def _run(command: str, argv: list[str]) -> tuple[int, str, float]:
    """(exit code, stderr, peak RSS in MB) of ``command`` (vsa or vrecv) run with ``argv`` in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", _RUN.format(command=command, argv=argv)], capture_output=True,
                          text=True, timeout=300)
    peak = [line for line in proc.stderr.splitlines() if line.startswith("peak_rss_kb")]
    assert peak, proc.stderr[-2000:]
    return proc.returncode, proc.stderr, int(peak[-1].split()[1]) / 1024


def _h264_frames(count: int, size: int = 16) -> list[bytes]:
    """``count`` real h264 4:4:4 payloads of a ``size``-square low-res frame (the first one a keyframe)."""
    encoder = FrameEncoder("h264", size, size, keyint=count + 1)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(count)]
    packets = [p for f in frames for p in encoder.encode(f)] + encoder.flush()
    return [p.payload for p in packets]


def _base_hello(**fields) -> Hello:
    """A 64x64 stream at scale 4 with the shipped base: no model in the file."""
    asset = bases.BASES[bases.DEFAULT_BASE]
    wire = bases.read_asset(asset)
    values = dict(width=64, height=64, fps=30.0, scale=4, stride=1, codec="h264", payload="frames",
                  model_sha256=hashlib.sha256(wire).digest(), model_size=len(wire), frame_count=2, crf=20)
    values.update(fields)
    return Hello(**values)


def _write(path, messages) -> str:
    with open(path, "wb") as f:
        f.write(file_header() + b"".join(record(m) for m in messages))
    return str(path)


def test_a_tiny_model_blob_naming_a_62_gb_network_is_refused_with_bounded_memory(tmp_path):
    config = {"code_dim": 64, "width": 1024, "depth": 8, "hyper_width": 2048, "xy_freqs": 7, "t_freqs": 4,
              "clip_frames": 16}
    head = zstandard.ZstdCompressor().compress(
        msgpack.packb({"kind": "inrv", "config": config, "meta": {}, "tensors": []}, use_bin_type=True))
    blob = b"VSAW\x02" + struct.pack(">I", len(head)) + head + zstandard.ZstdCompressor().compress(b"")
    assert len(blob) < 300
    hello = Hello(width=64, height=64, fps=30.0, scale=1, stride=16, codec="f16", payload="codes",
                  model_sha256=hashlib.sha256(blob).digest(), model_size=len(blob), frame_count=16)
    path = _write(tmp_path / "blob.vsa", [hello, ModelChunk(0, len(blob), hello.model_sha256, blob),
                                          Frame(0, 0, True, b"\x00" * 128), Bye(1)])
    code, err, peak_mb = _run("vsa", ["decode", path])
    assert code == 2 and "parameters; vsa accepts at most" in err, err[-1000:]
    assert peak_mb < PEAK_RSS_LIMIT_MB


def test_a_pts_jump_of_a_billion_frames_is_refused_with_bounded_memory(tmp_path):
    first, second = _h264_frames(2)
    path = _write(tmp_path / "pts.vsa", [_base_hello(frame_count=0), Frame(0, 0, True, first),
                                         Frame(1, 10**9, False, second), Bye(2)])
    code, err, peak_mb = _run("vsa", ["decode", path, "-o", str(tmp_path / "out.mkv")])
    assert code == 2 and f"jumps more than {MAX_PTS_STEP} frames" in err, err[-1000:]
    assert peak_mb < PEAK_RSS_LIMIT_MB


def test_a_frame_count_of_2_to_the_53_plays_with_a_bounded_tail(tmp_path):
    (payload,) = _h264_frames(1)
    path = _write(tmp_path / "count.vsa", [_base_hello(frame_count=2**53), Frame(0, 0, True, payload), Bye(1)])
    out = tmp_path / "out.mkv"
    code, err, peak_mb = _run("vsa", ["decode", path, "-o", str(out), "--json", str(tmp_path / "r.json")])
    assert code == 0, err[-1000:]
    import json

    frames = json.loads((tmp_path / "r.json").read_text())["frames"]
    assert frames == 1 + MAX_PTS_STEP  # the one sent frame, then held no further than a frame may jump
    assert peak_mb < PEAK_RSS_LIMIT_MB


def test_vrecv_refuses_65_passes_in_one_line():
    code, err, peak_mb = _run("vrecv", ["--iterations", "65"])
    assert code == 2 and "choose 1 to 8" in err, err[-1000:]
    assert peak_mb < PEAK_RSS_LIMIT_MB


def test_a_long_non_ascii_source_name_makes_a_hello_every_receiver_accepts(clip_path, tmp_path):
    """msgpack bounds strings in UTF-8 bytes: a sender cuts the name to bytes, never inside a character."""
    from vsa.sender.shipment import load_model
    from vsa.sender.stream import StreamEncoder, StreamSettings

    name = "会議の録画" * 40 + ".mp4"  # 200 characters, 600 bytes
    _, shipment = load_model(None)
    encoder = StreamEncoder(shipment, (64, 64), 30.0, StreamSettings(), source=name)
    hello = decode(encode(encoder.start()[0]))
    assert isinstance(hello, Hello)
    assert name.startswith(hello.source) and 0 < len(hello.source.encode()) <= MAX_TEXT
    # A peer that does not cut it is refused with a protocol error, not a crash.
    raw = msgpack.packb({"v": 1, "t": "bye", "frames": 0, "reason": name}, use_bin_type=True)
    with pytest.raises(ProtocolError):
        decode(raw)

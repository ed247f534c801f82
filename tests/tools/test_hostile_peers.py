"""`vsa hostile`: hostile peers holding the token against one `vrecv --sessions 0`, then an honest stream."""

import json
import sys

import pytest

from vsa.tools.cli import main as vsa_main

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="vsa hostile reads /proc (Linux)")]


def test_hostile_peers_are_refused_with_bounded_memory_and_an_honest_stream_then_plays(tmp_path):
    out = tmp_path / "hostile.json"
    assert vsa_main(["hostile", "--frames", "30", "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    said = {a["attack"]: a["receiver_said"] for a in result["attacks"]}
    assert all(a["server_alive"] for a in result["attacks"])
    assert "jumps more than 1024 frames" in said["a frame with pts 10^9"]
    assert "vsa accepts at most 40,000,000" in said["a 264-byte blob naming a 15-billion-parameter model"]
    assert "already used (a replay)" in said["an offer replayed"]
    assert "sent nothing for 10 s" in said["signaling at one byte a second"]
    # No attack left the receiver holding much more than it started with (a 62 GB allocation once).
    assert result["receiver_rss_end_mb"] < result["receiver_rss_start_mb"] + 300
    honest = result["honest"]
    assert honest["frames_received"] == honest["frames_sent"] >= 15 and honest["ended"] == "normally"

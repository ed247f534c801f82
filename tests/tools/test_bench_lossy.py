"""`vsa bench lossy`: the closing summaries it reads, and one short run of the row as two real processes."""

import json

import pytest

from vsa.tools.bench_lossy import parse_receiver, parse_sender, summarise
from vsa.tools.cli import main as vsa_main

RECEIVER = ("20:28:51 vsa.recv: session ended\n"
            "595 frames (249 sent, 301 interpolated, 45 concealed); 4 lost in transit, 0 bad messages; 14 repaired "
            "by retransmission (25 requests)\n"
            "media 17.7 kbps, model from cache\n"
            "latency median 118 ms, p95 380 ms; longest display gap 1061 ms; 252 frames shown late\n")
SENDER = ("20:28:50 vsa.send: media 20.0 kbps, control 0.0 kbps | 30.0 fps captured | 264 sent, 3 keyframe requests\n"
          "600 frames captured, 264 sent (292 datagrams, 0 dropped by --simulate-loss); media 20.0 kbps; model cached "
          "at the receiver; 3 keyframe requests; target 23.3-50 kbps, 34 frames skipped to keep to it\n")


def test_the_summaries_are_read_as_the_processes_print_them():
    assert parse_receiver(RECEIVER) == {
        "frames": 595, "concealed": 45, "lost": 4, "repaired": 14, "latency_median_ms": 118, "latency_p95_ms": 380,
        "longest_gap_ms": 1061, "shown_late": 252}
    assert parse_sender(SENDER) == {"sent": 264, "media_kbps": 20.0, "lowest_target_kbps": 23.3}
    with pytest.raises(ValueError, match="summary"):
        parse_receiver("20:28:51 vsa.recv: listening on 127.0.0.1:8907\n")
    runs = [dict(parse_receiver(RECEIVER)), dict(parse_receiver(RECEIVER), latency_median_ms=170), {"error": "x"}]
    s = summarise(runs)
    assert s["finished"] == 2 and s["latency_medians_ms"] == [118, 170] and s["under_goal"] == 1


def test_one_short_run_of_the_row_is_measured(tmp_path):
    out = tmp_path / "lossy.json"
    assert vsa_main(["bench", "lossy", "--runs", "1", "--limit", "60", "--baseline-recv-args", "", "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    (run,) = result["runs"]["measured"]
    assert run["exit_codes"] == {"vrecv": 0, "vsend": 0}
    assert run["frames"] > 40 and run["latency_median_ms"] > 0 and run["sent"] > 10
    assert result["summary"]["measured"]["finished"] == 1 and (tmp_path / "lossy_measured_1.vrecv.log").exists()

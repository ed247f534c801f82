"""The bandwidth-trace benchmark's bookkeeping: the trace, and what it reads off a run."""

from types import SimpleNamespace

import numpy as np
import pytest

from vsa.receiver.live import SessionReport
from vsa.tools.bench_trace import parse_trace, summarise


def test_a_trace_is_rates_and_durations():
    assert parse_trace("300k:15,60k:15, 300k:15") == [(300_000, 15.0), (60_000, 15.0), (300_000, 15.0)]
    for bad in ("300k", "300k:x", "0:5", "100k:-1", ""):
        with pytest.raises(ValueError):
            parse_trace(bad)


def test_the_summary_times_the_fall_below_the_link_and_the_climb_back():
    trace = parse_trace("300k:5,60k:5,300k:10")
    # The sender sent 200 kbps, fell below 60 two seconds after the drop, and was back over 240 six seconds
    # after the rise.
    sent = [200] * 5 + [150, 50, 50, 50, 50] + [60, 80, 120, 160, 200, 250, 250, 250, 250, 250]
    report = SimpleNamespace(sent_kbps=[(1.0 + i, k) for i, k in enumerate(sent)], targets=[], receiver_stats=[],
                             skipped_budget=0, skipped_for_keyframe=0, keyframe_requests=0, media_bytes=0, drains=[],
                             seconds=20.0)
    receiver = SessionReport(frames=600, latencies_ms=[80.0] * 600, display_gaps_ms=[33.0] * 599)
    psnr = np.concatenate([np.full(150, 30.0), np.full(150, 25.0), np.full(300, 29.0)])
    figures = summarise({"sender": SimpleNamespace(report=report), "receiver": receiver, "marks": [0.0, 5.0, 10.0]},
                        trace, psnr, 30.0)
    drop, rise = figures["events"]
    assert drop["below_link_after_s"] == 2.0
    assert rise["within_20pct_after_s"] == 6.0
    # And back within 20% of the 200 kbps it sent before the drop, over 3 s, from 3 s after the rise.
    assert rise["before_kbps"] == 200.0 and rise["back_within_20pct_after_s"] == 3.0
    assert [s["psnr"] for s in figures["segments"]] == [30.0, 25.0, 29.0]
    assert figures["latency_p95_ms"] == 80.0 and figures["longest_gap_ms"] == 33.0

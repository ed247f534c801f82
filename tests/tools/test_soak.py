"""`vsa bench soak`, short: two real processes on loopback, sampled from /proc, figures written."""

import json
import sys

import pytest

from vsa.tools.cli import main as vsa_main

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="vsa bench soak reads /proc (Linux)")


def test_a_short_soak_streams_without_loss_and_reports_each_process(tmp_path):
    out = tmp_path / "soak.json"
    assert vsa_main(["bench", "soak", "--minutes", "0.2", "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["exit_codes"] == {"vrecv": 0, "vsend": 0}
    stream = result["stream"]
    assert stream["sent"] == stream["received"] > 100 and stream["lost"] == 0
    for name in ("vrecv", "vsend"):
        r = result[name]
        assert r["samples"] >= 3 and 50 < r["rss_warm_mb"] < 4000 and r["fds_warm"] >= 3 and r["threads_warm"] >= 2
    assert (tmp_path / "soak_vrecv.log").exists()

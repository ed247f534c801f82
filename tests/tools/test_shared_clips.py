"""The codec on more real clips from ../shared/data/videos (skipped where that folder is absent)."""

import json

import pytest

from vsa.tools.cli import main

pytestmark = pytest.mark.shared


@pytest.mark.parametrize("name", ["street_pedestrians_static.mp4", "talking_head_indoor_woman.mp4"])
def test_reprojection_beats_bicubic_at_scale_8(name, tmp_path, shared_video):
    video = str(shared_video(name))
    model, clip, report = tmp_path / "ae.pt", tmp_path / "c.vsa", tmp_path / "r.json"
    assert main(["train", video, "-o", str(model), "--size", "128x192", "--limit", "60", "--steps", "250",
                 "--device", "cpu"]) == 0
    assert main(["encode", video, "--model", str(model), "-o", str(clip), "--scale", "8", "--limit", "60"]) == 0
    assert main(["decode", str(clip), "--reference", video, "--json", str(report), "--device", "cpu"]) == 0
    m = json.loads(report.read_text())["metrics"]["all"]
    assert m["vsa_psnr"] > m["bicubic_psnr"] + 1.0, m

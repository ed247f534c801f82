"""Train on a real clip for well under a minute, encode, decode: reprojection must beat bicubic."""

import json

import numpy as np
import pytest

from vsa.common.video import read_video
from vsa.tools.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tmp_path_factory, clip_path):
    path = tmp_path_factory.mktemp("e2e") / "ae.pt"
    assert main(["train", clip_path, "-o", str(path), "--size", "128x192", "--steps", "500", "--seed", "0",
                 "--device", "cpu"]) == 0
    return path


@pytest.mark.parametrize("scale, stride", [(4, 1), (8, 2)])
def test_reprojection_beats_bicubic_on_the_bundled_clip(model, clip_path, tmp_path, scale, stride):
    vsa_file, out, report = tmp_path / "c.vsa", tmp_path / "out.mp4", tmp_path / "r.json"
    assert main(["encode", clip_path, "--model", str(model), "-o", str(vsa_file), "--scale", str(scale),
                 "--stride", str(stride)]) == 0
    assert main(["decode", str(vsa_file), "-o", str(out), "--reference", clip_path, "--json", str(report),
                 "--device", "cpu"]) == 0
    metrics = json.loads(report.read_text())["metrics"]
    sent = metrics["sent"]
    assert sent["vsa_psnr"] > sent["bicubic_psnr"] + 1.0, metrics
    assert sent["vsa_ssim"] > sent["bicubic_ssim"], metrics
    if stride > 1:
        # Interpolated frames come from latent codes alone; they must stay close to the sent ones.
        assert metrics["interpolated"]["vsa_psnr"] > sent["vsa_psnr"] - 3.0, metrics
    frames, _, _ = read_video(str(out))
    assert frames.shape == (109, 128, 192, 3) and frames.std() > 10


def test_demo_writes_a_side_by_side_video(tmp_path, capsys):
    assert main(["demo", "--minutes", "0.15", "--out-dir", str(tmp_path), "--size", "128x192", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "vsa" in text and "bicubic" in text and "kbps" in text
    frames, _, _ = read_video(str(tmp_path / "side_by_side.mp4"))
    assert frames.shape == (109, 128, 768, 3)
    assert "held-out" in text and "base alone" in text and "fine-tuned" in text
    # The four panels of a held-out frame differ: original, bicubic, the base alone, fine-tuned.
    panels = [frames[100, :, i * 192 : (i + 1) * 192].astype(int) for i in range(4)]
    assert all(np.abs(panels[i] - panels[j]).mean() > 0.2 for i in range(4) for j in range(i + 1, 4))


def test_a_held_out_tail_beats_bicubic_after_a_short_fine_tune_from_the_base(clip_path, tmp_path, capsys):
    """The case a camera is in: frames no model saw. Fine-tuned on the first 70%, scored on the last 30%."""
    model, stream, report = tmp_path / "sr.pt", tmp_path / "t.vsa", tmp_path / "r.json"
    assert main(["train", clip_path, "--base", "-o", str(model), "--size", "128x192", "--steps", "150",
                 "--holdout-tail", "0.3", "--device", "cpu"]) == 0
    assert "delta" in capsys.readouterr().out  # what ships is a delta against the shipped base
    assert main(["encode", clip_path, "--model", str(model), "-o", str(stream)]) == 0
    assert main(["decode", str(stream), "--reference", clip_path, "--score-frames", "76:109", "--json", str(report),
                 "--device", "cpu"]) == 0
    held_out = json.loads(report.read_text())["metrics"]["all"]
    assert held_out["frames"] == 33
    assert held_out["vsa_psnr"] > held_out["bicubic_psnr"] + 1.0, held_out

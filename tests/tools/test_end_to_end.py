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
    assert frames.shape == (109, 128, 576, 3)
    # The three panels differ: original, bicubic, vsa.
    a, b, c = frames[50, :, :192].astype(int), frames[50, :, 192:384].astype(int), frames[50, :, 384:].astype(int)
    assert np.abs(a - b).mean() > 1 and np.abs(b - c).mean() > 1

"""`vsa compare`: a received video scored against its source."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vsa.common.video import VideoWriter
from vsa.tools.cli import main as vsa_main
from vsa.tools.compare import compare


def _write(path, frames, fps):
    writer = VideoWriter(str(path), frames.shape[2], frames.shape[1], fps)
    for f in frames:
        writer.write(f)
    writer.close()


def test_scores_a_copy_high_and_a_damaged_copy_lower(tmp_path, small_frames, clip_path):
    copy, damaged = tmp_path / "copy.mp4", tmp_path / "damaged.mp4"
    _write(copy, small_frames, 30)
    noisy = small_frames.astype(int) + np.random.default_rng(0).integers(-40, 41, small_frames.shape)
    _write(damaged, np.clip(noisy, 0, 255).astype(np.uint8), 30)
    good, bad = compare(str(copy), clip_path), compare(str(damaged), clip_path)
    assert good.frames == len(small_frames) and good.size == small_frames.shape[1:3]
    assert good.psnr > 35 and bad.psnr < good.psnr - 8 and bad.ssim < good.ssim


def test_an_output_at_twice_the_frame_rate_is_scored_on_source_frames(tmp_path, small_frames, clip_path):
    doubled = tmp_path / "x2.mp4"
    _write(doubled, np.repeat(small_frames, 2, axis=0), 60)
    single = tmp_path / "x1.mp4"
    _write(single, small_frames, 30)
    out = tmp_path / "r.json"
    assert vsa_main(["compare", str(doubled), clip_path, "--frames", "2:6", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["frames"] == 4 and data["first"] == 2
    assert data["psnr"] == pytest.approx(compare(str(single), clip_path, (2, 6)).psnr, abs=0.5)


def test_a_frame_rate_that_is_not_a_multiple_is_refused(tmp_path, small_frames, clip_path, capsys):
    odd = tmp_path / "odd.mp4"
    _write(odd, small_frames, 45)
    assert vsa_main(["compare", str(odd), clip_path]) == 2
    assert "whole multiple" in capsys.readouterr().err

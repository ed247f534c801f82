"""`vsa pretrain`: one process, and two under torchrun that end with the same weights."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from vsa.common import bundle as bundle_mod

pytestmark = pytest.mark.slow


def test_pretrain_writes_a_base_that_fine_tuning_can_start_from(clip_path, tmp_path):
    out = tmp_path / "base.pt"
    result = subprocess.run([sys.executable, "-m", "vsa.tools.cli", "pretrain", clip_path, "-o", str(out),
                             "--steps", "12", "--limit", "16", "--scales", "4,8", "--crfs", "20"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    base = bundle_mod.load(str(out))
    assert base.kind == "sr" and base.config.scales == (4, 8) and base.meta["steps"] == 12
    wire = (tmp_path / "base.vsam").read_bytes()
    assert bundle_mod.from_wire(wire).config == base.config
    assert bundle_mod.sha256(wire).hex() in result.stdout


def test_two_processes_under_torchrun_share_the_clips_and_end_with_the_same_weights(clip_path, tmp_path):
    """DistributedDataParallel on gloo: each rank reads its own clip, and both finish with equal weights."""
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun is not None, "torchrun comes with torch"
    second = tmp_path / "second.mp4"
    shutil.copy(clip_path, second)  # two clips, one per rank
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "vsa.tools.cli",
                             "pretrain", clip_path, str(second), "-o", str(tmp_path / "base.pt"), "--steps", "8",
                             "--limit", "12", "--scales", "4", "--crfs", "20"],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    shards = dict(re.findall(r"rank (\d)/2: 1 clips \((\S+)\)", result.stderr))
    assert shards == {"0": "person_signing_webcam.mp4", "1": "second.mp4"}, result.stderr[-2000:]
    digests = dict(re.findall(r"rank (\d)/2: 8 steps, weights sha256 ([0-9a-f]{64})", result.stderr))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], result.stderr[-2000:]
    assert bundle_mod.load(str(tmp_path / "base.pt")).meta["processes"] == 2

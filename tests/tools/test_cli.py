"""The command line: clear errors with exit status 2 for bad input, and the file mode round trip."""

import json
import os
import subprocess
import sys

import pytest
import torch

from vsa.tools.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "vsa.tools.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_help_explains_every_command():
    for command in ["train", "encode", "decode", "demo"]:
        result = run(command, "--help")
        assert result.returncode == 0 and "usage: vsa " + command in result.stdout


def test_missing_video_is_a_clear_error(tmp_path):
    result = run("train", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "ae.pt"), "--steps", "1")
    assert result.returncode == 2
    assert "video file not found" in result.stderr and "Traceback" not in result.stderr


def test_absent_camera_is_a_clear_error(tmp_path):
    result = run("train", "camera97", "-o", str(tmp_path / "ae.pt"), "--steps", "1")
    assert result.returncode == 2 and "camera 'camera97' not found" in result.stderr


def test_pickle_bearing_model_is_refused(tmp_path, clip_path):
    evil = tmp_path / "evil.pt"
    torch.save({"x": subprocess.Popen}, evil)
    result = run("encode", clip_path, "--model", str(evil), "-o", str(tmp_path / "x.vsa"))
    assert result.returncode == 2 and "not a safe vsa model" in result.stderr


def test_corrupt_model_bytes_are_refused(tmp_path, clip_path, trained_bundle):
    data = bytearray(open(trained_bundle[0], "rb").read())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(data))
    result = run("encode", clip_path, "--model", str(bad), "-o", str(tmp_path / "x.vsa"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "torch checkpoint" in result.stderr or "weights" in result.stderr


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, clip_path, trained_bundle):
    out = tmp_path_factory.mktemp("enc") / "clip.vsa"
    code = main(["encode", clip_path, "--model", trained_bundle[0], "-o", str(out), "--limit", "24",
                 "--stride", "2", "--codec", "h264"])
    assert code == 0
    return out


def test_encode_decode_round_trip_reports_bitrates_and_metrics(encoded, clip_path, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    report = tmp_path / "report.json"
    code = main(["decode", str(encoded), "-o", str(out), "--reference", clip_path, "--json", str(report),
                 "--device", "cpu"])
    text = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert "payload:" in text and "with model:" in text and "vsa_psnr" in text
    data = json.loads(report.read_text())
    assert data["frames"] == 24 and data["counts"] == {"sent": 13, "interpolated": 11, "concealed": 0, "held": 0}
    assert data["file_bytes"] == os.path.getsize(encoded) > data["model_bytes"] > data["payload_bytes"] > 0
    assert 10 < data["metrics"]["all"]["vsa_psnr"] < 60


def test_truncated_file_decodes_what_is_intact_then_errors(encoded, tmp_path):
    data = encoded.read_bytes()
    # Record boundaries (length and CRC words, then the body): cut in the middle of the fourth record from the end.
    starts, at = [], 8
    while at < len(data):
        starts.append(at)
        at += 8 + int.from_bytes(data[at : at + 4], "big")
    cut = tmp_path / "cut.vsa"
    cut.write_bytes(data[: starts[-4] + 20])
    out = tmp_path / "cut.mp4"
    result = run("decode", str(cut), "-o", str(out), "--device", "cpu")
    assert result.returncode == 2 and "damaged" in result.stderr and "Traceback" not in result.stderr
    assert out.exists()
    frames = int(result.stdout.split(" frames")[0].split()[-1])
    assert 10 < frames < 24


def test_corrupted_file_stops_at_the_damage(encoded, tmp_path):
    data = bytearray(encoded.read_bytes())
    data[-300] ^= 0x55
    bad = tmp_path / "bad.vsa"
    bad.write_bytes(bytes(data))
    result = run("decode", str(bad), "--device", "cpu")
    assert result.returncode == 2 and "CRC" in result.stderr


def test_not_a_vsa_file(tmp_path, clip_path):
    result = run("decode", clip_path)
    assert result.returncode == 2 and "not a .vsa file" in result.stderr


def test_streaming_commands_explain_themselves():
    for module, needle in [("vsa.sender.cli", "--connect HOST:PORT"), ("vsa.receiver.cli", "--listen HOST:PORT")]:
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and needle in result.stdout
    result = subprocess.run([sys.executable, "-m", "vsa.sender.cli", "--model", "missing.pt", "x.mp4"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "missing.pt" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_optional_package_is_one_line_naming_the_extra(monkeypatch, capsys):
    """`vsa eval` without the eval extra says what to install, before any work, instead of a traceback."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bjontegaard" else real(name, *a))
    assert main(["eval", "whatever.mp4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "vsa eval: error: vsa eval needs bjontegaard: pip install 'vsa[eval]'"
    assert main(["bench", "codecs", "--curves"]) == 2
    assert "pip install 'vsa[eval]'" in capsys.readouterr().err


def test_vrecv_on_time_is_a_bounded_percentage(capsys):
    from vsa.receiver.cli import build_parser
    from vsa.receiver.playout import ON_TIME

    assert build_parser().parse_args([]).on_time == round(ON_TIME * 100)
    assert build_parser().parse_args(["--on-time", "90"]).on_time == 90
    for bad in ("30", "101", "0.9"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--on-time", bad])
        assert "--on-time" in capsys.readouterr().err

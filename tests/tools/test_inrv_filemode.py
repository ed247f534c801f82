"""INR-V in file mode: `vsa encode --payload inrv` and `vsa decode` at any size and frame rate."""

from __future__ import annotations

import json

import pytest

from vsa.protocol.codes import pack_code
from vsa.protocol.container import ContainerReader, file_header, record
from vsa.protocol.messages import Frame
from vsa.tools.cli import main as vsa_main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, inrv_bundle, clip_path):
    out = tmp_path_factory.mktemp("inrv-file") / "clip.vsa"
    model, _ = inrv_bundle
    assert vsa_main(["encode", clip_path, "--model", model, "--payload", "inrv", "--limit", "40",
                     "-o", str(out)]) == 0
    return out


def _messages(path):
    reader = ContainerReader()
    reader.feed(path.read_bytes())
    out = []
    while (msg := reader.next_message()) is not None:
        out.append(msg)
    return out


def test_one_small_code_per_clip_well_under_5_kbps(encoded, capsys):
    frames = [m for m in _messages(encoded) if isinstance(m, Frame)]
    assert [f.pts for f in frames] == [0, 16, 32]
    assert all(len(f.payload) == 32 for f in frames)  # 16 values in f16
    payload_bits = sum(len(record(f)) for f in frames) * 8
    assert payload_bits / (40 / 30) / 1000 < 5.0


def test_decode_at_the_training_size_reports_psnr(encoded, tmp_path, clip_path, inrv_bundle):
    report = tmp_path / "r.json"
    assert vsa_main(["decode", str(encoded), "-o", str(tmp_path / "o.mp4"), "--reference", clip_path,
                     "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["frames"] == 40
    # Rendered from the learned codes: close to what training measured, far above a blank guess.
    assert data["metrics"]["all"]["vsa_psnr"] > 18.0


def test_decode_at_twice_the_size_and_frame_rate(encoded, tmp_path):
    from vsa.common.video import read_video

    out = tmp_path / "big.mp4"
    assert vsa_main(["decode", str(encoded), "-o", str(out), "--size", "128x128", "--fps", "60"]) == 0
    frames, info, _ = read_video(str(out), size=(128, 128))
    assert len(frames) == 80 and info.fps == pytest.approx(60) and (info.width, info.height) == (128, 128)
    # Frames between source frames are new samples of the clip, not copies of their neighbours.
    assert (frames[1].astype(int) - frames[0]).__abs__().mean() > 0


def test_inverted_codes_encode_and_decode(tmp_path, inrv_bundle, clip_path):
    model, _ = inrv_bundle
    out = tmp_path / "inv.vsa"
    assert vsa_main(["encode", clip_path, "--model", model, "--payload", "inrv", "--codes", "invert",
                     "--invert-steps", "20", "--code-format", "i8", "--limit", "20", "-o", str(out)]) == 0
    frames = [m for m in _messages(out) if isinstance(m, Frame)]
    assert [len(f.payload) for f in frames] == [4 + 16, 4 + 16]
    assert vsa_main(["decode", str(out)]) == 0


def test_a_nan_code_in_a_file_is_refused_with_a_clear_error(encoded, tmp_path, capsys):
    messages = _messages(encoded)
    bad = tmp_path / "bad.vsa"
    with open(bad, "wb") as f:
        f.write(file_header())
        for msg in messages:
            if isinstance(msg, Frame) and msg.pts == 16:
                msg = Frame(msg.seq, msg.pts, True, b"\x00\x7e" * 16)  # 0x7e00 is a half-float NaN
            f.write(record(msg))
    assert vsa_main(["decode", str(bad), "-o", str(tmp_path / "bad.mp4")]) == 2
    err = capsys.readouterr().err
    assert "NaN" in err and "decoded the 16 frames before it" in err
    wrong = pack_code([0.1] * 17, "f16")  # a code of the wrong length
    with open(bad, "wb") as f:
        f.write(file_header())
        for msg in messages:
            if isinstance(msg, Frame) and msg.pts == 0:
                msg = Frame(msg.seq, msg.pts, True, wrong)
            f.write(record(msg))
    assert vsa_main(["decode", str(bad)]) == 2
    assert "34 bytes" in capsys.readouterr().err


def test_payload_and_model_kinds_must_match(tmp_path, trained_bundle, inrv_bundle, clip_path, capsys):
    ae_model, _ = trained_bundle
    assert vsa_main(["encode", clip_path, "--model", ae_model, "--payload", "inrv", "-o", str(tmp_path / "x.vsa")]) == 2
    assert "carries frames, not codes" in capsys.readouterr().err

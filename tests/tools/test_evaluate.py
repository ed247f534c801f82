"""`vsa eval`: a quick sweep on the bundled real clip writes well-formed, honest results."""

from __future__ import annotations

import csv
import json
import os

import pytest

from vsa.common import bundle as bundle_mod
from vsa.protocol.container import ContainerReader, file_header
from vsa.protocol.messages import Frame
from vsa.sender import ladder
from vsa.tools import evaluate
from vsa.tools.cli import main as vsa_main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory, clip_path, trained_bundle):
    out = tmp_path_factory.mktemp("eval")
    model, _ = trained_bundle
    code = vsa_main(["eval", clip_path, "-o", str(out), "--quick", "--size", "128x192", "--limit", "24",
                     "--model", model, "--device", "cpu", "--mode", "both", "--arch", "ae"])
    assert code == 0
    with open(out / "results.json") as f:
        return out, json.load(f)


def test_quick_run_writes_every_method_and_mode(quick_results):
    out, results = quick_results
    methods = {p["method"] for p in results["points"]}
    assert methods == {"vsa", "bicubic", "x264-zerolatency", "x264-medium", "vp8", "vp9", "av1"}
    assert {s["mode"] for s in results["summaries"]} == {"seen", "live"}
    for p in results["points"]:
        # live mode scores only the second half of the 24 frames
        assert p["frames"] == (24 if p["mode"] == "seen" else 12)
        for metric in ("psnr", "psnr_y", "ssim", "ms_ssim"):
            assert isinstance(p[metric], float), (p["id"], metric)
        assert 10 < p["psnr"] < 60 and 0 < p["ssim"] <= 1
        if p["method"] == "vsa":
            assert set(p["total_kbps"]) == {"1min", "10min", "60min"}
            assert p["total_kbps"]["1min"] > p["total_kbps"]["60min"] > p["kbps"]
    for s in results["summaries"]:
        assert set(s["vsa"]) == {"vsa"} and set(s["vsa"]["vsa"]["bd_rate"]) == methods - {"vsa"}
        for kbps, psnr in s["pareto"]["vsa"]:
            assert kbps > 0 and psnr > 0
    for name in ("rd.png", "per_frame_psnr.png", "latents.png"):
        for mode in ("seen", "live"):
            path = out / "person_signing_webcam" / mode / name
            assert path.stat().st_size > 5000, path  # a real figure, not an empty file
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bitrates_are_the_bytes_written(quick_results):
    out, results = quick_results
    for p in results["points"]:
        written = os.path.getsize(out / p["stream"])
        assert written == p["bytes"] > 0
        assert p["kbps"] == pytest.approx(written * 8 / 1000 / p["seconds"])
    # vsa's counted bytes are exactly its frame messages: they parse back as one per sent frame.
    vsa = next(p for p in results["points"] if p["method"] == "vsa" and p["mode"] == "seen"
               and p["params"]["stride"] == 2)
    reader = ContainerReader()
    reader.feed(file_header() + (out / vsa["stream"]).read_bytes())
    messages = []
    while (msg := reader.next_message()) is not None:
        messages.append(msg)
    assert all(isinstance(m, Frame) for m in messages)
    assert [m.pts for m in messages] == list(range(0, 24, 2)) + [23]


def test_per_frame_csv_has_a_row_per_frame_of_every_point(quick_results):
    out, results = quick_results
    with open(out / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(p["frames"] for p in results["points"])
    ids = {p["id"]: p for p in results["points"]}
    first = ids[rows[0]["point"]]
    values = [float(r["psnr"]) for r in rows if r["point"] == first["id"]]
    # The point's mean is taken in float32: equal to its precision, far tighter than one frame's weight.
    assert sum(values) / len(values) == pytest.approx(first["psnr"], abs=1e-4)


def test_report_tables_cover_each_clip_and_mode(quick_results):
    _, results = quick_results
    text = evaluate.report(results)
    assert "| person_signing_webcam | seen |" in text and "| person_signing_webcam | live |" in text
    assert "x264-zerolatency" in text and "vp8" in text


def test_eval_trains_its_own_models_when_none_is_given_and_adds_inrv(tmp_path, clip_path):
    code = vsa_main(["eval", clip_path, "-o", str(tmp_path), "--quick", "--size", "128x192", "--limit", "8",
                     "--minutes", "0.05", "--inrv-minutes", "0.05", "--mode", "seen", "--arch", "ae",
                     "--baselines", "x264-zerolatency", "--device", "cpu"])
    assert code == 0
    assert (tmp_path / "person_signing_webcam" / "seen" / "model.pt").exists()
    assert (tmp_path / "person_signing_webcam" / "seen" / "inrv.pt").exists()
    results = json.loads((tmp_path / "results.json").read_text())
    assert {p["method"] for p in results["points"]} == {"vsa", "bicubic", "x264-zerolatency", "inrv"}
    inrv = sorted((p for p in results["points"] if p["method"] == "inrv"), key=lambda p: p["bytes"])
    assert [p["params"]["code"] for p in inrv] == ["i8", "f16"]
    # One code for the 8 frames: 64 values in i8 (plus a scale) or f16, plus the frame message framing.
    assert inrv[0]["bytes"] <= 64 + 4 + 70 and inrv[1]["bytes"] <= 2 * 64 + 70


def test_eval_refuses_bad_input_clearly(tmp_path, capsys):
    assert vsa_main(["eval", str(tmp_path / "missing.mp4"), "-o", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert vsa_main(["eval", str(tmp_path / "x.mp4"), "--baselines", "x265"]) == 2
    assert "unknown baseline" in capsys.readouterr().err


def test_the_sr_curves_fine_tune_the_shipped_base_and_count_only_its_delta(tmp_path, clip_path):
    """cold: the base alone, nothing to send; live: fine-tuned on the first half, its delta counted."""
    code = vsa_main(["eval", clip_path, "-o", str(tmp_path), "--quick", "--size", "128x192", "--limit", "16",
                     "--minutes", "0.05", "--mode", "cold,live", "--arch", "sr", "--baselines", "vp8",
                     "--device", "cpu", "--ladder", str(tmp_path / "ladder.json")])
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert {p["method"] for p in results["points"]} == {"vsa-sr", "bicubic", "vp8"}
    # The ladder it wrote: the live points no other beats at a lower rate, which vsend --ladder reads.
    rungs = ladder.load(str(tmp_path / "ladder.json"))
    assert len(rungs) >= 2 and [r.kbps for r in rungs] == sorted(r.kbps for r in rungs)
    assert [r.psnr for r in rungs] == sorted(r.psnr for r in rungs)
    assert (tmp_path / "person_signing_webcam" / "live" / "model-sr.pt").exists()
    costs = {s["mode"]: s["vsa"]["vsa-sr"]["model_bytes"] for s in results["summaries"]}
    assert costs["cold"] == 0  # the shipped base is never sent
    tuned = bundle_mod.load(str(tmp_path / "person_signing_webcam" / "live" / "model-sr.pt"))
    # A delta per stream scale, holding only that scale's branch; the largest is reported.
    scales = {p["params"]["scale"] for p in results["points"] if p["method"] == "vsa-sr"}
    per_scale = [len(bundle_mod.to_wire(tuned, scale=s)) for s in scales]
    assert costs["live"] == max(per_scale) < len(bundle_mod.to_wire(tuned)) < 64 * 1024
    for p in results["points"]:
        assert p["frames"] == 8  # both modes score the second half
    text = evaluate.bd_table(results)
    assert "| person_signing_webcam | cold | vsa-sr |" in text and "| person_signing_webcam | live | vsa-sr |" in text


def test_online_mode_counts_every_update_byte_and_compares_with_the_frozen_base(tmp_path, clip_path):
    out = tmp_path / "online"
    code = vsa_main(["eval", clip_path, "-o", str(out), "--quick", "--size", "128x192", "--limit", "24", "--mode", "online",
                     "--arch", "sr", "--baselines", "x264-zerolatency", "--device", "cpu",
                     "--adapt-every", "0.1", "--adapt-steps", "60", "--adapt-share", "0.5"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    online = [p for p in results["points"] if p["method"] == evaluate.ONLINE_METHOD]
    frozen = {json.dumps(p["params"]): p for p in results["points"] if p["method"] == "vsa-sr"}
    assert online and len(online) == len(frozen)
    def messages(point):
        reader = ContainerReader()
        reader.feed(file_header() + (out / point["stream"]).read_bytes())
        found = []
        while (m := reader.next_message()) is not None:
            found.append(m)
        return found

    sent = 0
    for p in online:
        ours, theirs = messages(p), messages(frozen[json.dumps(p["params"])])
        updates = [m for m in ours if type(m).__name__ == "ModelUpdate"]
        # The counted stream is the frames and every update, as sent; the updates are the ones the adapter made.
        assert len(updates) == sum(u["sent"] for u in p["updates"])
        assert sum(isinstance(m, Frame) for m in ours) == sum(isinstance(m, Frame) for m in theirs) > 0
        sent += len(updates)
    assert sent >= 1
    summary = results["summaries"][0]["vsa"][evaluate.ONLINE_METHOD]
    assert "vsa-sr" in summary["bd_rate"] and "x264-zerolatency" in summary["bd_rate"]
    plot = out / "person_signing_webcam" / "online" / "online_psnr.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000


def test_online_mode_can_adapt_the_model_fine_tuned_on_the_first_half(tmp_path, clip_path):
    out = tmp_path / "online"
    code = vsa_main(["eval", clip_path, "-o", str(out), "--quick", "--size", "128x192", "--limit", "24", "--mode", "online",
                     "--online-start", "finetuned", "--minutes", "0.05", "--arch", "sr,ae",
                     "--baselines", "x264-zerolatency", "--device", "cpu",
                     "--adapt-every", "0.1", "--adapt-steps", "60", "--adapt-share", "0.5"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["options"]["online_start"] == "finetuned"
    assert (out / "person_signing_webcam" / "online" / "model-sr.pt").exists()  # trained on the first half
    online = {json.dumps(p["params"]): p for p in results["points"] if p["method"] == evaluate.ONLINE_METHOD}
    frozen = {json.dumps(p["params"]): p for p in results["points"] if p["method"] == "vsa-sr"}
    assert online.keys() == frozen.keys() and not any(p["method"] == "vsa" for p in results["points"])
    # Both curves ship the fine-tuned model's delta; the adapting one adds its updates to the rate.
    for key, p in online.items():
        assert p["model_bytes"] == frozen[key]["model_bytes"] > 0
        assert p["frames"] == frozen[key]["frames"] == 12
    summary = results["summaries"][0]["vsa"]
    assert summary[evaluate.ONLINE_METHOD]["model_bytes"] == summary["vsa-sr"]["model_bytes"] > 0
    assert "vsa-sr" in summary[evaluate.ONLINE_METHOD]["bd_rate"]

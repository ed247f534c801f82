"""`vsa eval`: bitrate against quality, vsa against the codecs people already use.

For each clip and mode the tool makes a model per architecture (``--arch``),
then runs every operating point as a real encode and decode:

* vsa (``ae``, the paper's autoencoder, trained from scratch on the training
  frames) and vsa-sr (``sr``, the base shipped with vsa fine-tuned on them,
  or the base alone): a grid of scale x stride (and payload quality),
  through the same `StreamEncoder`/`StreamDecoder` the file mode and live
  stream use. The rate counts the frame messages as framed in a `.vsa` file
  (payload plus the protocol's per-frame overhead); the model's bits (a
  delta, for a fine-tuned base) are reported separately.
* bicubic: the same low-res stream, upscaled bicubically (and blended between
  sent frames), so the rate is vsa's own.
* x264 (zerolatency and medium), VP8, VP9 and SVT-AV1 at target bitrates that
  span vsa's range (`vsa.tools.baselines`).

Modes: ``seen`` trains on the whole clip and scores the whole clip; ``live``
trains on the first half and scores, and encodes with every method, only the
second half; ``cold`` trains nothing: the base alone, on the second half (the
shipped base never saw any clip's second half); ``online`` adds vsa-sr-online
to cold: the base adapting while it codes the second half (`vsa.sender.adapt`),
beside the frozen base (vsa-sr) on the same stream settings. Its rate counts
the frame messages *and* the model updates, frame by frame: every method
codes the same frames from the same start.

Everything lands in the output folder: ``results.json`` (one object per point
plus a summary per clip and mode), ``frames.csv`` (per-frame metrics), the
streams whose bytes were counted (``streams/``), the plots, and the models.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import re
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np
import torch

from vsa.common import bundle as bundle_mod
from vsa.common import registry
from vsa.common.examples import Examples
from vsa.common.framecodec import DEFAULT_CODEC, INTER_CODECS
from vsa.common.metrics import luma, mean_psnr, ms_ssim, psnr, psnr_y, ssim
from vsa.common.resample import to_tensor, to_uint8
from vsa.common.video import read_video
from vsa.protocol.container import record
from vsa.protocol.messages import Frame, ModelUpdate
from vsa.receiver.stream import OutputFrame, SessionDecoder, StreamDecoder
from vsa.sender.adapt_options import AdaptSettings
from vsa.sender.inrv_stream import CodeEncoder
from vsa.sender.shipment import Shipment
from vsa.sender.stream import StreamEncoder, StreamSettings
from vsa.sender.train import Trainer, TrainOptions
from vsa.tools import rd
from vsa.tools.baselines import BASELINES, run_baseline

MODES = ("seen", "live", "cold", "online")
DEFAULT_MODES = ("seen", "live")
ARCHS = ("ae", "sr")
VSA_METHODS = {"ae": "vsa", "sr": "vsa-sr"}
"""The method name of each architecture's curve (the autoencoder's keeps the first release's name)."""
ONLINE_METHOD = "vsa-sr-online"
"""The curve of the sr model adapting online (mode ``online``); its BD-rate is also given against the same model
frozen."""
ONLINE_STARTS = ("base", "finetuned")
"""What online mode adapts: the base alone (a camera's cold start), or the base fine-tuned on the first half (what
live mode scores frozen)."""
SPREAD_MINUTES = (1, 10, 60)
DEFAULT_SIZE = (192, 256)
DEFAULT_MINUTES = 4.0
QUICK_MINUTES = 0.4
QUICK_FRAMES = 48
# The baselines BD-rate and break-even are reported against in the README.
PRIMARY_BASELINE = "x264-zerolatency"


@dataclass(frozen=True)
class EvalOptions:
    size: tuple[int, int] = DEFAULT_SIZE
    modes: tuple[str, ...] = DEFAULT_MODES
    minutes: float = DEFAULT_MINUTES
    model: str | None = None
    """Use this bundle for its architecture's curve instead of training one."""
    quick: bool = False
    iterations: int | None = None
    """Reprojection passes; None: each architecture's default."""
    archs: tuple[str, ...] = ARCHS
    base: str | None = None
    """The base the sr curve starts from (None: the one shipped with vsa)."""
    seed: int = 0
    limit: int | None = None
    reuse_models: bool = False
    device: str = "cpu"
    baselines: tuple[str, ...] = tuple(BASELINES)
    inrv_minutes: float = 0.0
    """Train an INR-V model per clip and mode for this long and add its points (0: leave INR-V out)."""
    adapt: AdaptSettings = field(default_factory=AdaptSettings)
    """Online mode: how the sender adapts (a step budget: reproducible)."""
    online_start: str = "base"
    """Online mode: what it adapts (`ONLINE_STARTS`)."""


def vsa_grid(quick: bool) -> list[StreamSettings]:
    """vsa's operating points: scale x stride with the default payload, plus a payload-quality sweep."""
    if quick:
        grid = [StreamSettings(scale=s, stride=k) for s in (4, 8) for k in (1, 2)]
        return grid + [StreamSettings(scale=4, stride=1, crf=44)]
    grid = [StreamSettings(scale=s, stride=k) for s in (2, 4, 8, 16) for k in (1, 2, 4)]
    # vp9 42 and 54 give about the low-res PSNR of h264 28 and 36, the sweep's crfs before vp9 was the default.
    grid += [StreamSettings(scale=s, stride=1, crf=c) for s in (4, 8) for c in (42, 54)]
    grid += [StreamSettings(scale=4, stride=1, codec="webp", quality=q) for q in (50, 90)]
    return grid


def baseline_points(quick: bool) -> int:
    """Operating points per baseline codec."""
    return 3 if quick else 6


def baseline_rates(vsa_kbps: list[float], quick: bool) -> list[float]:
    """Target bitrates for the baselines: geometric, spanning vsa's range with some margin each side."""
    low = max(4.0, 0.5 * min(vsa_kbps))
    high = max(low * 2, 1.5 * max(vsa_kbps))
    count = baseline_points(quick)
    return [float(low * (high / low) ** (i / (count - 1))) for i in range(count)]


def settings_text(params: dict) -> str:
    """A point's stream settings, for a plot's title."""
    return ", ".join(f"{k} {v}" for k, v in params.items())


def settings_label(s: StreamSettings) -> str:
    quality = f"crf{s.crf}" if s.codec in INTER_CODECS else f"q{s.quality}" if s.codec == "webp" else ""
    return f"s{s.scale}-k{s.stride}-{s.codec}{quality}"


# --- scoring ---------------------------------------------------------------------------------


def score(reference: np.ndarray, decoded: np.ndarray, chunk: int = 16) -> dict[str, list[float]]:
    """Per-frame PSNR (RGB and Y), SSIM and MS-SSIM of uint8 (N, H, W, 3) ``decoded`` against ``reference``.

    SSIM and MS-SSIM are taken on luma, as codec comparisons usually are; it
    is also a third of the cost, and the structural metrics dominate the run.
    """
    if reference.shape != decoded.shape:
        raise ValueError(f"decoded {decoded.shape} does not match the reference {reference.shape}")
    out: dict[str, list[float]] = {"psnr": [], "psnr_y": [], "ssim": [], "ms_ssim": []}
    for start in range(0, len(reference), chunk):
        ref = to_tensor(reference[start : start + chunk])
        dec = to_tensor(decoded[start : start + chunk])
        out["psnr"] += psnr(dec, ref).clamp(max=100).tolist()
        out["psnr_y"] += psnr_y(dec, ref).clamp(max=100).tolist()
        dec_y, ref_y = luma(dec), luma(ref)
        out["ssim"] += ssim(dec_y, ref_y).tolist()
        out["ms_ssim"] += ms_ssim(dec_y, ref_y).tolist()
    return out


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else float("nan")


# --- one clip --------------------------------------------------------------------------------


@dataclass
class Clip:
    name: str
    path: str
    fps: float
    frames: np.ndarray  # every frame, at the working size
    mode: str
    from_base: bool = False
    """Nothing is trained before the stream: the base alone (cold, and online from the base); the autoencoder,
    which has no base, sits these out."""

    @property
    def train_frames(self) -> np.ndarray:
        if self.from_base:
            return self.frames[:0]
        return self.frames if self.mode == "seen" else self.frames[: len(self.frames) // 2]

    @property
    def test_frames(self) -> np.ndarray:
        return self.frames if self.mode == "seen" else self.frames[len(self.frames) // 2 :]


@dataclass
class ClipResult:
    points: list[dict] = field(default_factory=list)
    per_frame: list[tuple] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def clip_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(path))[0]) or "clip"


def _sweep(options: EvalOptions) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The scales and crfs (of the default codec) of vsa's grid at this size: what a fine-tuned sr model must
    serve."""
    jobs = _jobs(options)
    return (tuple(sorted({s.scale for s in jobs})),
            tuple(sorted({s.crf for s in jobs if s.codec == DEFAULT_CODEC})))


def _model_for(arch: str, clip: Clip, options: EvalOptions, folder: str) -> bundle_mod.Bundle | Shipment:
    """The model of ``arch``'s curve: ``--model``, a reused one, or one trained on the clip's training frames.

    sr starts from the base and fine-tunes on every scale and crf of the grid;
    in cold mode it is the base alone (a `Shipment` of its wire: nothing to send).
    """
    if options.model:
        bundle = bundle_mod.load(options.model)
        if bundle.kind == arch:
            return bundle
    path = os.path.join(folder, f"model-{arch}.pt" if arch != "ae" else "model.pt")
    base_wire = None
    if arch == "sr":
        from vsa.common.bases import load_base

        base_wire, base = load_base(options.base)
        if clip.from_base:
            return Shipment(base_wire)
    if options.reuse_models and os.path.exists(path):
        bundle = bundle_mod.load(path)
        if tuple(bundle.meta.get("size", ())) == tuple(options.size):
            print(f"  reusing {path}", file=sys.stderr)
            return bundle
    minutes = QUICK_MINUTES if options.quick and options.minutes == DEFAULT_MINUTES else options.minutes
    frames = clip.train_frames
    scales, crfs = _sweep(options)
    meta = {"source": clip.name, "size": list(options.size), "fps": clip.fps, "frames_total": len(clip.frames),
            "frames_used": len(frames), "eval_mode": clip.mode}
    if arch == "sr":
        examples = Examples.single(frames, clip.fps, scales=scales, crfs=crfs)
        examples.prepare()
        config, what = base.config, "fine-tuning the base"
    else:
        examples, config, what = Examples.single(frames, clip.fps), registry.get(arch).preset(), "training"
    print(f"  {arch}: {what} on {len(frames)} frames for {minutes:g} min", file=sys.stderr)
    trainer = Trainer(examples, config, TrainOptions(minutes=minutes, seed=options.seed, progress=False),
                      torch.device(options.device), meta=meta, base_wire=base_wire)
    bundle = trainer.run()
    bundle_mod.save(bundle, path)
    return bundle


def _round_trip(encoder: StreamEncoder | CodeEncoder, decoder: SessionDecoder, frames: np.ndarray
                ) -> tuple[list[OutputFrame], bytes, float, float]:
    """Encode ``frames`` and decode the messages; returns (output frames, counted bytes, encode s, decode s).

    The counted bytes are the frame and model-update messages as a `.vsa` file frames them (the model is
    counted apart; only an adapting sender sends updates).
    """
    n = len(frames)
    messages = encoder.start()
    start = time.perf_counter()
    for i, rgb in enumerate(frames):
        messages += encoder.push(i, rgb, last=i == n - 1)
    messages += encoder.finish()
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    outputs = [o for m in messages for o in decoder.feed(m)]
    decode_s = time.perf_counter() - start
    counted = b"".join(record(m) for m in messages if isinstance(m, (Frame, ModelUpdate)))
    return outputs, counted, encode_s, decode_s


def _vsa_point(clip: Clip, shipment: Shipment, settings: StreamSettings, options: EvalOptions,
               adapt: AdaptSettings | None = None) -> tuple[np.ndarray, np.ndarray | None, bytes, float, float, list]:
    """Encode and decode the test frames with vsa; returns (vsa, bicubic, counted bytes, encode s, decode s,
    the adapter's history). With ``adapt`` the sender adapts as it codes (online mode): every update is in the
    counted bytes, and there is no bicubic (the frozen stream gives it)."""
    frames = clip.test_frames
    n = len(frames)
    encoder = StreamEncoder(shipment, options.size, clip.fps, settings, frame_count=n, source=clip.name,
                            adapt=adapt)
    decoder = StreamDecoder(device=options.device, iterations=options.iterations, with_baseline=adapt is None)
    outputs, counted, encode_s, decode_s = _round_trip(encoder, decoder, frames)
    if len(outputs) != n or decoder.updates_refused:
        raise RuntimeError(f"vsa {settings_label(settings)}: {n} frames in, {len(outputs)} out, "
                           f"{decoder.updates_refused} updates refused")
    ours = to_uint8(torch.stack([o.frame for o in outputs]))
    bicubic = to_uint8(torch.stack([o.baseline for o in outputs])) if adapt is None else None
    history = encoder.adapter.history if encoder.adapter is not None else []
    return ours, bicubic, counted, encode_s, decode_s, history


def _inrv_points(clip: Clip, options: EvalOptions, folder: str) -> list[tuple[str, np.ndarray, bytes, float, float]]:
    """INR-V at the eval size: one code per clip of 16 frames, in f16 and i8.

    Seen mode sends the codes learned in training; live mode inverts each
    clip of the unseen half, warm-started from the previous one. Returns
    (code format, decoded frames, counted bytes, encode s, decode s) per format.
    """
    from vsa.receiver.inrv_stream import CodeDecoder
    from vsa.sender.inrv_stream import CodeSettings
    from vsa.sender.train_inrv import INRVTrainer, INRVTrainOptions
    from vsa.common.inrv import INRVConfig

    path = os.path.join(folder, "inrv.pt")
    if options.reuse_models and os.path.exists(path):
        bundle = bundle_mod.load(path)
    else:
        print(f"  training INR-V on {len(clip.train_frames)} frames for {options.inrv_minutes:g} min", file=sys.stderr)
        trainer = INRVTrainer(clip.train_frames, INRVConfig(),
                              INRVTrainOptions(minutes=options.inrv_minutes, seed=options.seed), options.device)
        model, codes = trainer.run()
        meta = {"source": clip.name, "size": list(options.size), "fps": clip.fps,
                "frames_used": len(clip.train_frames), "eval_mode": clip.mode}
        bundle = bundle_mod.from_model(model, meta, extra={"codes.mu": codes})
        bundle_mod.save(bundle, path)
    out = []
    frames = clip.test_frames
    for fmt in ("f16", "i8"):
        settings = CodeSettings(codes="seen" if clip.mode == "seen" else "invert", code_format=fmt)
        encoder = CodeEncoder(bundle, clip.fps, settings, frame_count=len(frames), source=clip.name)
        decoder = CodeDecoder(device=options.device, size=options.size)
        outputs, counted, encode_s, decode_s = _round_trip(encoder, decoder, frames)
        decoded = to_uint8(torch.stack([o.frame for o in outputs]))
        out.append((fmt, decoded, counted, encode_s, decode_s))
    return out


def _jobs(options: EvalOptions) -> list[StreamSettings]:
    h, w = options.size
    return [s for s in vsa_grid(options.quick) if h % s.scale == 0 and w % s.scale == 0
            and (s.codec != "webp" or (h // s.scale) % 2 == 0 and (w // s.scale) % 2 == 0)]


def evaluate_clip(clip: Clip, options: EvalOptions, out_dir: str, progress: bool = True) -> ClipResult:
    """Every operating point of every method on one clip in one mode."""
    from tqdm import tqdm

    started = time.perf_counter()
    folder = os.path.join(out_dir, clip.name, clip.mode)
    streams = os.path.join(out_dir, "streams")
    os.makedirs(folder, exist_ok=True)
    os.makedirs(streams, exist_ok=True)
    # The autoencoder has no base: it cannot run cold, and it does not adapt online.
    archs = [a for a in options.archs if not ((clip.from_base or clip.mode == "online") and a == "ae")]
    online = clip.mode == "online" and "sr" in archs
    models = {arch: _model_for(arch, clip, options, folder) for arch in archs}
    # A fine-tuned model ships per stream scale: only what that scale's stream runs (`Shipment.of`).
    scales, _ = _sweep(options)
    shipments = {(arch, scale): m if isinstance(m, Shipment) else Shipment.of(m, scale)
                 for arch, m in models.items() for scale in scales}
    reference = clip.test_frames
    seconds = len(reference) / clip.fps
    result = ClipResult()
    grid = _jobs(options)
    # Each vsa setting yields a point per architecture and one bicubic point; INR-V an f16 and an i8 point.
    total = ((len(archs) + 1 + online) * len(grid) + len(options.baselines) * baseline_points(options.quick)
             + (2 if options.inrv_minutes else 0))
    bar = tqdm(total=total, disable=not progress, desc=f"{clip.name} {clip.mode}", unit="point", mininterval=1.0)

    def add(method: str, params: dict, decoded: np.ndarray, counted: bytes, encode_s: float,
            decode_s: float, model_bytes: int | None = None) -> dict:
        point_id = f"{clip.name}-{clip.mode}-{method}-" + "-".join(f"{k}{v}" for k, v in params.items())
        stream_path = os.path.join(streams, point_id + ".bin")
        with open(stream_path, "wb") as f:
            f.write(counted)
        metrics = score(reference, decoded)
        kbps = len(counted) * 8 / 1000 / seconds
        point = {
            "id": point_id, "clip": clip.name, "mode": clip.mode, "method": method, "params": params,
            "frames": len(reference), "seconds": seconds, "bytes": len(counted), "kbps": kbps,
            "stream": os.path.relpath(stream_path, out_dir),
            **{name: _mean(values) for name, values in metrics.items()},
            "psnr": mean_psnr(torch.tensor(metrics["psnr"])),
            "encode_fps": len(reference) / encode_s if encode_s > 0 else None,
            "decode_fps": len(reference) / decode_s if decode_s > 0 else None,
        }
        if model_bytes is not None:
            point["model_bytes"] = model_bytes
            point["total_kbps"] = {f"{m}min": rd.total_kbps(kbps, model_bytes, m) for m in SPREAD_MINUTES}
        result.points.append(point)
        for i in range(len(reference)):
            result.per_frame.append((clip.name, clip.mode, method, point_id, i,
                                     *(metrics[k][i] for k in ("psnr", "psnr_y", "ssim", "ms_ssim"))))
        bar.update(1)
        return point

    vsa_rates = []
    for settings in grid:
        params = {"scale": settings.scale, "stride": settings.stride, "codec": settings.codec}
        inter = settings.codec in INTER_CODECS
        params["crf" if inter else "quality"] = settings.crf if inter else settings.quality
        for i, arch in enumerate(archs):
            shipment = shipments[arch, settings.scale]
            ours, bicubic, counted, enc_s, dec_s, _ = _vsa_point(clip, shipment, settings, options)
            vsa_rates.append(add(VSA_METHODS[arch], params, ours, counted, enc_s, dec_s,
                                 model_bytes=_model_cost(shipment))["kbps"])
            if i == 0:
                # Bicubic decodes the very same stream (every architecture's is the same); its time is the
                # receiver's minus reprojection, not measured.
                add("bicubic", params, bicubic, counted, enc_s, 0.0)
        if online:
            adapt = replace(options.adapt, seed=options.seed)
            ours, _, counted, enc_s, dec_s, history = _vsa_point(clip, shipments["sr", settings.scale], settings,
                                                                 options, adapt)
            add(ONLINE_METHOD, params, ours, counted, enc_s, dec_s,
                model_bytes=_model_cost(shipments["sr", settings.scale]))["updates"] = history
    for name in options.baselines:
        for target in baseline_rates(vsa_rates, options.quick):
            coded = run_baseline(name, reference, clip.fps, target)
            add(name, {"target_kbps": round(target, 1)}, coded.frames, b"".join(coded.packets),
                coded.encode_s, coded.decode_s)
    if options.inrv_minutes and not clip.from_base:
        for fmt, decoded, counted, enc_s, dec_s in _inrv_points(clip, options, folder):
            add("inrv", {"code": fmt}, decoded, counted, enc_s, dec_s)
    bar.close()
    costs = {VSA_METHODS[a]: max(_model_cost(shipments[a, s]) for s in scales) for a in archs}
    if online:
        costs[ONLINE_METHOD] = costs[VSA_METHODS["sr"]]  # what the frozen model costs; every update is in the rate
    result.summary = summarise(clip, result.points, costs)
    if "ae" in models:
        result.summary["latents"] = _latent_plot(models["ae"], clip, folder, options)
    _plots(clip, result, folder)
    result.summary["elapsed_s"] = time.perf_counter() - started
    return result


def _model_cost(shipment: Shipment) -> int:
    """Bytes a receiver must be sent for the model: none for a base shipped with vsa, a delta for a
    model fine-tuned from one, the whole wire form otherwise."""
    return sum(len(w) for w in shipment.to_send())


def summarise(clip: Clip, points: list[dict], model_bytes: dict[str, int]) -> dict:
    """Pareto fronts and, for each vsa curve, its BD-rate against each other method and break-even times.

    ``model_bytes`` maps each vsa method to the most bytes its model costs a receiver (a fine-tuned
    model's delta depends on the stream's scale); break-even times use each point's own cost.
    """
    curves: dict[str, list[tuple[float, float]]] = {}
    for p in points:
        curves.setdefault(p["method"], []).append((p["kbps"], p["psnr"]))
    fronts = {m: rd.pareto(c) for m, c in curves.items()}
    summary = {
        "clip": clip.name, "mode": clip.mode, "frames": len(clip.test_frames), "fps": clip.fps,
        "pareto": {m: [list(p) for p in f] for m, f in fronts.items()}, "vsa": {},
    }
    anchor = curves.get(PRIMARY_BASELINE, [])
    for method, cost in model_bytes.items():
        ours = curves.get(method, [])
        others = [m for m in curves if m not in model_bytes]
        if method == ONLINE_METHOD and VSA_METHODS["sr"] in curves:
            others.append(VSA_METHODS["sr"])  # what adapting buys over the frozen base, at the same rate
        entry = {
            "model_bytes": cost,
            "bd_rate": {m: rd.bd_rate(curves[m], ours) for m in others},
            "bd_psnr": {m: rd.bd_psnr(curves[m], ours) for m in others},
            "psnr_overlap_db": {m: rd.psnr_overlap(fronts[m], fronts.get(method, [])) for m in others},
            "break_even": [],
        }
        point_cost = {(p["kbps"], p["psnr"]): p.get("model_bytes", cost) for p in points if p["method"] == method}
        for kbps, quality in fronts.get(method, []):
            other = rd.rate_at_quality(anchor, quality)
            entry["break_even"].append({
                "vsa_kbps": kbps, "psnr": quality, f"{PRIMARY_BASELINE}_kbps": other,
                "seconds": rd.break_even_seconds(point_cost.get((kbps, quality), cost), kbps, other),
            })
        summary["vsa"][method] = entry
    return summary


# --- plots -----------------------------------------------------------------------------------


def _latent_plot(bundle: bundle_mod.Bundle, clip: Clip, folder: str, options: EvalOptions) -> str:
    from vsa.tools import plots

    model = bundle.build(options.device).eval()
    codes = []
    with torch.inference_mode():
        for start in range(0, len(clip.frames), 16):
            x = to_tensor(clip.frames[start : start + 16]).to(options.device)
            codes.append(model.encode(x).flatten(1).cpu())
    path = os.path.join(folder, "latents.png")
    split = len(clip.train_frames) if clip.mode == "live" else None
    plots.latent_pca(torch.cat(codes), path, f"{clip.name}: latent codes (PCA), coloured by time", split)
    return os.path.relpath(path, os.path.dirname(os.path.dirname(folder)))


def _plots(clip: Clip, result: ClipResult, folder: str) -> None:
    from vsa.tools import plots

    plots.rd_curves(result.points, os.path.join(folder, "rd.png"),
                    f"{clip.name} ({clip.mode}, {len(clip.test_frames)} frames)")
    # Per-frame PSNR: vsa's middle Pareto point, and each other method at the nearest rate.
    curve = next(iter(result.summary["vsa"]), None)
    front = result.summary["pareto"].get(curve, []) if curve else []
    if not front:
        return
    target = front[len(front) // 2][0]
    chosen = {}
    for p in result.points:
        best = chosen.get(p["method"])
        if best is None or abs(math.log(p["kbps"] / target)) < abs(math.log(best["kbps"] / target)):
            chosen[p["method"]] = p
    series = {}
    for method, p in chosen.items():
        values = [row[5] for row in result.per_frame if row[3] == p["id"]]
        series[f"{method} ({p['kbps']:.0f} kbps)"] = values
    plots.per_frame(series, os.path.join(folder, "per_frame_psnr.png"),
                    f"{clip.name} ({clip.mode}): per-frame PSNR near {target:.0f} kbps")
    online = [p for p in result.points if p["method"] == ONLINE_METHOD]
    if online:
        # Over time, at the operating point with the most updates: adapting, frozen and bicubic, same settings.
        point = max(online, key=lambda p: (sum(u["sent"] for u in p["updates"]), -p["kbps"]))
        same = {p["method"]: p for p in result.points if p["params"] == point["params"]}
        series = {f"{m} ({q['kbps']:.0f} kbps)": [row[5] for row in result.per_frame if row[3] == q["id"]]
                  for m, q in same.items()}
        plots.per_frame(series, os.path.join(folder, "online_psnr.png"),
                        f"{clip.name}: adapting online, {settings_text(point['params'])}",
                        marks=[u["pts"] for u in point["updates"] if u["sent"]], mark_label="model update")


# --- the run ---------------------------------------------------------------------------------


def load_clips(paths: list[str], options: EvalOptions) -> Iterator[Clip]:
    for path in paths:
        limit = QUICK_FRAMES if options.quick and options.limit is None else options.limit
        frames, info, _ = read_video(path, size=options.size, limit=limit)
        if len(frames) < 4:
            raise ValueError(f"{path}: {len(frames)} frames; vsa eval needs at least 4")
        for mode in options.modes:
            from_base = mode == "cold" or (mode == "online" and options.online_start == "base")
            yield Clip(clip_name(path), path, info.fps, frames, mode, from_base)


def run(paths: list[str], out_dir: str, options: EvalOptions, progress: bool = True) -> dict:
    """Evaluate every clip in every mode; write the results folder and return results.json's content.

    results.json and frames.csv are rewritten after each clip, so a long run that is stopped keeps the clips
    it finished.
    """
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    points, summaries, rows = [], [], []
    results: dict = {}
    for clip in load_clips(paths, options):
        print(f"{clip.name}: mode {clip.mode}", file=sys.stderr)
        result = evaluate_clip(clip, options, out_dir, progress)
        points += result.points
        summaries.append(result.summary)
        rows += result.per_frame
        results = _write_results(out_dir, options, time.perf_counter() - start, points, summaries, rows)
    return results


def _write_results(out_dir: str, options: EvalOptions, elapsed: float, points: list[dict], summaries: list[dict],
                   rows: list[tuple]) -> dict:
    with open(os.path.join(out_dir, "frames.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["clip", "mode", "method", "point", "frame", "psnr", "psnr_y", "ssim", "ms_ssim"])
        writer.writerows(rows)
    results = {
        "version": 1,
        "options": {"size": list(options.size), "modes": list(options.modes), "minutes": options.minutes,
                    "quick": options.quick, "iterations": options.iterations, "model": options.model,
                    "archs": list(options.archs), "base": options.base, "online_start": options.online_start},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "device": options.device},
        "elapsed_s": elapsed,
        "points": points,
        "summaries": summaries,
    }
    tmp = os.path.join(out_dir, "results.json.tmp")
    with open(tmp, "w") as f:
        json.dump(_finite(results), f, indent=1)
    os.replace(tmp, os.path.join(out_dir, "results.json"))
    return results


def _finite(value):
    """JSON has no NaN or infinity: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# --- report ----------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str, missing: str = "n/a") -> str:
    return missing if value is None else format(value, spec)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def bd_table(results: dict) -> str:
    """Markdown: BD-rate of each vsa curve against every other method, one row per clip, mode and curve."""
    lines = []
    present = {m for s in results["summaries"] for v in s["vsa"].values() for m in v["bd_rate"]}
    methods = [m for m in ("x264-zerolatency", "x264-medium", "vp8", "vp9", "av1", "bicubic", "inrv") if m in present]
    lines.append("BD-rate of vsa against each method (PSNR, Akima; negative = vsa needs fewer bits; "
                 "n/a = the curves share under 0.2 dB of PSNR). Model KiB: what a receiver must be sent "
                 "(0 for the base shipped with vsa; for a fine-tuned base, its largest delta: one per stream scale):\n")
    lines.append("| clip | mode | curve | frames | model KiB | " + " | ".join(methods) + " |")
    lines.append("|---|---|---|---|---|" + "---|" * len(methods))
    for s in results["summaries"]:
        for curve, v in s["vsa"].items():
            cells = [_fmt(v["bd_rate"].get(m), "+.0f") + ("%" if v["bd_rate"].get(m) is not None else "")
                     for m in methods]
            lines.append(f"| {s['clip']} | {s['mode']} | {curve} | {s['frames']} | {v['model_bytes'] / 1024:.1f} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def _label(params: dict) -> str:
    quality = f"{params['codec']} crf{params['crf']}" if "crf" in params else f"{params['codec']} q{params['quality']}"
    return f"s{params['scale']} k{params['stride']} {quality}"


def points_table(results: dict) -> str:
    """Markdown: each vsa curve's Pareto points, what the baselines reach at the same rate, and the break-even."""
    methods = {p["method"] for p in results["points"]}
    lines = []
    lines.append("vsa's Pareto points against the baselines at the same payload rate (PSNR dB, RGB; "
                 "n/a = outside that codec's measured range), the rate with the model spread over 10 minutes, "
                 f"and the stream length after which vsa's model has paid for itself against {PRIMARY_BASELINE}:\n")
    base = [m for m in ("x264-zerolatency", "x264-medium", "vp8", "vp9", "av1", "bicubic") if m in methods]
    lines.append("| clip | mode | curve | point | kbps | kbps incl. model (10 min) | PSNR | "
                 + " | ".join(base) + " | break-even |")
    lines.append("|---|---|---|---|---|---|---|" + "---|" * len(base) + "---|")
    by_id = {(p["clip"], p["mode"], p["method"], round(p["kbps"], 6)): p for p in results["points"]}
    for s in results["summaries"]:
        curves = {m: [(p["kbps"], p["psnr"]) for p in results["points"]
                      if p["clip"] == s["clip"] and p["mode"] == s["mode"] and p["method"] == m] for m in base}
        for curve, v in s["vsa"].items():
            for entry in v["break_even"]:
                p = by_id.get((s["clip"], s["mode"], curve, round(entry["vsa_kbps"], 6)))
                if p is None:
                    continue
                others = [_fmt(rd.quality_at_rate(curves[m], p["kbps"]), ".2f") for m in base]
                lines.append(f"| {s['clip']} | {s['mode']} | {curve} | {_label(p['params'])} | {p['kbps']:.1f} | "
                             f"{p['total_kbps']['10min']:.1f} | {p['psnr']:.2f} | " + " | ".join(others)
                             + f" | {_duration(entry['seconds'])} |")
    return "\n".join(lines)


def report(results: dict) -> str:
    """Both tables, for the README's results section."""
    return bd_table(results) + "\n\n" + points_table(results)


# --- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from vsa.common.cliargs import passes, positive_float, positive_int, size_arg
    from vsa.common.device import DEVICE_CHOICES
    from vsa.sender.adapt_options import add_arguments as adapt_arguments

    p = argparse.ArgumentParser(
        prog="vsa eval",
        description="Rate-distortion evaluation: vsa's operating points (scale x stride x payload quality) against "
        "x264 (zerolatency and medium), VP8, VP9, SVT-AV1 and bicubic upscaling, each a real encode and decode. "
        "Writes results.json, frames.csv, rd.png, per-frame PSNR and latent PCA plots, and the counted streams.",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="clips to evaluate")
    p.add_argument("-o", "--output", default="results", help="output folder (default: results)")
    p.add_argument("--size", type=size_arg, default=DEFAULT_SIZE, metavar="HxW",
                   help="working size, multiples of 64 (default: 192x256)")
    p.add_argument("--mode", default="both",
                   help="comma-separated: seen (train and score on the whole clip), live (train on the first half, "
                   "score the second), cold (the base alone, no training, on the second half), online (sr adapting "
                   "as it codes the second half, update bytes counted, beside the same model frozen; see "
                   "--online-start); both = seen,live (default: both)")
    p.add_argument("--online-start", choices=ONLINE_STARTS, default="base",
                   help="online mode: adapt the base alone (a camera's cold start) or the base fine-tuned on the "
                   "first half for --minutes (what live mode scores frozen) (default: base)")
    p.add_argument("--arch", default=",".join(ARCHS),
                   help="curves: ae (the paper's autoencoder, trained from scratch) and/or sr (the shipped base, "
                   f"fine-tuned on the training frames; alone in cold mode) (default: {','.join(ARCHS)})")
    p.add_argument("--base", metavar="PATH", help="sr: start from this base (.pt or .vsam) instead of the shipped one")
    p.add_argument("--minutes", type=positive_float, default=DEFAULT_MINUTES,
                   help=f"training budget per model (default: {DEFAULT_MINUTES:g}; {QUICK_MINUTES:g} with --quick)")
    p.add_argument("--model", help="use this model bundle for its architecture's curve, for every clip and mode, "
                   "instead of training one")
    p.add_argument("--reuse-models", action="store_true",
                   help="reuse model.pt files a previous run left in the output folder")
    p.add_argument("--quick", action="store_true",
                   help=f"a small sweep on the first {QUICK_FRAMES} frames with a short training (for tests)")
    p.add_argument("--limit", type=positive_int, help="use only the first N frames of each clip")
    p.add_argument("--iterations", type=passes,
                   help="reprojection passes (default: each model's: 2 for ae, 1 for sr)")
    p.add_argument("--inrv-minutes", type=positive_float, default=None, metavar="M",
                   help="also train an INR-V model per clip and mode for M minutes and add its points "
                   "(codes in f16 and i8; seen: learned codes, live: inverted) (default: off)")
    p.add_argument("--baselines", default=",".join(BASELINES),
                   help=f"comma-separated subset of {','.join(BASELINES)} (default: all)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="default: auto (cuda, mps, cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", action="store_true", help="print markdown tables for the README at the end")
    p.add_argument("--ladder", metavar="PATH", help="also write the operating-point ladder of the sr points (the "
                   "live ones, else cold), for vsend --kbps --ladder PATH (README, Rate control)")
    adapt_arguments(p, live=False, switch=False)
    return p


def main(argv: list[str] | None = None) -> int:
    from vsa.common.device import pick_device
    from vsa.sender.adapt_options import settings_from

    args = build_parser().parse_args(argv)
    baselines = tuple(b for b in args.baselines.split(",") if b)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    for path in args.videos:
        if not path.startswith("lavfi:") and not os.path.exists(path):
            raise FileNotFoundError(f"video not found: {path}")
    modes = tuple(DEFAULT_MODES if m == "both" else (m,) for m in args.mode.split(","))
    modes = tuple(dict.fromkeys(m for group in modes for m in group))
    archs = tuple(a for a in args.arch.split(",") if a)
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(f"--mode {args.mode!r}: choose from {', '.join(MODES)} or both")
    if not archs or any(a not in ARCHS for a in archs):
        raise ValueError(f"--arch {args.arch!r}: choose from {', '.join(ARCHS)}")
    options = EvalOptions(
        size=args.size, modes=modes, minutes=args.minutes, archs=archs, base=args.base,
        model=args.model, quick=args.quick, iterations=args.iterations, seed=args.seed, limit=args.limit,
        reuse_models=args.reuse_models, device=str(pick_device(args.device)), baselines=baselines,
        inrv_minutes=args.inrv_minutes or 0.0, adapt=settings_from(args), online_start=args.online_start,
    )
    torch.manual_seed(args.seed)
    results = run(args.videos, args.output, options)
    print(f"wrote {os.path.join(args.output, 'results.json')} ({len(results['points'])} points) "
          f"in {results['elapsed_s'] / 60:.1f} min")
    print(report(results) if args.report else bd_table(results))
    if args.ladder:
        from vsa.sender import ladder

        mode = "live" if "live" in modes else "cold"
        rungs = ladder.from_points(results["points"], options.size, mode=mode)
        ladder.save(args.ladder, rungs, note=f"vsa eval --mode {mode} of {', '.join(map(clip_name, args.videos))}")
        print(f"wrote {args.ladder}: " + ", ".join(f"scale {r.scale} stride {r.stride} from {r.kbps:g} kbps"
                                                   for r in rungs))
    return 0

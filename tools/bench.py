"""Benchmarks that print figures and write JSON.

`vsa bench model`: size and speed of each preset of every frames
architecture, against the plain baselines.

For each preset it reports parameters, fp32 and wire (int8 + zstd) sizes,
and receiver throughput at a given size: reprojection with 1, 2 and 3 passes
through the optimised path (`Reconstructor`: the architecture's inference
form, e.g. BatchNorm folded or the stream's branch, in its fastest memory
layout) against the eager network in NCHW with back-projection after every
pass, and bicubic upscaling alone as the floor. It also counts the FLOPs of
one reprojected frame (`torch.utils.flop_counter`): the cost on a GPU, on
paper, where no GPU was lent to measure it. Weights are random: speed does
not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from vsa.common import bundle as bundle_mod
from vsa.common import registry
from vsa.common.device import pick_device
from vsa.common.model import AEConfig, parameter_count
from vsa.common.registry import FrameModel
from vsa.common.resample import consistent, upscale
from vsa.receiver.reconstruct import Reconstructor

SCALE = 4
"""The stream scale the figures are for (the streaming default)."""


def _time(fn, repeats: int, device: torch.device) -> float:
    """Median seconds per call after warm-up."""
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2]


def frame_flops(rec: Reconstructor, low: torch.Tensor, passes: int) -> int:
    """Floating-point operations of reprojecting one frame with ``passes`` passes (convolutions and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        rec.reproject(low, passes)
    return int(counter.get_total_flops())


def bench_model(config, size: tuple[int, int], device: torch.device, repeats: int) -> dict:
    torch.manual_seed(0)
    arch = registry.of_config(config)
    model = arch.build(config).eval()
    wire = bundle_mod.to_wire(bundle_mod.from_model(model))
    h, w = size
    low = torch.rand(1, 3, h // SCALE, w // SCALE, device=device)
    result = {
        "arch": arch.name, "preset": config.preset, "k": getattr(config, "k", None),
        "parameters": parameter_count(model), "fp32_kib": round(parameter_count(model) * 4 / 1024),
        "wire_kib": round(len(wire) / 1024), "size": f"{h}x{w}", "scale": SCALE, "device": str(device),
    }
    # The eager baseline: the network as trained (for sr: the scale's branch), NCHW, back-projected every pass.
    eager = model if isinstance(model, FrameModel) else arch.for_inference(model, scale=SCALE)
    eager = eager.to(device).eval()
    rec = Reconstructor(model, size, device, iterations=1, back_project="always", scale=SCALE)

    @torch.inference_mode()
    def eager_pass(passes: int) -> None:
        x = upscale(low, size)
        for _ in range(passes):
            x = consistent(eager(x), low).clamp(0, 1)

    result["bicubic_ms"] = round(_time(lambda: rec.bicubic(low), repeats, device) * 1000, 2)
    for passes in (1, 2, 3):
        fast = _time(lambda: rec.reproject(low, passes), repeats, device)
        slow = _time(lambda: eager_pass(passes), max(3, repeats // 2), device)
        result[f"reproject{passes}_ms"] = round(fast * 1000, 2)
        result[f"reproject{passes}_fps"] = round(1 / fast, 1)
        result[f"eager{passes}_ms"] = round(slow * 1000, 2)
    z = rec.reproject(low, 1).latents
    result["interpolate_ms"] = round(_time(lambda: rec.interpolate(z, z, [0.5]), repeats, device) * 1000, 2)
    for passes in (1, 2):
        result[f"reproject{passes}_gflops"] = round(frame_flops(rec, low, passes) / 1e9, 3)
    return result


def bench_codecs(video: str, size: tuple[int, int], scale: int, limit: int) -> list[dict]:
    """Bytes per frame and low-res PSNR of each payload codec on real frames."""
    from vsa.common.framecodec import round_trip
    from vsa.common.metrics import psnr
    from vsa.common.resample import downscale, to_tensor, to_uint8
    from vsa.common.video import read_video

    frames, info, size = read_video(video, size=size, limit=limit)
    low = to_uint8(downscale(to_tensor(frames), scale))
    h, w = low.shape[1:3]
    rows = []
    settings = [("png", {}), ("webp", {"quality": 90}), ("webp", {"quality": 75}),
                ("vp9", {"crf": 24}), ("vp9", {"crf": 30}), ("vp9", {"crf": 36}),
                ("h264", {"crf": 14}), ("h264", {"crf": 20}), ("h264", {"crf": 26}),
                ("h264", {"crf": 20, "chroma": "420"})]
    for codec, options in settings:
        coded = round_trip(codec, low, info.fps, **options)
        quality = psnr(to_tensor(coded.frames), to_tensor(low)).clamp(max=100).mean()
        total = sum(len(p.payload) for p in coded.packets)
        rows.append({"codec": codec, **options, "lowres": f"{h}x{w}", "bytes_per_frame": round(total / len(low), 1),
                     "kbps_at_source_fps": round(total * 8 / 1000 / (len(low) / info.fps), 1),
                     "lowres_psnr": round(float(quality), 2),
                     "encode_ms": round(coded.encode_s / len(low) * 1000, 2),
                     "decode_ms": round(coded.decode_s / len(low) * 1000, 2)})
        r = rows[-1]
        print(f"{codec:>5} {str(options):18} {r['bytes_per_frame']:8.1f} B/frame  {r['kbps_at_source_fps']:7.1f} kbps  "
              f"low-res PSNR {r['lowres_psnr']:6.2f} dB  enc {r['encode_ms']:.2f} ms  dec {r['decode_ms']:.2f} ms",
              flush=True)
    return rows


CURVE_CRFS = {"h264": (14, 20, 26, 32, 38), "vp9": (20, 30, 40, 50, 58)}
"""Qualities of each inter codec's rate-distortion curve (`codec_curves`): the same span of low-res PSNR."""


def frame_message_bytes(packet, pts: int) -> int:
    """Bytes of the frame message that carries ``packet`` as frame ``pts`` (protocol framing included)."""
    from vsa.protocol.messages import Frame, encode

    return len(encode(Frame(seq=pts, pts=pts, keyframe=packet.keyframe, payload=packet.payload,
                            capture_us=1 << 40)))


def codec_curves(video: str, size: tuple[int, int], scales: list[int], second_half: bool) -> list[dict]:
    """vp9 against h264 on the low-res stream: a rate-distortion curve each per scale, and vp9's BD-rate."""
    from vsa.common.framecodec import round_trip
    from vsa.common.metrics import psnr
    from vsa.common.resample import downscale, to_tensor, to_uint8
    from vsa.common.video import read_video
    from vsa.tools.rd import bd_rate

    frames, info, size = read_video(video, size=size)
    if second_half:
        frames = frames[len(frames) // 2:]
    rows = []
    for scale in scales:
        low = to_uint8(downscale(to_tensor(frames), scale))
        h, w = low.shape[1:3]
        curves = {}
        for codec, crfs in CURVE_CRFS.items():
            points = []
            for crf in crfs:
                coded = round_trip(codec, low, info.fps, crf=crf)
                # Rates count the frame messages a stream sends, a live capture clock included.
                sent = sum(frame_message_bytes(p, i) for i, p in enumerate(coded.packets))
                kbps = sent * 8 / 1000 / (len(low) / info.fps)
                quality = float(psnr(to_tensor(coded.frames), to_tensor(low)).clamp(max=60).mean())
                points.append({"crf": crf, "kbps": round(kbps, 2), "lowres_psnr": round(quality, 2)})
            curves[codec] = points
        bd = bd_rate(*([(p["kbps"], p["lowres_psnr"]) for p in curves[c]] for c in ("h264", "vp9")))
        rows.append({"video": info.name, "scale": scale, "lowres": f"{h}x{w}", "curves": curves,
                     "vp9_bd_rate_vs_h264": None if bd is None else round(bd, 1)})
        text = "no overlap" if bd is None else f"{bd:+.1f}%"
        print(f"{info.name} scale {scale} ({h}x{w}): vp9 against h264 BD-rate {text}", flush=True)
    return rows


def _machine(device: torch.device) -> dict:
    return {"platform": platform.platform(), "processor": platform.processor(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": str(device)}


def main_codecs(argv: list[str]) -> int:
    from vsa.common.assets import DEFAULT_CLIP
    from vsa.common.video import parse_size

    parser = argparse.ArgumentParser(prog="vsa bench codecs",
                                     description="Bytes per frame of each low-res payload codec on real video.")
    parser.add_argument("video", nargs="?", default=str(DEFAULT_CLIP), help="default: the bundled clip")
    parser.add_argument("--size", default="192x256")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--curves", nargs="*", metavar="VIDEO",
                        help="also compare vp9 with h264 as rate-distortion curves (BD-rate) at scales 2, 4, 8 "
                        "and 16, on the second half of each VIDEO (default: the video above)")
    parser.add_argument("-o", "--output", default="bench_codecs.json")
    args = parser.parse_args(argv)
    rows = bench_codecs(args.video, parse_size(args.size), args.scale, args.limit)
    curves = []
    if args.curves is not None:
        for video in args.curves or [args.video]:
            curves += codec_curves(video, parse_size(args.size), [2, 4, 8, 16], second_half=True)
    with open(args.output, "w") as f:
        json.dump({"machine": _machine(torch.device("cpu")), "video": args.video, "results": rows,
                   "curves": curves}, f, indent=2)
    print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vsa bench model",
                                     description="Size, FLOPs and receiver speed of each preset of every frames "
                                     "architecture, at scale 4.")
    parser.add_argument("--size", default="256x512", help="frame size HxW (default: 256x512, the paper's)")
    parser.add_argument("--presets", default="sr,sr-wide,tiny,fast,large,paper",
                        help="comma-separated presets of any frames architecture, or k=N autoencoder widths "
                        "(default: sr,sr-wide,tiny,fast,large,paper)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("-o", "--output", default="bench_model.json")
    args = parser.parse_args(argv)
    from vsa.common.video import parse_size

    if args.threads:
        torch.set_num_threads(args.threads)
    size = parse_size(args.size)
    device = pick_device(args.device)
    presets = {name: registry.get(a).presets[name] for a in registry.names() if registry.get(a).payload == "frames"
               for name in registry.get(a).presets}
    configs = []
    for name in args.presets.split(","):
        name = name.strip()
        if name.startswith("k="):
            configs.append(AEConfig(k=int(name[2:]), preset=name))
        elif name in presets:
            configs.append(presets[name])
        else:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(presets)} or k=N")
    rows = []
    for config in configs:
        repeats = max(5, args.repeats // 4) if getattr(config, "k", 0) >= 32 else args.repeats
        row = bench_model(config, size, device, repeats)
        rows.append(row)
        print(f"{row['arch']:>3} {row['preset']:>7} {row['parameters'] / 1e6:6.2f}M params  "
              f"wire {row['wire_kib']:6d} KiB  bicubic {row['bicubic_ms']:6.2f} ms  "
              f"reproject x1/x2/x3 {row['reproject1_ms']:.1f}/{row['reproject2_ms']:.1f}/{row['reproject3_ms']:.1f} ms "
              f"({row['reproject2_fps']:.0f} fps at 2 passes; eager x2 {row['eager2_ms']:.1f} ms)  "
              f"interpolate {row['interpolate_ms']:.1f} ms  {row['reproject2_gflops']:.2f} GFLOP/frame at 2 passes",
              flush=True)
    report = {"machine": _machine(device), "results": rows}
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.output}")
    return 0

"""`vsa bench model`: size and speed of each preset, against the plain baselines.

For each preset it reports parameters, fp32 and wire (int8 + zstd) sizes,
and receiver throughput at a given size: reprojection with 1, 2 and 3 passes
through the optimised path (`Reconstructor`: channels_last, inference mode)
against eager NCHW, and bicubic upscaling alone as the floor. Weights are
random: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from vsa.common import bundle as bundle_mod
from vsa.common.device import pick_device
from vsa.common.model import PRESETS, AEConfig, Autoencoder, parameter_count
from vsa.common.resample import consistent, upscale
from vsa.receiver.reconstruct import Reconstructor


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


def bench_model(config: AEConfig, size: tuple[int, int], device: torch.device, repeats: int) -> dict:
    torch.manual_seed(0)
    model = Autoencoder(config).eval()
    wire = bundle_mod.to_wire(bundle_mod.from_model(model))
    h, w = size
    low = torch.rand(1, 3, h // 4, w // 4, device=device)
    result = {
        "preset": config.preset, "k": config.k, "parameters": parameter_count(model),
        "fp32_kib": round(parameter_count(model) * 4 / 1024), "wire_kib": round(len(wire) / 1024),
        "size": f"{h}x{w}", "device": str(device),
    }
    eager = Autoencoder(config).to(device).eval()
    eager.load_state_dict(model.state_dict())
    rec = Reconstructor(model, size, device, iterations=1, consistency=True)

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
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vsa bench model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="256x512", help="frame size HxW (default: 256x512, the paper's)")
    parser.add_argument("--presets", default="tiny,fast,large,paper", help="comma-separated presets, or k=N widths")
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
    configs = []
    for name in args.presets.split(","):
        name = name.strip()
        configs.append(AEConfig(k=int(name[2:]), preset=name) if name.startswith("k=") else PRESETS[name])
    rows = []
    for config in configs:
        repeats = max(5, args.repeats // 4) if config.k >= 32 else args.repeats
        row = bench_model(config, size, device, repeats)
        rows.append(row)
        print(f"{row['preset']:>6} k={row['k']:<3} {row['parameters'] / 1e6:6.2f}M params  "
              f"wire {row['wire_kib']:6d} KiB  bicubic {row['bicubic_ms']:6.2f} ms  "
              f"reproject x1/x2/x3 {row['reproject1_ms']:.1f}/{row['reproject2_ms']:.1f}/{row['reproject3_ms']:.1f} ms "
              f"({row['reproject2_fps']:.0f} fps at 2 passes; eager x2 {row['eager2_ms']:.1f} ms)  "
              f"interpolate {row['interpolate_ms']:.1f} ms", flush=True)
    report = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "threads": torch.get_num_threads(), "torch": torch.__version__,
                          "device": str(device)}, "results": rows}
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.output}")
    return 0

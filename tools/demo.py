"""`vsa demo`: the whole codec on the bundled clip, with no GPU, camera or network.

Trains (or reuses) a model, encodes, decodes, prints kbps and PSNR for vsa
against bicubic upscaling of the same low-res frames, and writes a video with
original | bicubic | vsa side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

from vsa.common import bundle as bundle_mod
from vsa.common.assets import DEFAULT_CLIP
from vsa.common.device import pick_device
from vsa.common.model import preset
from vsa.common.resample import to_uint8
from vsa.common.video import VideoWriter, read_video
from vsa.receiver.stream import OutputFrame
from vsa.sender.stream import StreamSettings
from vsa.sender.train import Trainer, TrainOptions
from vsa.tools.filemode import decode_file, encode_file


def _cache_name(clip: str, size: tuple[int, int], minutes: float) -> str:
    h = hashlib.sha256()
    with open(clip, "rb") as f:
        h.update(f.read())
    h.update(f"{size}-{minutes}".encode())
    return f"ae-{h.hexdigest()[:12]}.pt"


def run_demo(args: argparse.Namespace) -> int:
    clip = args.video or str(DEFAULT_CLIP)
    os.makedirs(args.out_dir, exist_ok=True)
    device = pick_device(args.device)
    frames, info, size = read_video(clip, size=args.size)
    model_path = os.path.join(args.out_dir, _cache_name(clip, size, args.minutes))
    if os.path.exists(model_path) and not args.retrain:
        print(f"[1/3] reusing the cached model {model_path} (--retrain to train again)")
    else:
        print(f"[1/3] training a fast model on {info.name} ({len(frames)} frames at {size[0]}x{size[1]}) "
              f"for {args.minutes:g} min on {device}")
        meta = {"source": info.name, "size": list(size), "fps": info.fps, "frames_total": len(frames),
                "frames_used": len(frames), "preset": "fast"}
        trainer = Trainer(frames, preset("fast"), TrainOptions(minutes=args.minutes), device, meta=meta)
        bundle_mod.save(trainer.run(), model_path)

    vsa_path = os.path.join(args.out_dir, "demo.vsa")
    print(f"[2/3] encoding: every {args.stride} frame(s), downscaled x{args.scale} to "
          f"{size[0] // args.scale}x{size[1] // args.scale}")
    enc = encode_file(clip, model_path, vsa_path, StreamSettings(scale=args.scale, stride=args.stride), size=size)
    print(enc.summary())

    print("[3/3] decoding with reprojection and latent interpolation")
    side_path = os.path.join(args.out_dir, "side_by_side.mp4")
    writer = VideoWriter(side_path, size[1] * 3, size[0], info.fps)

    def write_side_by_side(out: OutputFrame) -> None:
        original = frames[min(out.index, len(frames) - 1)]
        bicubic = to_uint8(out.baseline[None])[0] if out.baseline is not None else original
        writer.write(np.concatenate([original, bicubic, to_uint8(out.frame[None])[0]], axis=1))

    with writer:
        dec = decode_file(vsa_path, os.path.join(args.out_dir, "vsa.mp4"), device=device, reference=clip,
                          on_frame=write_side_by_side)
    print(dec.summary())
    m = dec.metrics.get("all")
    if m:
        print(f"\nvsa {m['vsa_psnr']:.2f} dB vs bicubic {m['bicubic_psnr']:.2f} dB "
              f"({m['vsa_psnr'] - m['bicubic_psnr']:+.2f} dB) at {enc.payload_bytes * 8 / 1000 / enc.seconds:.1f} kbps "
              f"payload")
    print(f"wrote {side_path} (original | bicubic | vsa) and {os.path.join(args.out_dir, 'vsa.mp4')}")
    if dec.error:
        print(f"vsa demo: decoding failed: {dec.error}", file=sys.stderr)
        return 1
    return 0

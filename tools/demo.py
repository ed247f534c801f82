"""`vsa demo`: the whole codec on the bundled clip, with no GPU, camera or network.

It is scored where it would be used: on frames no model was trained on.
The base shipped with vsa is fine-tuned on the first 70% of the clip; the
last 30% is encoded, decoded and scored against the source for:

* bicubic upscaling of the low-res frames that were sent;
* the base alone (what a camera gets from its first frame, with no training);
* the fine-tuned model (what it gets once trained on earlier footage).

The figure on the frames the model *was* trained on follows as a second
line: it flatters, which is why it is not the headline. A video with
original | bicubic | base | fine-tuned side by side is written too.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

from vsa.common import bundle as bundle_mod
from vsa.common.assets import DEFAULT_CLIP
from vsa.common.bases import load_base
from vsa.common.device import pick_device
from vsa.common.examples import Examples
from vsa.common.resample import to_uint8
from vsa.common.video import VideoWriter, read_video
from vsa.receiver.stream import OutputFrame
from vsa.sender.shipment import Shipment
from vsa.sender.stream import StreamSettings
from vsa.sender.train import Trainer, TrainOptions
from vsa.tools.filemode import decode_file, encode_file

HOLDOUT_TAIL = 0.3


def _cache_name(clip: str, size: tuple[int, int], minutes: float, scale: int, base_wire: bytes) -> str:
    h = hashlib.sha256()
    with open(clip, "rb") as f:
        h.update(f.read())
    h.update(f"{size}-{minutes}-{scale}-{HOLDOUT_TAIL}".encode())
    h.update(bundle_mod.sha256(base_wire))
    return f"sr-{h.hexdigest()[:12]}.pt"


def run_demo(args: argparse.Namespace) -> int:
    clip = args.video or str(DEFAULT_CLIP)
    os.makedirs(args.out_dir, exist_ok=True)
    device = pick_device(args.device)
    frames, info, size = read_video(clip, size=args.size)
    cut = len(frames) - int(round(len(frames) * HOLDOUT_TAIL))
    tail = (cut, len(frames))
    base_wire, base = load_base()
    model_path = os.path.join(args.out_dir, _cache_name(clip, size, args.minutes, args.scale, base_wire))
    if os.path.exists(model_path) and not args.retrain:
        print(f"[1/3] reusing the fine-tuned model {model_path} (--retrain to train again)")
    else:
        print(f"[1/3] fine-tuning the shipped base on the first {cut} of {len(frames)} frames of {info.name} "
              f"at {size[0]}x{size[1]} for {args.minutes:g} min on {device}; the last {len(frames) - cut} are "
              "held out")
        examples = Examples.single(frames[:cut], info.fps, scales=(args.scale,))
        examples.prepare()
        meta = {"source": info.name, "size": list(size), "fps": info.fps, "frames_total": len(frames),
                "frames_used": cut, "holdout_tail": HOLDOUT_TAIL}
        trainer = Trainer(examples, base.config, TrainOptions(minutes=args.minutes), device, meta=meta,
                          base_wire=base_wire)
        bundle_mod.save(trainer.run(), model_path)
    print(f"      {Shipment.of(bundle_mod.load(model_path), args.scale).describe()}")

    settings = StreamSettings(scale=args.scale, stride=args.stride)
    print(f"[2/3] encoding: every {args.stride} frame(s), downscaled x{args.scale} to "
          f"{size[0] // args.scale}x{size[1] // args.scale}, with the base and with the fine-tuned model")
    paths = {"base": os.path.join(args.out_dir, "base.vsa"), "vsa": os.path.join(args.out_dir, "demo.vsa")}
    enc = encode_file(clip, None, paths["base"], settings, size=size)
    encode_file(clip, model_path, paths["vsa"], settings, size=size)
    print(enc.summary())

    print("[3/3] decoding and scoring the held-out frames")
    shown: dict[str, dict[int, np.ndarray]] = {"base": {}, "vsa": {}, "bicubic": {}}

    def keep(name: str):
        def on_frame(out: OutputFrame) -> None:
            shown[name][out.index] = to_uint8(out.frame[None])[0]
            if name == "vsa" and out.baseline is not None:
                shown["bicubic"][out.index] = to_uint8(out.baseline[None])[0]
        return on_frame

    held = {}
    for name in ("base", "vsa"):
        output = os.path.join(args.out_dir, "vsa.mp4") if name == "vsa" else None
        held[name] = decode_file(paths[name], output, device=device, reference=clip, frame_range=tail,
                                 on_frame=keep(name))
        if held[name].error:
            print(f"vsa demo: decoding failed: {held[name].error}", file=sys.stderr)
            return 1
    seen = decode_file(paths["vsa"], None, device=device, reference=clip, frame_range=(0, cut))

    side_path = os.path.join(args.out_dir, "side_by_side.mp4")
    with VideoWriter(side_path, size[1] * 4, size[0], info.fps) as writer:
        for i in range(len(frames)):
            panels = [frames[i]] + [shown[n].get(i, frames[i]) for n in ("bicubic", "base", "vsa")]
            writer.write(np.concatenate(panels, axis=1))

    rate = enc.payload_bytes * 8 / 1000 / enc.seconds
    tuned, cold, trained = held["vsa"].metrics["all"], held["base"].metrics["all"], seen.metrics["all"]
    print(f"\nheld-out frames {cut}-{len(frames) - 1} (no model trained on them), {rate:.1f} kbps of payload:")
    print(f"  bicubic     {tuned['bicubic_psnr']:.2f} dB")
    print(f"  base alone  {cold['vsa_psnr']:.2f} dB ({cold['vsa_psnr'] - cold['bicubic_psnr']:+.2f} dB)")
    print(f"  fine-tuned  {tuned['vsa_psnr']:.2f} dB ({tuned['vsa_psnr'] - tuned['bicubic_psnr']:+.2f} dB)")
    print(f"frames 0-{cut - 1}, which it was fine-tuned on: vsa {trained['vsa_psnr']:.2f} dB against bicubic "
          f"{trained['bicubic_psnr']:.2f} dB ({trained['vsa_psnr'] - trained['bicubic_psnr']:+.2f} dB)")
    print(f"wrote {side_path} (original | bicubic | base | fine-tuned) and {os.path.join(args.out_dir, 'vsa.mp4')}")
    return 0

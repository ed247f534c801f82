"""`vsa pretrain`: a generic base model from many clips, on one machine or many.

The base learns from what a receiver really gets: every clip's frames,
downscaled at each scale it must serve and coded with the payload codec at
each crf (`vsa.common.examples`). The shipped base learned from h264 4:4:4;
streams in vp9 (the default payload since) are given to it at the h264 crf of
the same low-res PSNR (`framecodec.model_crf`). It is what `vsend` and `vsa encode` use with no
``--model``, and what `vsa train --base` fine-tunes.

Run it as it is, or under ``torchrun --nproc-per-node N`` (or across hosts):
each process then reads its own shard of the clips (clip i goes to rank
i mod N), DistributedDataParallel averages the gradients (gloo on CPUs, nccl
on GPUs), and every rank ends with the same weights; rank 0 writes them.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist

DEFAULT_SCALES = (2, 4, 8, 16)
DEFAULT_CODEC = "h264"
DEFAULT_CRFS = (20, 28, 36)
"""The scales and h264 crfs `vsa eval` sweeps (vp9 30, 42 and 54 are about the same qualities): a base must
serve all of them. h264 is the shipped base's recipe."""


def _init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local world size); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), dist.get_world_size(), local


def build_parser() -> argparse.ArgumentParser:
    from vsa.common.cliargs import fraction, positive_float, positive_int

    p = argparse.ArgumentParser(
        prog="vsa pretrain",
        description="Train a generic base model on many clips, on what a receiver gets: the frames downscaled at "
        "each scale and coded with the payload codec at each crf. Runs unchanged under `torchrun --nproc-per-node N` "
        "(each process reads its own shard of the clips). Writes OUTPUT (a bundle) and OUTPUT with the "
        "extension .vsam (its wire form: what would ship with vsa).",
        epilog="example: vsa pretrain ../shared/data/videos/*.mp4 -o base.pt --minutes 20",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="clips to learn from")
    p.add_argument("-o", "--output", default="base.pt", help="bundle to write (default: base.pt)")
    p.add_argument("--arch", default="sr", help="architecture (default: sr, the one that generalises)")
    p.add_argument("--preset", help="a preset of the architecture (default: its default)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=positive_float, help="time budget (default: 20)")
    budget.add_argument("--steps", type=positive_int, help="step budget: reproducible whatever the machine's load")
    p.add_argument("--scales", default=",".join(map(str, DEFAULT_SCALES)),
                   help=f"scales it must serve (default: {','.join(map(str, DEFAULT_SCALES))})")
    p.add_argument("--codec", choices=("h264", "vp9"), default=DEFAULT_CODEC,
                   help=f"payload codec the low-res frames are coded with (default: {DEFAULT_CODEC}, the shipped "
                   "base's recipe; the model is conditioned in h264 crf units either way)")
    p.add_argument("--crfs", default=",".join(map(str, DEFAULT_CRFS)),
                   help=f"crfs the low-res frames are coded at (default: {','.join(map(str, DEFAULT_CRFS))})")
    p.add_argument("--height", type=positive_int, default=256,
                   help="clips are read 256 high at their own aspect ratio (multiples of 64) (default: 256)")
    p.add_argument("--limit", type=positive_int, help="use at most N frames of each clip")
    p.add_argument("--every", type=positive_int, default=1, help="keep every N-th frame (default: 1)")
    p.add_argument("--holdout-tail", type=fraction, default=0.0, metavar="F",
                   help="leave the last fraction F of every clip out (the shipped base: 0.5, so that every "
                   "figure vsa reports on a clip's second half is on frames the base never saw) (default: 0)")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="peak learning rate (default: 2e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="default: auto (cuda, mps, cpu; each rank its own GPU)")
    return p


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise ValueError(f"--{what} {text!r} is not a comma-separated list of integers") from None
    if not values:
        raise ValueError(f"--{what} is empty")
    return values


def main(argv: list[str] | None = None) -> int:
    from vsa.common import bundle as bundle_mod
    from vsa.common import registry
    from vsa.common.device import pick_device
    from vsa.common.examples import Examples
    from vsa.common.video import default_working_size, read_video, VideoSource
    from vsa.sender.train import Trainer, TrainOptions, weights_digest

    args = build_parser().parse_args(argv)
    scales, crfs = _ints(args.scales, "scales"), _ints(args.crfs, "crfs")
    for path in args.videos:
        if not path.startswith("lavfi:") and not os.path.exists(path):
            raise FileNotFoundError(f"video not found: {path}")
    arch = registry.get(args.arch)
    config = arch.preset(args.preset)
    if "scales" in config.to_dict():
        config = arch.config_type.from_dict(dict(config.to_dict(), scales=list(scales)))
    rank, world, local = _init_distributed()
    try:
        if world > 1:
            # Two processes on two cores: one thread each, not two each fighting for both.
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
        if len(args.videos) < world:
            raise ValueError(f"{len(args.videos)} clips cannot be shared among {world} processes")
        mine = args.videos[rank::world]
        device = pick_device(args.device) if world == 1 or args.device != "auto" else (
            torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu"))
        clips, rates, names = [], [], []
        for path in mine:
            with VideoSource(path) as source:
                info = source.info
            size = default_working_size(info.width, info.height, args.height)
            frames, _, _ = read_video(path, size=size, limit=args.limit)
            keep = len(frames) - int(round(len(frames) * args.holdout_tail))
            clips.append(frames[:keep : args.every])
            rates.append(info.fps)
            names.append(info.name)
        print(f"rank {rank}/{world}: {len(mine)} clips ({', '.join(names)}), "
              f"{sum(len(c) for c in clips)} frames; scales {scales}, crfs {crfs}; on {device}", file=sys.stderr)
        examples = Examples(clips, rates, scales=scales, crfs=crfs, codec=args.codec)
        examples.prepare(progress=rank == 0)
        minutes = None if args.steps else (args.minutes or 20.0)
        options = TrainOptions(steps=args.steps, minutes=minutes, seed=args.seed, lr=args.lr)
        meta = {"pretrained": True, "sources": ",".join(sorted(os.path.basename(v) for v in args.videos))[:1000],
                "clips": len(args.videos), "holdout_tail": args.holdout_tail, "scales": list(scales),
                "crfs": list(crfs), "codec": args.codec, "processes": world,
                "preset": config.preset}
        trainer = Trainer(examples, config, options, device, meta=meta)
        bundle = trainer.run(on_checkpoint=lambda b: bundle_mod.save(b, args.output))
        print(f"rank {rank}/{world}: {trainer.step} steps, weights sha256 {weights_digest(trainer.model)}",
              file=sys.stderr)
        if rank == 0:
            bundle = bundle_mod.Bundle(bundle.config, bundle.state_dict, bundle.meta)  # no train state: a release
            wire = bundle_mod.to_wire(bundle)
            wire_path = os.path.splitext(args.output)[0] + ".vsam"
            with open(wire_path, "wb") as f:
                f.write(wire)
            print(f"saved {args.output} and {wire_path}: {trainer.step} steps in {trainer.elapsed:.0f} s, "
                  f"train PSNR {bundle.meta.get('train_psnr', float('nan')):.2f} dB; wire form "
                  f"{len(wire) / 1024:.0f} KiB, sha256 {bundle_mod.sha256(wire).hex()}")
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return 0

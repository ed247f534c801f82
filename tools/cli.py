"""`vsa`: the command line (train, encode, decode, demo, eval, bench).

Errors a user can cause (a missing file, a wrong model, a damaged `.vsa`)
print one clear line and exit with status 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from vsa.common.cliargs import EXIT_BAD_INPUT, UserError, render_size_arg, report_errors, require_extra
from vsa.common.cliargs import fraction as _fraction
from vsa.common.cliargs import positive_float as _positive_float
from vsa.common.cliargs import passes as _passes
from vsa.common.cliargs import positive_int as _positive_int
from vsa.common.cliargs import size_arg as _size
from vsa.sender.adapt_options import add_arguments as adapt_arguments

EVAL_MODULES = ("matplotlib", "bjontegaard")
"""What `vsa eval` needs beyond the core install (the ``eval`` extra): plots and BD-rate."""


BUILTIN = "builtin"
"""``vsa train --base`` with no path: the base shipped with vsa."""


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more positive integers")
    return values


def _frame_range(text: str) -> tuple[int, int]:
    try:
        first, end = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form A:B") from None
    if not 0 <= first < end:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= A < B")
    return first, end


# --- train ---------------------------------------------------------------------------------


def cmd_train_inrv(args: argparse.Namespace) -> int:
    from vsa.common import bundle as bundle_mod
    from vsa.common.device import pick_device
    from vsa.common.inrv import INRVConfig
    from vsa.common.video import read_video
    from vsa.sender.train_inrv import INRVTrainer, INRVTrainOptions

    if args.resume:
        raise UserError("--resume is not supported for --kind inrv yet")
    device = pick_device(args.device)
    size = args.size or (64, 64)
    frames, info, size = read_video(args.video, size=size, limit=args.limit, progress=True)
    train_count = len(frames) - int(round(len(frames) * args.holdout_tail))
    if train_count < 1:
        raise UserError(f"--holdout-tail {args.holdout_tail} leaves no frames to train on")
    config = INRVConfig(code_dim=args.code_dim, clip_frames=args.clip_frames)
    minutes = args.minutes if args.steps is None else None
    options = INRVTrainOptions(minutes=minutes, steps=args.steps, seed=args.seed)
    print(f"training INR-V (code {config.code_dim}, {config.clip_frames} frames per clip) on {train_count} of "
          f"{len(frames)} frames of {info.name} at {size[0]}x{size[1]}, on {device}", file=sys.stderr)
    trainer = INRVTrainer(frames[:train_count], config, options, device)
    model, codes = trainer.run()
    scores = trainer.clip_psnr()
    meta = {"source": info.name, "size": list(size), "fps": info.fps, "frames_total": len(frames),
            "frames_used": train_count, "holdout_tail": args.holdout_tail, "clips": len(codes),
            "train_psnr": sum(scores) / len(scores), "steps": trainer.step, "device": str(device)}
    bundle = bundle_mod.from_model(model, meta, extra={"codes.mu": codes})
    bundle_mod.save(bundle, args.output)
    wire = bundle_mod.to_wire(bundle)
    print(f"saved {args.output}: {trainer.step} steps, {len(codes)} clip codes, mean clip PSNR "
          f"{meta['train_psnr']:.2f} dB at {size[0]}x{size[1]}; wire form {len(wire) / 1024:.0f} KiB (int8 + zstd)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from vsa.common import bundle as bundle_mod
    from vsa.common import registry
    from vsa.common.device import pick_device
    from vsa.common.examples import Examples
    from vsa.common.video import read_video
    from vsa.sender.shipment import Shipment
    from vsa.sender.train import Trainer, TrainOptions

    base_wire = None
    if args.base is not None:
        from vsa.common.bases import load_base

        base_wire, base = load_base(None if args.base == BUILTIN else args.base)
        if args.arch not in (None, base.kind):
            raise UserError(f"--arch {args.arch}: the base is a {base.kind} model")
        args.arch = base.kind
    arch = registry.get(args.arch or "ae")
    if arch.payload == "codes":
        return cmd_train_inrv(args)
    device = pick_device(args.device)
    resume = None
    if args.resume:
        if base_wire is not None:
            raise UserError("--resume continues the bundle at --output, which remembers its base: drop --base")
        if not os.path.exists(args.output):
            raise UserError(f"--resume: {args.output} does not exist yet; train without --resume first")
        resume = bundle_mod.load(args.output)
        arch = resume.arch
    config = resume.config if resume else base.config if base_wire is not None else arch.preset(args.preset)
    objective = arch.check_objective(args.objective)
    size = args.size or (tuple(resume.meta["size"]) if resume and "size" in resume.meta else None)
    frames, info, size = read_video(args.video, size=size, limit=args.limit, progress=True)
    train_count = len(frames) - int(round(len(frames) * args.holdout_tail))
    if train_count < 1:
        raise UserError(f"--holdout-tail {args.holdout_tail} leaves no frames to train on")
    examples = Examples.single(frames[:train_count], info.fps, scales=args.scales, crfs=args.crfs, codec=args.codec)
    minutes = args.minutes if args.steps is None else None
    options = TrainOptions(steps=args.steps, minutes=minutes, objective=objective, seed=args.seed, lr=args.lr)
    meta = {
        "source": info.name, "size": list(size), "fps": info.fps, "frames_total": len(frames),
        "frames_used": train_count, "holdout_tail": args.holdout_tail, "preset": config.preset,
        "device": str(device),
    }
    start = f"from base {bundle_mod.sha256(base_wire).hex()[:12]}" if base_wire is not None else "from scratch"
    if resume is not None:
        start = "resuming"
    print(f"training a {arch.name} model ({config.preset}) {start} on {train_count} of {len(frames)} frames of "
          f"{info.name} at {size[0]}x{size[1]}, objective {objective}, on {device}", file=sys.stderr)
    if arch.name == "sr":
        print(f"  scales {', '.join(map(str, args.scales))}, {args.codec} crf {', '.join(map(str, examples.crfs))}: "
              "the settings it will be streamed at (--scales, --codec, --crfs)", file=sys.stderr)
        examples.prepare(progress=True)
    trainer = Trainer(examples, config, options, device, meta=meta, resume=resume, base_wire=base_wire)
    bundle = trainer.run(on_checkpoint=lambda b: bundle_mod.save(b, args.output))
    print(f"saved {args.output}: {trainer.step} steps in {trainer.elapsed:.0f} s, "
          f"train PSNR {bundle.meta.get('train_psnr', float('nan')):.2f} dB; "
          f"wire form: {Shipment.of(bundle).describe()}")
    return 0


# --- encode / decode -----------------------------------------------------------------------


def cmd_encode(args: argparse.Namespace) -> int:
    from vsa.sender import ladder
    from vsa.sender.inrv_stream import CodeSettings
    from vsa.sender.stream import StreamSettings
    from vsa.tools.filemode import encode_file

    settings = StreamSettings(scale=args.scale or 4, stride=args.stride or 1, codec=args.codec, crf=args.crf,
                              quality=args.quality, keyint=args.keyint, kbps=args.kbps or 0.0)
    codes = CodeSettings(codes=args.codes, code_format=args.code_format, invert_steps=args.invert_steps)
    payload = {"ae": "frames", "inrv": "codes"}.get(args.payload) if args.payload else None
    adapt = None
    if args.adapt:
        from vsa.sender.adapt_options import settings_from

        adapt = settings_from(args)
    report = encode_file(args.video, args.model, args.output, settings, size=args.size, limit=args.limit,
                         progress=True, codes=codes, payload=payload, adapt=adapt,
                         ladder=(bool(args.kbps) and args.scale is None, bool(args.kbps) and args.stride is None),
                         rungs=ladder.load_or_default(args.ladder))
    print(f"wrote {args.output}\n{report.summary()}")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from vsa.common.device import pick_device
    from vsa.tools.filemode import decode_file

    report = decode_file(args.input, args.output, iterations=args.iterations, output_fps=args.fps,
                         device=pick_device(args.device), reference=args.reference,
                         back_project=args.back_project, frame_range=args.score_frames, progress=True,
                         size=args.size)
    if report.frames and args.output:
        print(f"wrote {args.output}")
    print(report.summary())
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"frames": report.frames, "counts": report.counts, "fps": report.output_fps,
                       "payload_bytes": report.payload_bytes, "file_bytes": report.file_bytes,
                       "model_bytes": report.model_bytes, "metrics": report.metrics, "error": report.error}, f,
                      indent=2)
    if report.error:
        print(f"vsa decode: {args.input} is damaged: {report.error}"
              + (f" (decoded the {report.frames} frames before it)" if report.frames else ""), file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from vsa.tools import bench

    if args.which == "stream":
        from vsa.tools import bench_stream

        return bench_stream.main(args.rest)
    if args.which == "soak":
        from vsa.tools import soak

        return soak.main(args.rest)
    if args.which == "lossy":
        from vsa.tools import bench_lossy

        return bench_lossy.main(args.rest)
    if args.which == "web":
        require_extra(("aiohttp", "playwright"), "web,dev", "vsa bench web")
        from vsa.tools import bench_web

        return bench_web.main(args.rest)
    if args.which == "codecs" and "--curves" in args.rest:
        require_extra(("bjontegaard",), "eval", "vsa bench codecs --curves")
    return bench.main_codecs(args.rest) if args.which == "codecs" else bench.main(args.rest)


def cmd_fuzz(args: argparse.Namespace) -> int:
    from vsa.tools import fuzz

    return fuzz.main(args.rest)


def cmd_hostile(args: argparse.Namespace) -> int:
    from vsa.tools import hostile

    return hostile.main(args.rest)


def cmd_eval(args: argparse.Namespace) -> int:
    if not {"-h", "--help"} & set(args.rest):
        require_extra(EVAL_MODULES, "eval", "vsa eval")
    from vsa.tools import evaluate

    return evaluate.main(args.rest)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from vsa.tools import pretrain

    return pretrain.main(args.rest)


def cmd_compare(args: argparse.Namespace) -> int:
    from vsa.tools.compare import compare

    result = compare(args.output, args.reference, args.frames)
    print(result.summary())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.as_dict(), f, indent=2)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from vsa.tools.demo import run_demo

    return run_demo(args)


# --- parser ----------------------------------------------------------------------------------


OWN_PARSERS = {
    "pretrain": ("train a generic base model on many clips (also under torchrun)", cmd_pretrain),
    "eval": ("bitrate against quality: vsa vs x264, VP8, VP9, AV1", cmd_eval),
    "fuzz": ("feed every decoder of peer or file bytes generated inputs", cmd_fuzz),
    "hostile": ("hostile peers against a vrecv server, then an honest stream", cmd_hostile),
}
"""Commands with parsers of their own: (help, handler)."""


def build_parser() -> argparse.ArgumentParser:
    from vsa.common.device import DEVICE_CHOICES
    from vsa.common.framecodec import CODECS, DEFAULT_CODEC, DEFAULT_CRFS, DEFAULT_WEBP_QUALITY, INTER_CODECS
    from vsa.common import registry
    from vsa.protocol.codes import CODE_FORMATS
    from vsa.sender.inrv_stream import DEFAULT_INVERT_STEPS
    from vsa.sender.train import LEARNING_RATE

    parser = argparse.ArgumentParser(
        prog="vsa",
        description="vsa: a video codec built on video-specific autoencoders. Train a model on one video, "
        "send it once, then send sparse low-res frames that the receiver reprojects onto the video's manifold.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    archs = registry.names()
    presets = sorted({name for a in archs for name in registry.get(a).presets})
    objectives = sorted({o for a in archs for o in registry.get(a).objectives})
    p = sub.add_parser("train", help="train a model on one video, from scratch or from a base",
                       description="Train a model on the frames of VIDEO and save it as a model bundle: the paper's "
                       "video-specific autoencoder (--arch ae, the default, best on the video it learned), or "
                       "fine-tune the base that ships with vsa (--base: an sr model, for video like this one that "
                       "it has not seen; ships as a small delta). Checkpoints are written every minute; --resume "
                       "continues one.",
                       epilog="architectures: " + "; ".join(f"{a}: {registry.get(a).summary}" for a in archs))
    p.add_argument("video", metavar="VIDEO", help="a video file, lavfi:GRAPH or cameraN")
    p.add_argument("-o", "--output", default="ae.pt", help="model bundle to write (default: ae.pt)")
    p.add_argument("--arch", choices=archs, help="network architecture (default: ae; the base's with --base)")
    p.add_argument("--kind", dest="arch", choices=archs, help=argparse.SUPPRESS)  # the first release's name
    p.add_argument("--base", nargs="?", const=BUILTIN, metavar="PATH",
                   help="fine-tune from a base model with a fresh optimiser: the one shipped with vsa when PATH is "
                   "left out, or a bundle (.pt) or wire file (.vsam); the result ships as a delta against it")
    p.add_argument("--preset", choices=presets,
                   help="network size, per architecture: ae fast (k=8, real time on a 2-core CPU, the default), "
                   "large (k=16), paper (k=64, 34M parameters), tiny (k=4, for tests); sr: sr (24 channels, the "
                   "default), sr-wide (32: +0.2 dB, 1.6x the FLOPs), sr-tiny (8, for tests)")
    p.add_argument("--scales", type=_int_list, default=(4,), metavar="S,...",
                   help="sr: the stream scales to train for (default: 4, the streaming default)")
    p.add_argument("--codec", choices=INTER_CODECS, default=DEFAULT_CODEC,
                   help=f"sr: the payload codec to train for (default: {DEFAULT_CODEC}, the streaming default)")
    p.add_argument("--crfs", type=_int_list, default=(), metavar="Q,...",
                   help="sr: the payload crfs to train for (default: the codec's streaming default, "
                   + ", ".join(f"{c} {q}" for c, q in DEFAULT_CRFS.items()) + ")")
    p.add_argument("--size", type=_size, metavar="HxW",
                   help="working size, multiples of 64 (default: 256 high, source aspect)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=_positive_float, default=2.0, help="time budget (default: 2)")
    budget.add_argument("--steps", type=_positive_int, help="step budget, instead of --minutes")
    p.add_argument("--objective", choices=objectives,
                   help="ae: reconstruct, the paper's autoencoding loss (default; it measured best), or restore: map "
                   "degraded, upsampled low-res inputs to clean frames; sr: restore, from the coded low-res frames")
    p.add_argument("--holdout-tail", type=_fraction, default=0.0, metavar="F",
                   help="leave the last fraction F of the frames out of training (default: 0)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="default: auto (cuda, mps, cpu)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--lr", type=_positive_float, default=LEARNING_RATE,
                   help=f"peak learning rate (default: {LEARNING_RATE:g}; the paper's 2e-4 is too slow for minute budgets)")
    p.add_argument("--limit", type=_positive_int, help="use only the first N frames")
    p.add_argument("--resume", action="store_true", help="continue training the bundle at --output")
    p.add_argument("--code-dim", type=_positive_int, default=64, help="inrv: values per clip code (default: 64)")
    p.add_argument("--clip-frames", type=_positive_int, default=16, help="inrv: frames per clip (default: 16)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("encode", help="encode a video into a .vsa file",
                       description="Write a .vsa file: the stream header, the model once, then every STRIDE-th "
                       "frame downscaled by SCALE and coded as a low-res payload.")
    p.add_argument("video", metavar="VIDEO", help="a video file, lavfi:GRAPH or cameraN")
    p.add_argument("--model", help="model bundle from `vsa train` (default: the base shipped with vsa, which "
                   "works on any video and is never transferred)")
    p.add_argument("-o", "--output", required=True, help=".vsa file to write")
    p.add_argument("--scale", type=_positive_int,
                   help="spatial downscale factor (default: 4, or the ladder's choice for --kbps)")
    p.add_argument("--stride", type=_positive_int,
                   help="send every STRIDE-th frame (default: 1, or the ladder's choice for --kbps)")
    p.add_argument("--codec", choices=CODECS, default=DEFAULT_CODEC,
                   help=f"low-res payload codec (default: {DEFAULT_CODEC}, the smallest by measurement)")
    p.add_argument("--crf", type=int, help="vp9 (0-63) or h264 (0-51) quality, lower is better (default: "
                   + ", ".join(f"{c} {q}" for c, q in DEFAULT_CRFS.items()) + ")")
    p.add_argument("--kbps", type=_positive_float, metavar="N",
                   help="a target for the whole file (payload, headers, model, updates) instead of a quality: "
                   "the payload codec runs in CBR, re-aimed at each keyframe, and the scale and stride you do not "
                   "give come from the ladder measured by vsa eval (README, Rate control)")
    p.add_argument("--ladder", metavar="PATH", help="with --kbps: the ladder `vsa eval --ladder` wrote, instead of "
                   "the one measured on vsa's dev clips")
    p.add_argument("--quality", type=int, default=DEFAULT_WEBP_QUALITY,
                   help=f"webp quality 0-100 (default: {DEFAULT_WEBP_QUALITY})")
    p.add_argument("--keyint", type=_positive_int, default=60,
                   help="vp9, h264: sent frames between keyframes, where decoding can restart (default: 60)")
    p.add_argument("--size", type=_size, metavar="HxW", help="working size (default: the model's)")
    p.add_argument("--limit", type=_positive_int, help="encode only the first N frames")
    # The model's architecture decides the payload; the first release asked for it (--payload inrv).
    p.add_argument("--payload", choices=("ae", "inrv"), help=argparse.SUPPRESS)
    p.add_argument("--codes", choices=("seen", "invert"), default="seen",
                   help="inrv: seen sends the codes learned in training (the same video); invert finds each "
                   "clip's code by optimisation, warm-started from the previous clip (default: seen)")
    p.add_argument("--code-format", choices=CODE_FORMATS, default="f16",
                   help="inrv: code quantisation, f16 (2 bytes per value) or i8 (1 byte plus a scale) (default: f16)")
    p.add_argument("--invert-steps", type=_positive_int, default=DEFAULT_INVERT_STEPS,
                   help=f"inrv --codes invert: Adam steps per clip (default: {DEFAULT_INVERT_STEPS})")
    adapt_arguments(p, live=False)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="decode a .vsa file to mp4",
                       description="Reconstruct a .vsa file: reproject each sent frame onto the video's manifold "
                       "and interpolate latent codes for the frames in between.")
    p.add_argument("input", metavar="FILE.vsa")
    p.add_argument("-o", "--output", help="video to write: .mp4 for players (H.264 4:2:0, about 1 dB below what vsa "
                   "reconstructed), .mkv for an exact copy (lossless FFV1) that other tools can score "
                   "(default: none, just report)")
    p.add_argument("--iterations", type=_passes,
                   help="reprojection passes (default: the model's: 2 for ae, 1 for sr)")
    p.add_argument("--fps", type=_positive_float,
                   help="output frame rate; latent interpolation makes any rate (default: the source's)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="default: auto (cuda, mps, cpu)")
    p.add_argument("--reference", metavar="VIDEO",
                   help="original video: also print mean PSNR and SSIM of vsa and of bicubic upscaling")
    p.add_argument("--back-project", choices=["auto", "always", "never"],
                   help="back-project the reconstruction onto the received low-res frame: auto does it only for "
                   "frames the model does not already explain; never is the paper's plain eq. 6 (default: the "
                   "model's: auto for ae, never for sr, whose output already agrees with the received frame)")
    p.add_argument("--score-frames", type=_frame_range, metavar="A:B",
                   help="with --reference, score only source frames A..B-1 (e.g. a held-out tail)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--size", type=render_size_arg, metavar="HxW",
                   help="INR-V streams: render at this size (any size; default: the training size)")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("demo", help="train, encode and decode the bundled clip; write a side-by-side video",
                       description="The one-command tour: trains (or reuses) a model on the bundled clip, "
                       "encodes it at --scale/--stride, decodes it, prints kbps and PSNR against bicubic, and writes "
                       "original | bicubic | vsa side by side.")
    p.add_argument("--video", help="clip to use (default: the bundled person_signing_webcam.mp4)")
    p.add_argument("--out-dir", default="demo-out", help="where to write results (default: demo-out)")
    p.add_argument("--minutes", type=_positive_float, default=2.0, help="training budget (default: 2)")
    p.add_argument("--scale", type=_positive_int, default=4, help="default: 4")
    p.add_argument("--stride", type=_positive_int, default=2, help="default: 2")
    p.add_argument("--size", type=_size, default=(192, 256), metavar="HxW", help="default: 192x256")
    p.add_argument("--retrain", action="store_true", help="ignore a cached model")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="default: auto")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("compare", help="score a received or decoded video against its source",
                       description="Mean PSNR and SSIM of a video (e.g. `vrecv --output`) against its source, read "
                       "at the video's size. An output at k times the source's frame rate is scored on every k-th "
                       "frame.")
    p.add_argument("output", metavar="VIDEO", help="the received or decoded video")
    p.add_argument("reference", metavar="SOURCE", help="the original")
    p.add_argument("--frames", type=_frame_range, metavar="A:B", help="score only source frames A..B-1")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.set_defaults(func=cmd_compare)

    # Commands with parsers of their own (many flags): their arguments are passed on untouched.
    for name, (help_text, func) in OWN_PARSERS.items():
        p = sub.add_parser(name, help=f"{help_text}; `vsa {name} --help`", add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=func)

    p = sub.add_parser("bench", help="benchmarks: `vsa bench model|codecs|stream|lossy|soak|web --help`",
                       description="Benchmarks that print figures and write JSON.")
    p.add_argument("which", choices=["model", "codecs", "stream", "lossy", "soak", "web"],
                   help="model: size and receiver speed of each preset; codecs: bytes per low-res frame; "
                   "stream: live receiver fps and loopback latency; lossy: the 60 kbps link with 5%% loss, two "
                   "processes, run after run beside a baseline; soak: a long looped stream, its memory, "
                   "descriptors and threads over time; web: the browser viewer in headless Chromium")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from vsa.common.bundle import BundleError
    from vsa.common.framecodec import FrameCodecError
    from vsa.common.video import VideoError
    from vsa.protocol.errors import ProtocolError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in OWN_PARSERS:
        # argparse's REMAINDER would refuse a leading --flag: hand these their arguments directly.
        args = argparse.Namespace(command=argv[0], rest=argv[1:], func=OWN_PARSERS[argv[0]][1])
    else:
        args = build_parser().parse_args(argv)
    errors = (VideoError, BundleError, ProtocolError, FrameCodecError, FileNotFoundError, ValueError)
    return report_errors(f"vsa {args.command}", errors, lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())

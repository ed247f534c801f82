"""`vsa bench stream`: receiver throughput and loopback latency of live streaming.

1. Throughput: the receiver's whole per-frame path (h264 decode, reprojection
   with 1, 2 and 3 passes, latent interpolation, back-projection) on a real
   clip at 256x512, one frame at a time as it runs live, in output frames
   per second. Baseline in the same run: h264 decode plus bicubic upscaling.
2. Latency: sender and receiver in one process over loopback WebRTC, the
   clip played in real time; capture-to-display latency (median, p95), the
   longest display gap, and with ``--loss`` the same under simulated media
   loss, without and with forward error correction (each frame sent again
   with the next). With ``--model`` the output is also scored (PSNR) against
   the source. With ``--adapt`` the lossless run is repeated with the sender
   adapting online (its trainer thread running beside both peers), and the
   model updates the receiver applied are counted.

Without ``--model`` the base shipped with vsa streams (the sr architecture:
what a camera gets with no training); ``--model random-fast`` is the paper's
autoencoder at the fast preset with random weights (speed and latency do
not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vsa.common import bundle as bundle_mod
from vsa.common.assets import DEFAULT_CLIP
from vsa.common.cliargs import link_spec, non_negative_float
from vsa.common.framecodec import FrameDecoder
from vsa.common.resample import to_tensor, upscale
from vsa.protocol.messages import Frame, Hello
from vsa.common.video import parse_size, read_video
from vsa.receiver.stream import StreamDecoder
from vsa.sender.adapt_options import AdaptSettings
from vsa.sender.shipment import Shipment, load_model
from vsa.sender.stream import StreamEncoder, StreamSettings
from vsa.tools.bench_trace import DEFAULT_TRACE
from vsa.tools.compare import compare

RANDOM_FAST = "random-fast"


def _messages(shipment: Shipment, frames, fps: float, stride: int) -> list:
    size = frames.shape[1:3]
    encoder = StreamEncoder(shipment, size, fps, StreamSettings(scale=4, stride=stride), frame_count=len(frames))
    msgs = encoder.start()
    for i, rgb in enumerate(frames):
        msgs += encoder.push(i, rgb, last=i == len(frames) - 1)
    return msgs + encoder.finish()


def _timed_feed(decoder, msgs: list) -> float:
    """Feed a whole stream; time the second half (the first warms up threads and caches)."""
    frames_at = [i for i, m in enumerate(msgs) if isinstance(m, Frame)]
    split = frames_at[len(frames_at) // 2]
    out = 0
    for m in msgs[:split]:
        decoder(m)
    start = time.perf_counter()
    for m in msgs[split:]:
        out += decoder(m)
    return out / (time.perf_counter() - start)


def throughput(shipment: Shipment, frames, fps: float, stride: int, iterations: int) -> float:
    """Output frames per second of the live receiver path (one frame at a time)."""
    msgs = _messages(shipment, frames, fps, stride)
    decoder = StreamDecoder(device="cpu", iterations=iterations, batch=1)
    return _timed_feed(lambda m: len(decoder.feed(m)), msgs)


def bicubic_throughput(shipment: Shipment, frames, fps: float, stride: int) -> float:
    """The floor: the same payload decode, then bicubic upscaling of every output frame."""
    msgs = _messages(shipment, frames, fps, stride)
    h, w = frames.shape[1:3]
    hello = next(m for m in msgs if isinstance(m, Hello))
    payloads = FrameDecoder(hello.codec, w // hello.scale, h // hello.scale)

    def feed(m) -> int:
        if not isinstance(m, Frame):
            return 0
        low = to_tensor(payloads.decode(m.payload, m.keyframe))
        for _ in range(stride):
            upscale(low, (h, w))
        return stride

    return _timed_feed(feed, msgs)


async def _live(model_path: str | None, clip: str, size, stride: int, loss: float, output: str | None,
                fec: str = "auto", adapt: bool = False) -> dict:
    from vsa.common import webrtc
    from vsa.receiver.live import ReceiverOptions, serve
    from vsa.sender.live import LiveSender, SenderOptions

    server = webrtc.SignalingServer("127.0.0.1", 0)
    await server.start()
    with tempfile.TemporaryDirectory() as cache:
        from vsa.receiver.cache import ModelCache

        options = ReceiverOptions(listen=("127.0.0.1", server.port), cache=ModelCache(cache), output=output)
        receiving = asyncio.create_task(serve(options, server=server))
        sender = LiveSender(model_path, clip, SenderOptions(
            connect=("127.0.0.1", server.port), bind="127.0.0.1", size=size, drop_media=loss, seed=1, fec=fec,
            settings=StreamSettings(scale=4, stride=stride), adapt=AdaptSettings() if adapt else None))
        await sender.run()
        (report,) = await asyncio.wait_for(receiving, 60)
    await server.close()
    gaps = sorted(report.display_gaps_ms)
    return {
        "stride": stride, "loss": loss, "fec": fec, "frames": report.frames, "counts": report.counts, "lost": report.lost,
        "latency_median_ms": round(report.latency(0.5), 1), "latency_p95_ms": round(report.latency(0.95), 1),
        "longest_gap_ms": round(gaps[-1], 1) if gaps else None,
        "gaps_over_200ms": sum(g > 200 for g in gaps), "shown_late": report.shown_late,
        "media_kbps": round(sender.report.media_bytes * 8 / 1000 / max(sender.report.seconds, 1e-9), 1),
        "passes_used": report.iterations_used, "adapt": adapt,
        "updates_sent": sender.report.updates, "updates_applied": report.updates_applied,
        "updates_refused": report.updates_refused,
        "update_kbps": round(report.update_bytes * 8 / 1000 / max(report.seconds, 1e-9), 2),
    }


def _trace_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from vsa.common.link import LinkSpec
    from vsa.tools.bench_trace import parse_trace, plot, psnr_per_frame, run_trace, summarise

    try:
        trace = parse_trace(args.trace or DEFAULT_TRACE)
    except ValueError as exc:
        parser.error(str(exc))
    size = parse_size(args.size) if args.size != "256x512" else (256, 320)
    fps = read_video(args.video, size=size, limit=1)[1].fps
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "trace.mkv")
        result = asyncio.run(run_trace(args.model, args.video, size, args.kbps, args.link or LinkSpec(), trace, out,
                                       fps, args.stride, args.transit_target))
        figures = summarise(result, trace, psnr_per_frame(out, args.video, size), fps)
    figures.update(trace=args.trace or DEFAULT_TRACE, link=str(args.link), kbps=args.kbps, size=list(size),
                   video=Path(args.video).name)
    for row in figures["seconds"]:
        print(f"t {row['t']:5.1f} s  link {row['link_kbps']:6.1f}  sent {row['sent_kbps']:6.1f}  target "
              f"{row['target_kbps'] if row['target_kbps'] is not None else '-':>6}  latency {row.get('latency_ms', '-')} ms"
              f"  queue delay {row.get('queue_delay_ms', '-')} ms  link queue {row.get('link_queue_bytes', '-')} B"
              f"  channel {row.get('sender_buffered_bytes', '-')} B  into link {row.get('into_link_kbps', '-')} kbps"
              f" in {row.get('into_link_datagrams', '-')} datagrams")
    print(f"events: {figures['events']}")
    print(f"segments: {figures['segments']}")
    print(f"frames {figures['frames']}, lost {figures['lost']}, skipped {figures['skipped_frames']}, latency median "
          f"{figures['latency_median_ms']} ms, p95 {figures['latency_p95_ms']} ms, longest display gap "
          f"{figures['longest_gap_ms']} ms")
    Path(args.output).write_text(json.dumps(figures, indent=2))
    try:
        plot(figures, args.plot)
        print(f"wrote {args.output} and {args.plot}")
    except ImportError:
        print(f"wrote {args.output} (no plot: pip install 'vsa[eval]' for matplotlib)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vsa bench stream", description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_CLIP), help="default: the bundled clip")
    parser.add_argument("--model", help=f"a trained bundle, or {RANDOM_FAST} (the autoencoder's fast preset with "
                        "random weights; no PSNR) (default: the base shipped with vsa)")
    parser.add_argument("--size", default="256x512", help="working size HxW (default: 256x512)")
    parser.add_argument("--strides", default="1,2", help="strides for the latency runs (default: 1,2)")
    parser.add_argument("--loss", type=float, default=0.1, help="media loss for the lossy run (default: 0.1)")
    parser.add_argument("--limit", type=int, default=120, help="frames for the throughput test (default: 120)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="throughput runs per figure; the median is reported, since this VM's timings vary "
                        "by about 30%% from run to run (default: 3)")
    parser.add_argument("--adapt", action="store_true",
                        help="also stream with the sender adapting online (lossless runs), beside the same run without")
    trace = parser.add_argument_group("a bandwidth trace (instead of the runs above)")
    trace.add_argument("--link", type=link_spec, metavar="SPEC",
                       help='stream under --kbps through an emulated link, e.g. "delay=20ms,queue=32k", whose rate '
                       f"follows --trace (README, Rate control)")
    trace.add_argument("--trace", default=None, metavar="RATE:S,...",
                       help=f"link rates and how long each lasts (default: {DEFAULT_TRACE})")
    trace.add_argument("--kbps", type=float, default=300.0, help="the sender's target and ceiling (default: 300)")
    trace.add_argument("--stride", type=int, help="fix the stride (default: the ladder's)")
    trace.add_argument("--transit-target", type=non_negative_float, default=None, metavar="MS",
                       help="the sender's transit target (`vsend --transit-target`; default: its own; 0: off)")
    trace.add_argument("--plot", default="bench_trace.png", help="the trace's plot (default: bench_trace.png)")
    parser.add_argument("-o", "--output", default="bench_stream.json")
    args = parser.parse_args(argv)
    if args.link is not None or args.trace is not None:
        return _trace_main(args, parser)
    size = parse_size(args.size)
    frames, info, _ = read_video(args.video, size=size, limit=args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if model_path == RANDOM_FAST:
            torch.manual_seed(0)
            from vsa.common import registry

            arch = registry.get("ae")
            model_path = str(Path(tmp) / "random_fast.pt")
            bundle_mod.save(bundle_mod.from_model(arch.build(arch.preset("fast")), {"size": list(size)}), model_path)
        bundle, shipment = load_model(model_path)
        scored = args.model != RANDOM_FAST
        results: dict = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                                     "threads": torch.get_num_threads()},
                         "model": {"path": args.model or "base", "arch": bundle.kind, "preset": bundle.config.preset},
                         "size": args.size, "video": Path(args.video).name, "throughput": [], "live": []}
        for stride in (1, 2):
            base = statistics.median(bicubic_throughput(shipment, frames, info.fps, stride) for _ in range(args.repeat))
            row = {"stride": stride, "bicubic_fps": round(base, 1)}
            for passes in (1, 2, 3):
                runs = [throughput(shipment, frames, info.fps, stride, passes) for _ in range(args.repeat)]
                row[f"passes_{passes}_fps"] = round(statistics.median(runs), 1)
                row[f"passes_{passes}_fps_runs"] = [round(r, 1) for r in runs]
            results["throughput"].append(row)
            print(f"receiver at {args.size}, stride {stride} (median of {args.repeat}): " + ", ".join(
                f"{k} {v}" for k, v in row.items() if k != "stride" and not k.endswith("_runs")))
        live_size = size
        if scored and isinstance(bundle.meta.get("size"), (list, tuple)):
            live_size = tuple(bundle.meta["size"])  # score at the size the model was trained for
        for stride in (int(s) for s in args.strides.split(",")):
            runs = [(0.0, "auto", False), (args.loss, "off", False), (args.loss, "on", False)]
            if args.adapt and bundle.arch.adapts:
                runs.insert(1, (0.0, "auto", True))
            for loss, fec, adapt in runs:
                out = str(Path(tmp) / f"live_{stride}_{loss}_{fec}_{adapt}.mkv") if scored else None
                row = asyncio.run(_live(model_path, args.video, live_size, stride, loss, out, fec, adapt))
                row["size"] = "x".join(map(str, live_size))
                if out is not None:
                    row["psnr"] = round(compare(out, args.video).psnr, 2)
                results["live"].append(row)
                print(f"live stride {stride}, loss {loss:.0%}, fec {fec}{', adapting' if adapt else ''}: " + ", ".join(
                    f"{k} {v}" for k, v in row.items() if k not in ("stride", "loss", "fec", "adapt")))
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.output}")
    return 0

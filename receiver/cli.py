"""`vrecv`: receive a live vsa stream, reconstruct it in real time, show and/or record it."""

from __future__ import annotations

import argparse
import asyncio
import sys

from vsa.common.cliargs import (
    UserError, address, passes, positive_float, positive_int, report_errors, render_size_arg, setup_logging,
)


def on_time_pct(text: str) -> int:
    """`--on-time`: a whole percentage from 50 to 100 (below a half, at stride 2 the clock would not wait for the
    frames interpolated toward the next sent one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole percentage, got {text!r}") from None
    if not 50 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be from 50 to 100, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from vsa.common.device import DEVICE_CHOICES, add_threads_argument
    from vsa.common.webrtc import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV
    from vsa.receiver.playout import ON_TIME
    from vsa.receiver.web import DEFAULT_WEB

    p = argparse.ArgumentParser(
        prog="vrecv",
        description="Wait for a `vsend`, receive its model once (or find it in the cache), then reconstruct "
        "the sparse low-res frames it streams: reprojection for detail, latent interpolation for the frames "
        "in between, concealment for lost ones. An INR-V stream (one code per clip) is rendered at --size "
        "and --fps instead.",
        epilog="example: vrecv --display    (then, in another terminal: vsend --model ae.pt camera0)",
    )
    p.add_argument("--listen", type=address, default=(DEFAULT_HOST, DEFAULT_PORT), metavar="HOST:PORT",
                   help=f"signaling address (default: {DEFAULT_HOST}:{DEFAULT_PORT}); anything but loopback "
                   "needs --token")
    p.add_argument("--bind", metavar="ADDR", help="gather ICE host candidates on this address only "
                   "(default: the --listen host when it is loopback, else every interface)")
    p.add_argument("--token", help=f"shared secret a sender must present (default: ${TOKEN_ENV})")
    p.add_argument("--display", action="store_true", help="show the video in a window (needs a screen)")
    p.add_argument("--window-scale", type=positive_float, default=1.0, metavar="F",
                   help="--display: the window's size over the video's (default: 1; 2 doubles a small stream)")
    p.add_argument("--web", nargs="?", type=address, const=DEFAULT_WEB, metavar="HOST:PORT",
                   help="also show the video in web browsers: serve a viewer page on this address (default: "
                   f"{DEFAULT_WEB[0]}:{DEFAULT_WEB[1]}); open the URL it prints. Beyond loopback it needs --token")
    p.add_argument("--output", metavar="OUT.mp4", help="also write the reconstructed video: .mp4 for players, .mkv "
                   "for a lossless copy (FFV1) to score")
    p.add_argument("--fps", type=positive_float, help="output frame rate (default: the source's)")
    p.add_argument("--size", type=render_size_arg, metavar="HxW",
                   help="INR-V streams: render at this size (default: the sender's); autoencoder streams play "
                   "at their own")
    p.add_argument("--iterations", type=passes,
                   help="reprojection passes; fewer are used while the receiver cannot keep up (default: the "
                   "model's: 2 for the ae autoencoder, 1 for the sr network)")
    p.add_argument("--fixed-iterations", action="store_true", help="never drop reprojection passes")
    p.add_argument("--back-project", choices=["auto", "always", "never"],
                   help="see `vsa decode --help` (default: the model's: auto for ae, never for sr)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="default: auto (cuda, mps, cpu)")
    add_threads_argument(p)
    p.add_argument("--jitter", type=positive_float, default=2.0, metavar="FRAMES",
                   help="how long a missing frame is waited for before it counts as lost (default: 2 frames, "
                   "or as long as asking for it again takes, up to 0.5 s)")
    p.add_argument("--on-time", type=on_time_pct, default=round(ON_TIME * 100), metavar="PCT",
                   help="the share of frames the output clock waits for; the rest are shown late, as soon as they "
                   f"are ready (default: {round(ON_TIME * 100)}; higher is smoother and later: 90 waits for the "
                   "encoder's periodic large frames, 100 for the slowest)")
    p.add_argument("--no-repair", action="store_true",
                   help="do not ask the sender for a lost frame again: ask for a keyframe at once (for paths whose "
                   "round trip is longer than a keyframe takes to arrive)")
    p.add_argument("--cache-dir", metavar="DIR", help="where received models are kept by hash "
                   "(default: ~/.cache/vsa/models)")
    p.add_argument("--no-cache", action="store_true", help="neither use nor fill the model cache")
    p.add_argument("--sessions", type=int, metavar="N",
                   help="streams to receive before exiting; 0 = keep listening (default: 1, or 0 with --web)")
    p.add_argument("--idle-timeout", type=positive_float, default=10.0,
                   help="end a stream when nothing arrives for this many seconds (default: 10)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: aiortc too)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")
    return p


def main(argv: list[str] | None = None) -> int:
    from vsa.common.device import pick_device, set_threads
    from vsa.common.video import VideoError
    from vsa.common.webrtc import SignalingError, install_uvloop, token_from_env
    from vsa.receiver.cache import ModelCache
    from vsa.common.webpage import WebError
    from vsa.receiver.display import DisplayError, open_display
    from vsa.receiver.live import ReceiverOptions

    args = build_parser().parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)

    def run() -> int:
        set_threads(args.threads)
        if args.sessions is None:
            # A page people watch should outlive one stream, unless the stream is being recorded.
            args.sessions = 0 if args.web and not args.output else 1
        if args.sessions < 0:
            raise UserError("--sessions must be 0 (forever) or more")
        if args.output and args.sessions != 1:
            raise UserError("--output records one stream: use it with --sessions 1")
        options = ReceiverOptions(
            listen=args.listen, token=token_from_env(args.token), bind=args.bind, device=pick_device(args.device),
            iterations=args.iterations, back_project=args.back_project, fps=args.fps, size=args.size,
            output=args.output,
            jitter_frames=args.jitter, on_time=args.on_time / 100, repair=not args.no_repair,
            cache=None if args.no_cache else ModelCache(args.cache_dir),
            adaptive=not args.fixed_iterations, idle_timeout=args.idle_timeout, with_baseline=bool(args.web),
        )
        display = open_display(scale=args.window_scale) if args.display else None
        try:
            install_uvloop()
            on_stream = getattr(display, "prepare", None) if display else None  # the threaded window opens early
            reports = asyncio.run(_serve(options, args, display, on_stream))
        finally:
            if display is not None:
                display.close()
        for report in reports:
            print(report.summary())
        return 1 if any(r.error for r in reports) else 0

    return report_errors("vrecv", (VideoError, SignalingError, DisplayError, WebError, ValueError), run)


async def _serve(options, args: argparse.Namespace, display, on_stream) -> list:
    """`serve`, with the window and the web viewer (if asked for) as the places frames are shown."""
    from vsa.receiver.live import serve
    from vsa.receiver.web import Viewer

    viewer = None
    if args.web:
        viewer = Viewer(*args.web, token=options.token, bind=args.bind)
        await viewer.start()
        print(f"vrecv: watch at {viewer.url}", flush=True)
    shows = []
    if display is not None:
        shows.append(lambda out, overlay: display.show(out.frame, overlay))
    if viewer is not None:
        shows.append(viewer.publish)

    def on_display(out, overlay) -> None:
        for show in shows:
            show(out, overlay)

    try:
        return await serve(options, sessions=args.sessions, on_display=on_display if shows else None,
                           on_stream=on_stream)
    finally:
        if viewer is not None:
            await viewer.close()


if __name__ == "__main__":
    sys.exit(main())

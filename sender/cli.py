"""`vsend`: stream a video or camera to a `vrecv` over WebRTC data channels."""

from __future__ import annotations

import argparse
import asyncio
import sys

from vsa.common.cliargs import (
    UserError, address, fraction, link_spec, non_negative_float, positive_float, positive_int, report_errors,
    setup_logging, size_arg,
)
from vsa.sender.ladder import DEFAULT_LATENCY_MS
from vsa.sender.adapt_options import add_arguments as add_adapt_arguments


def build_parser() -> argparse.ArgumentParser:
    from vsa.common.device import add_threads_argument
    from vsa.common.framecodec import CODECS, DEFAULT_CODEC, DEFAULT_CRFS
    from vsa.common.webrtc import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV
    from vsa.sender.web import DEFAULT_WEB

    from vsa.protocol.codes import CODE_FORMATS
    from vsa.sender.inrv_stream import CODE_SOURCES, DEFAULT_INVERT_STEPS

    p = argparse.ArgumentParser(
        prog="vsend",
        description="Stream sparse low-res frames over WebRTC data channels; the receiver reconstructs them with "
        "a model. With no --model it uses the base shipped with vsa, which both ends have, so a camera streams "
        "from its first frame. With a model from `vsa train` (a video-specific autoencoder, or a base "
        "fine-tuned on footage like this) it ships the model, or its delta, once first. Start `vrecv` first "
        "(vsend retries until it is up). Given an INR-V model (`vsa train --arch inrv`), it streams one code "
        "per clip instead.",
        epilog="examples: vsend camera0; vsend --model ae.pt clip.mp4; vsend --web    (then watch with: vrecv "
        "--display, or vrecv --web)",
    )
    p.add_argument("source", metavar="SOURCE", nargs="?", help="a video file (played at its own frame rate), "
                   "lavfi:GRAPH, or cameraN")
    p.add_argument("--web", nargs="?", type=address, const=DEFAULT_WEB, metavar="HOST:PORT",
                   help="instead of SOURCE, stream a web browser's camera: serve a page on this address (default: "
                   f"{DEFAULT_WEB[0]}:{DEFAULT_WEB[1]}), open the URL it prints and allow the camera. Beyond loopback "
                   "it needs --token")
    p.add_argument("--model", help="model bundle from `vsa train` (default: the base shipped with vsa: it works "
                   "on video it has never seen, and the receiver already has it)")
    p.add_argument("--connect", type=address, default=(DEFAULT_HOST, DEFAULT_PORT), metavar="HOST:PORT",
                   help=f"the receiver's signaling address (default: {DEFAULT_HOST}:{DEFAULT_PORT})")
    p.add_argument("--bind", metavar="ADDR", help="gather ICE host candidates on this address only "
                   "(default: the --connect host when it is loopback, else every interface)")
    p.add_argument("--token", help=f"shared secret the receiver asks for (default: ${TOKEN_ENV})")
    p.add_argument("--scale", type=positive_int,
                   help="spatial downscale factor (default: 4, or the ladder's choice for --kbps)")
    p.add_argument("--stride", type=positive_int, help="send every STRIDE-th frame; the receiver interpolates the "
                   "rest (default: 2, or the ladder's choice for --kbps)")
    p.add_argument("--codec", choices=CODECS, default=DEFAULT_CODEC, help=f"low-res payload codec (default: "
                   f"{DEFAULT_CODEC})")
    p.add_argument("--crf", type=int, help="vp9 (0-63) or h264 (0-51) quality, lower is better (default: "
                   + ", ".join(f"{c} {q}" for c, q in DEFAULT_CRFS.items()) + ")")
    p.add_argument("--kbps", type=positive_float, metavar="N",
                   help="a target for the whole stream (payload, headers, FEC, model updates, and the model spread "
                   "over a minute) instead of a quality: each group of pictures gets the crf that keeps to it, and "
                   "the scale and stride you do not give come from the ladder measured by vsa eval")
    p.add_argument("--keyint", type=positive_int, default=60,
                   help="vp9, h264: sent frames between keyframes (default: 60; lost frames also trigger one; "
                        "under --kbps a file's groups are at most 2 s, and a live stream's end when its quality "
                        "must change, at most 20 s apart)")
    p.add_argument("--size", type=size_arg,
                   metavar="HxW", help="working size (default: the model's; INR-V streams always use the model's)")
    add_threads_argument(p)
    inrv = p.add_argument_group("INR-V models")
    inrv.add_argument("--codes", choices=CODE_SOURCES, default="auto",
                      help="auto (default): the codes learned in training while SOURCE is the training video, "
                      "inversion otherwise; seen: learned codes only; invert: always invert")
    inrv.add_argument("--code-format", choices=CODE_FORMATS, default="f16",
                      help="code quantisation (default: f16; i8 halves the payload)")
    inrv.add_argument("--invert-steps", type=positive_int, default=DEFAULT_INVERT_STEPS,
                      help=f"Adam steps per clip at most (default: {DEFAULT_INVERT_STEPS})")
    inrv.add_argument("--invert-seconds", type=positive_float, metavar="S",
                      help="time budget per clip's inversion (default: 3/4 of a clip's duration, to keep up)")
    p.add_argument("--loop", action="store_true", help="play a file again and again")
    p.add_argument("--reconnect", action="store_true",
                   help="if the receiver goes away mid-stream, connect again (retrying for --timeout) and go on: "
                   "a restarted vrecv has the model in its cache, so nothing is sent twice")
    p.add_argument("--record", metavar="OUT.vsa", help="also write the stream as sent to a .vsa file, model "
                   "included, which `vsa decode` plays (to check a receiver, or to keep a call)")
    p.add_argument("--limit", type=positive_int, help="stop after N source frames")
    p.add_argument("--timeout", type=positive_float, default=30.0,
                   help="seconds to wait for the receiver (connecting, loading the model) (default: 30)")
    p.add_argument("--fec", choices=("auto", "on", "off"), default="auto",
                   help="forward error correction: send each frame's datagrams twice, 15 ms apart, so a frame "
                   "lost once costs nothing visible, at twice the media rate. auto (default): for 10 s after the "
                   "receiver reports a loss")
    p.add_argument("--ladder", metavar="PATH", help="with --kbps: the ladder `vsa eval --ladder` wrote, instead "
                   "of the one measured on vsa's dev clips")
    p.add_argument("--latency", type=non_negative_float, default=DEFAULT_LATENCY_MS, metavar="MS",
                   help="with --kbps: the latency the ladder keeps to; a stride that waits longer for the next "
                   "sent frame is not taken (default: 150 ms, stride 2 at 30 fps; 0: any stride)")
    p.add_argument("--transit-target", type=non_negative_float, default=None, metavar="MS",
                   help="with --kbps: how long the frames may take on the path (the queue ahead of each and its own "
                   "length on the link, at the receiver's 75th percentile); over it two reports running, the target "
                   "shrinks by 8%% a report (default: what --latency leaves the path, after 50 ms of coding and "
                   "reconstruction and the stride's wait for the next sent frame: 67 ms at stride 2 and 30 fps; "
                   "0: off, only a growing or standing queue counts)")
    p.add_argument("--link", type=link_spec, metavar="SPEC",
                   help='send and receive through an emulated link, e.g. "rate=100k,delay=40ms,jitter=5ms,loss=2%%,'
                   'queue=32k" (both directions; every datagram of the connection, so SCTP sees it too)')
    p.add_argument("--simulate-loss", type=fraction, default=0.0, metavar="P",
                   help="testing: drop a fraction P of media datagrams before they are sent")
    p.add_argument("--seed", type=int, default=0, help="seed for --simulate-loss (default: 0)")
    adapt = p.add_argument_group("online adaptation")
    add_adapt_arguments(adapt, live=True)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: aiortc too)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")
    return p


def main(argv: list[str] | None = None) -> int:
    from vsa.common.bundle import BundleError
    from vsa.common.device import set_threads
    from vsa.common.video import VideoError
    from vsa.common.webrtc import SignalingError, install_uvloop, token_from_env
    from vsa.sender.inrv_stream import CodeSettings
    from vsa.sender.adapt_options import settings_from
    from vsa.sender.live import LiveSender, SenderOptions
    from vsa.sender import ladder as ladder_mod
    from vsa.sender.stream import StreamSettings
    from vsa.common.webpage import WebError

    args = build_parser().parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)

    def run() -> int:
        set_threads(args.threads)
        if (args.source is None) == (args.web is None):
            raise UserError("give a SOURCE (a file, lavfi:GRAPH or cameraN) or --web (a browser's camera), one of them")
        if args.reconnect and args.record:
            raise UserError("--record writes one session; use it without --reconnect")
        if args.web and args.loop:
            raise UserError("--loop plays a file again; a browser's camera has no end to loop from")
        kbps = args.kbps or 0.0
        settings = StreamSettings(scale=args.scale or 4, stride=args.stride or 2, codec=args.codec, crf=args.crf,
                                  keyint=args.keyint, kbps=kbps)
        codes = CodeSettings(codes=args.codes, code_format=args.code_format, invert_steps=args.invert_steps,
                             invert_seconds=args.invert_seconds)
        adapt = settings_from(args) if args.adapt else None
        options = SenderOptions(connect=args.connect, token=token_from_env(args.token), bind=args.bind,
                                settings=settings, codes=codes, size=args.size, loop=args.loop, limit=args.limit,
                                timeout=args.timeout, fec=args.fec, drop_media=args.simulate_loss, seed=args.seed,
                                adapt=adapt, record=args.record, link=args.link, reconnect=args.reconnect,
                                ladder=(bool(kbps) and args.scale is None, bool(kbps) and args.stride is None),
                                rungs=ladder_mod.load_or_default(args.ladder), latency_ms=args.latency,
                                transit_target_ms=args.transit_target)
        sender = LiveSender(args.model, args.source or "browser camera", options)
        install_uvloop()
        print(asyncio.run(_run_web(sender, args, options.token) if args.web else sender.run()).summary())
        return 0

    errors = (VideoError, BundleError, SignalingError, ConnectionError, TimeoutError, FileNotFoundError, ValueError,
              WebError)
    return report_errors("vsend", errors, run)


async def _run_web(sender, args: argparse.Namespace, token: str | None):
    """Serve the camera page, wait for a browser's camera, then stream it as any other source."""
    from vsa.sender.web import CameraPage

    page = CameraPage(*args.web, token=token, limit=args.limit)
    await page.start()
    page.sender = sender
    print(f"vsend: open {page.url} in a browser and allow the camera", flush=True)
    try:
        sender.source = await page.camera()
        return await sender.run()
    finally:
        await page.close()


if __name__ == "__main__":
    sys.exit(main())

"""`vsa hostile`: hostile peers, holding the right token, against one `vrecv --sessions 0`; then an honest one.

Each attack is a real peer over WebRTC on loopback (or over the signaling
socket itself), one session each, against a `vrecv` this tool starts. After
each, the receiver's resident memory is read from ``/proc`` and what it said
about the session is taken from its log. Last, an honest `vsend`-like
sender streams the bundled clip through the same server: it must play every
frame. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from vsa.common.webrtc import free_port
from vsa.tools.soak import sample

TOKEN = "hostile-test-token"
SIZE = (128, 192)
SCALE = 4


@dataclass
class Outcome:
    attack: str
    receiver_said: str
    rss_mb: float
    server_alive: bool


def _rss_mb(pid: int) -> float:
    """The receiver's resident memory (MB), as `vsa bench soak` samples it; NaN once it has exited."""
    figures = sample(pid, 0.0)
    return figures.rss_mb if figures is not None else float("nan")


def _payloads(count: int) -> list[tuple[bytes, bool]]:
    """Real vp9 payloads of the bundled clip's low-res frames: what an honest sender would send."""
    from vsa.common.assets import DEFAULT_CLIP
    from vsa.common.framecodec import round_trip
    from vsa.common.resample import downscale, to_tensor, to_uint8
    from vsa.common.video import read_video

    frames, info, _ = read_video(str(DEFAULT_CLIP), size=SIZE, limit=count)
    coded = round_trip("vp9", to_uint8(downscale(to_tensor(frames), SCALE)), info.fps, crf=30)
    return [(p.payload, p.keyframe) for p in coded.packets]


def _hello(**changes):
    from vsa.common import bases
    from vsa.common.bundle import sha256
    from vsa.protocol.messages import Hello

    wire, _ = bases.load_base()
    fields = dict(width=SIZE[1], height=SIZE[0], fps=30.0, scale=SCALE, stride=1, codec="vp9", payload="frames",
                  frame_count=0, source="hostile", crf=30, model_sha256=sha256(wire), model_size=len(wire))
    return Hello(**{**fields, **changes})


async def _peer(port: int, script: Callable[..., Awaitable[None]]) -> None:
    """Connect as a sender holding the token and run ``script(send_control, send_media, inbox)``."""
    from vsa.common import webrtc
    from vsa.protocol.messages import encode

    pc = webrtc.make_peer()
    control = pc.createDataChannel(webrtc.CONTROL_LABEL)
    media = pc.createDataChannel(webrtc.MEDIA_LABEL, ordered=False, maxRetransmits=0)
    inbox: asyncio.Queue = asyncio.Queue()
    control.on("message", inbox.put_nowait)
    try:
        await webrtc.connect_and_offer(pc, "127.0.0.1", port, token=TOKEN, timeout=30, bind="127.0.0.1")
        await webrtc.wait_open([control, media], 30)
        await asyncio.wait_for(script(lambda m: control.send(encode(m)), media.send, inbox), 60)
        await asyncio.sleep(1.0)  # let the receiver act on the last message before hanging up
    finally:
        await pc.close()


async def _until(inbox: asyncio.Queue, kinds: tuple[type, ...], timeout: float = 30):
    from vsa.protocol.messages import decode

    while True:
        msg = decode(await asyncio.wait_for(inbox.get(), timeout))
        if isinstance(msg, kinds):
            return msg


async def _send_frames(send_media, frames) -> None:
    from vsa.protocol.fragment import fragment
    from vsa.protocol.messages import encode

    for frame in frames:
        for part in fragment(encode(frame), frame.seq):
            send_media(part)
        await asyncio.sleep(0.01)


# --- the attacks ------------------------------------------------------------------------------


async def huge_pts(port: int) -> None:
    from vsa.protocol.messages import Frame, Ready

    payloads = _payloads(2)

    async def script(send, media, inbox):
        send(_hello())
        await _until(inbox, (Ready,))
        await _send_frames(media, [Frame(0, 0, True, payloads[0][0]), Frame(1, 10**9, False, payloads[1][0])])

    await _peer(port, script)


async def huge_frame_count(port: int) -> None:
    from vsa.protocol.messages import Bye, Frame, Ready

    payloads = _payloads(1)

    async def script(send, media, inbox):
        send(_hello(frame_count=2**53))
        await _until(inbox, (Ready,))
        await _send_frames(media, [Frame(0, 0, True, payloads[0][0])])
        await asyncio.sleep(0.5)
        send(Bye(frames=1))
        await asyncio.sleep(3.0)

    await _peer(port, script)


async def oversized_config(port: int) -> None:
    """A 15-billion-parameter INR-V named by a blob of a few hundred bytes (it once asked for 62 GB)."""
    import hashlib
    import struct

    import msgpack
    import zstandard

    from vsa.protocol.messages import ModelChunk, ModelRequest

    config = {"code_dim": 64, "width": 1024, "depth": 8, "hyper_width": 2048, "xy_freqs": 7, "t_freqs": 4,
              "clip_frames": 16}
    head = zstandard.ZstdCompressor().compress(
        msgpack.packb({"kind": "inrv", "config": config, "meta": {}, "tensors": []}, use_bin_type=True))
    blob = b"VSAW\x02" + struct.pack(">I", len(head)) + head + zstandard.ZstdCompressor().compress(b"")
    sha = hashlib.sha256(blob).digest()

    async def script(send, media, inbox):
        send(_hello(width=64, height=64, scale=1, stride=16, codec="f16", payload="codes", frame_count=16, crf=0,
                    model_sha256=sha, model_size=len(blob)))
        await _until(inbox, (ModelRequest,))
        send(ModelChunk(0, len(blob), sha, blob))
        await asyncio.sleep(2.0)

    await _peer(port, script)


async def fragment_flood(port: int) -> None:
    import random

    from vsa.protocol.fragment import HEADER, MAGIC
    from vsa.protocol.messages import Ready

    rng = random.Random(0)

    async def script(send, media, inbox):
        send(_hello())
        await _until(inbox, (Ready,))
        for i in range(20_000):
            # Fragment 0 of 255 of frame i, then junk: what reassembly holds must stay bounded.
            media(HEADER.pack(MAGIC, i, 0, 255) + rng.randbytes(1000))
            if i % 500 == 0:
                await asyncio.sleep(0.01)

    await _peer(port, script)


async def replayed_offer(port: int) -> None:
    """An offer made with the token, sent twice: the second must be refused (its nonce was seen)."""
    from vsa.common import webrtc
    from vsa.protocol.signaling import encode_signal, make_offer

    pc = webrtc.make_peer()
    pc.createDataChannel(webrtc.CONTROL_LABEL)
    await pc.setLocalDescription(await pc.createOffer())
    line = encode_signal(make_offer(pc.localDescription.sdp, TOKEN, os.urandom(16), time.time()))
    await pc.close()
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(line)
        await writer.drain()
        await asyncio.wait_for(reader.read(), 30)
        writer.close()
    await asyncio.sleep(2.0)


async def slow_signaling(port: int) -> None:
    """One byte a second on the signaling socket (a slowloris), while an honest stream must still connect."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for byte in b'{"type": "offer", "sdp": "':
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)
            if reader.at_eof():
                break
    except (ConnectionError, OSError):
        pass  # the receiver hung up on us: what it should do
    finally:
        writer.close()


ATTACKS: dict[str, Callable[[int], Awaitable[None]]] = {
    "a frame with pts 10^9": huge_pts, "hello.frame_count 2^53": huge_frame_count,
    "a 264-byte blob naming a 15-billion-parameter model": oversized_config,
    "20,000 junk fragments": fragment_flood, "an offer replayed": replayed_offer,
    "signaling at one byte a second": slow_signaling,
}


async def honest(port: int, frames: int) -> object:
    from vsa.common.assets import DEFAULT_CLIP
    from vsa.sender.live import LiveSender, SenderOptions
    from vsa.sender.stream import StreamSettings

    sender = LiveSender(None, str(DEFAULT_CLIP), SenderOptions(
        connect=("127.0.0.1", port), token=TOKEN, bind="127.0.0.1", limit=frames, timeout=30, size=SIZE,
        settings=StreamSettings(scale=SCALE, stride=2)))
    return await asyncio.wait_for(sender.run(), 120)


def _said(log: Path, offset: int) -> str:
    """What the receiver logged since ``offset`` about the session(s): its warnings and how they ended."""
    text = log.read_text()[offset:]
    lines = [line.split(": ", 1)[-1] for line in text.splitlines()
             if re.search(r"session ended|rejected|refused|failed|dropping|ignoring|jumps", line)]
    return "; ".join(dict.fromkeys(lines))[:300] or "(nothing)"


def run(work: Path, honest_frames: int = 60) -> dict:
    port = free_port()
    log = work / "hostile_vrecv.log"
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    receiver = subprocess.Popen([sys.executable, "-m", "vsa.receiver.cli", "--listen", f"127.0.0.1:{port}",
                                 "--sessions", "0", "--token", TOKEN, "--idle-timeout", "3"],
                                stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    outcomes: list[Outcome] = []
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in log.read_text():
            if time.monotonic() > deadline or receiver.poll() is not None:
                raise RuntimeError(f"vrecv did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        start_rss = _rss_mb(receiver.pid)
        for name, attack in ATTACKS.items():
            offset = len(log.read_text())
            try:
                if attack is slow_signaling:
                    async def both():  # the honest peer connects while the slow one holds its socket
                        return await asyncio.gather(slow_signaling(port), honest(port, 30))
                    _, during = asyncio.run(both())
                    print(f"  an honest stream meanwhile: {_received(during)} of {during.frames_sent} sent frames "
                          f"received", file=sys.stderr)
                else:
                    asyncio.run(attack(port))
            except Exception as exc:  # noqa: BLE001 - the receiver refusing us is often how an attack ends
                print(f"  ({name}: the hostile peer stopped: {type(exc).__name__}: {exc})", file=sys.stderr)
            time.sleep(4.0)  # the receiver's idle timeout (3 s) ends a session the attacker left hanging
            outcome = Outcome(name, _said(log, offset), _rss_mb(receiver.pid), receiver.poll() is None)
            outcomes.append(outcome)
            print(f"{name}: {outcome.receiver_said} | vrecv RSS {outcome.rss_mb} MB", flush=True)
        offset = len(log.read_text())
        report = asyncio.run(honest(port, honest_frames))
        time.sleep(2.0)
        ended = re.findall(r"session ended(.*)", log.read_text()[offset:])
        result = {
            "receiver_rss_start_mb": start_rss, "receiver_rss_end_mb": _rss_mb(receiver.pid),
            "attacks": [o.__dict__ for o in outcomes],
            "honest": {"frames_sent": report.frames_sent, "frames_received": _received(report),
                       "ended": (ended[-1].strip() or "normally") if ended else "(not yet)",
                       "server_alive": receiver.poll() is None},
        }
    finally:
        receiver.terminate()
        try:
            receiver.wait(10)
        except subprocess.TimeoutExpired:
            receiver.kill()
    return result


def _received(report) -> int:
    """Sent frames the receiver said (in its last stats) it received."""
    return report.receiver_stats[-1]["received"] if report.receiver_stats else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vsa hostile", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=60, help="frames of the honest stream at the end (default: 60)")
    p.add_argument("-o", "--output", default="hostile.json")
    args = p.parse_args(argv)
    if not Path("/proc/self/status").exists():
        raise ValueError("vsa hostile reads /proc: it runs on Linux only")
    out = Path(args.output).resolve()
    result = run(out.parent, args.frames)
    h = result["honest"]
    print(f"vrecv RSS {result['receiver_rss_start_mb']} MB at start, {result['receiver_rss_end_mb']} MB at the end; "
          f"the honest stream: {h['frames_sent']} frames sent, {h['frames_received']} received, session ended "
          f"{h['ended']}; server alive: {h['server_alive']}")
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    ok = (h["server_alive"] and h["frames_received"] == h["frames_sent"] > 0 and h["ended"] == "normally"
          and all(o["server_alive"] for o in result["attacks"]))
    return 0 if ok else 1

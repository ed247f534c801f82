"""`vrecv --web`: the reconstructed stream as a WebRTC video track, for any number of browser viewers.

Parts, each small:

* `FrameFeed` holds the newest shown frame (one slot, as the window does):
  the display loop publishes into it, every viewer's track reads from it.
  A frame is converted to a `av.VideoFrame` once, whatever the number of
  viewers, and only while someone watches.
* `FeedTrack` is one viewer's video track: it waits for the next frame in
  the feed. aiortc encodes it (VP8, or H.264 if the page prefers it).
* `Viewer` serves the page and answers each page's offer with a new peer
  connection. A viewer that leaves, or whose connection fails, is closed
  and forgotten; the others and the vsa session never notice.

Frame timestamps are the wall clock at publication (90 kHz), so the page can
measure what this leg adds: `/timing` lists recent (timestamp, wall clock)
pairs, and the page matches them against the RTP timestamps it is shown.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import secrets
import time
from typing import Callable

import torch
from aiortc import MediaStreamTrack

from vsa.common import webrtc
from vsa.common.resample import to_uint8
from vsa.common.webpage import WebServer, answer_page, parse_offer

from .stream import OutputFrame

log = logging.getLogger("vsa.recv.web")

DEFAULT_WEB = ("127.0.0.1", 8080)
MAX_VIEWERS = 16
"""Each viewer costs an encoder; past this many, a page is told the receiver is full."""
CLOCK_HZ = 90_000
TIMING_KEPT = 300
VIEWER_BITRATE = 3_000_000
"""What aiortc's VP8 encoder is asked for (its default cap is 1.5 Mb/s): the page's copy should be the reconstruction,
not a further lossy step of it. On loopback the browser's estimate allows it at once."""


class FrameFeed:
    """The newest shown frame (and its bicubic twin), for every viewer's track."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._frames: dict[str, object] = {}  # "vsa"/"bicubic" -> av.VideoFrame
        self._seq = 0
        self._changed = asyncio.Condition()
        self._watching: collections.Counter[str] = collections.Counter()
        """Tracks reading each kind ("vsa", "bicubic"); `publish` converts only the kinds someone watches."""
        self.timing: collections.deque[tuple[int, float, int]] = collections.deque(maxlen=TIMING_KEPT)
        """(pts at 90 kHz, wall clock in ms, output frame index) of recent frames."""
        self.size: tuple[int, int] | None = None
        self.overlay: dict = {}
        self.last_frame_at = 0.0

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def watchers(self) -> int:
        """Tracks reading the feed; with none, `publish` converts nothing."""
        return sum(self._watching.values())

    def watch(self, which: str, delta: int) -> None:
        """A track of kind ``which`` starts (+1) or stops (-1) reading the feed."""
        self._watching[which] += delta

    def publish(self, out: OutputFrame, overlay: dict) -> None:
        """A frame was shown (call on the event loop). Cheap when nobody watches."""
        now = self._clock()
        self.overlay = overlay
        self.last_frame_at = now
        self.size = tuple(out.frame.shape[-2:])
        if not self.watchers:
            return
        pts = int(now * CLOCK_HZ) % (1 << 32)  # RTP timestamps wrap at 32 bits; the page unwraps them
        frames = {"vsa": _video_frame(out.frame, pts)}
        if out.baseline is not None and self._watching["bicubic"]:
            frames["bicubic"] = _video_frame(out.baseline, pts)
        self._frames = frames
        self._seq += 1
        self.timing.append((pts, now * 1000.0, out.index))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def next(self, after: int, which: str):
        """The first frame newer than ``after`` (waits for it): (seq, av.VideoFrame)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._seq > after and which in self._frames)
            return self._seq, self._frames[which]


def _video_frame(frame: torch.Tensor, pts: int):
    import av

    vf = av.VideoFrame.from_ndarray(to_uint8(frame[None])[0], format="rgb24").reformat(format="yuv420p")
    vf.pts, vf.time_base = pts, fractions.Fraction(1, CLOCK_HZ)
    return vf


class FeedTrack(MediaStreamTrack):
    """One viewer's video track, reading ``which`` ("vsa" or "bicubic") from the feed."""

    kind = "video"

    def __init__(self, feed: FrameFeed, which: str) -> None:
        super().__init__()
        self.feed, self.which = feed, which
        self._seq = feed.seq
        feed.watch(which, +1)

    async def recv(self):
        self._seq, frame = await self.feed.next(self._seq, self.which)
        return frame

    def stop(self) -> None:
        if self.readyState != "ended":
            self.feed.watch(self.which, -1)
        super().stop()


class Viewer:
    """`vrecv --web`: the page, and one peer connection per browser tab watching it."""

    def __init__(self, host: str = DEFAULT_WEB[0], port: int = DEFAULT_WEB[1], token: str | None = None,
                 bind: str | None = None) -> None:
        _raise_bitrate()
        self.feed = FrameFeed()
        self.bind = bind if bind is not None else (host if webrtc.is_loopback(host) else None)
        self.server = WebServer(host, port, token, "vsa.receiver",
                                {"/offer": self._offer, "/leave": self._leave, "/stats": self._stats,
                                 "/timing": self._timing})
        self.peers: set = set()
        self._by_id: dict[str, tuple] = {}
        """A page's viewer id -> (pc, tracks, peer): a page that leaves says so (`/leave`), rather than leaving
        its encoder running until ICE notices, tens of seconds later."""
        self.viewers_served = 0

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.server.start()

    async def close(self) -> None:
        await asyncio.gather(*(pc.close() for pc in list(self.peers)), return_exceptions=True)
        self.peers.clear()
        await self.server.close()

    def publish(self, out: OutputFrame, overlay: dict) -> None:
        self.feed.publish(out, overlay)

    async def _offer(self, body: dict | None, peer: str) -> dict:
        sdp, _ = parse_offer(body)
        if len(self.peers) >= MAX_VIEWERS:
            raise ValueError(f"this receiver already has {MAX_VIEWERS} viewers")
        want_bicubic = bool(body.get("bicubic"))
        pc = webrtc.make_peer()
        self.peers.add(pc)
        tracks = []

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._drop(pc, tracks, peer)

        def add_tracks() -> None:
            # The page offers one receive-only video transceiver per view; addTrack fills them in order.
            tracks.append(FeedTrack(self.feed, "vsa"))
            if want_bicubic:
                tracks.append(FeedTrack(self.feed, "bicubic"))
            for track in tracks:
                pc.addTrack(track)
            if self.bind:
                webrtc.bind_candidates(pc, self.bind)

        try:
            answer = await answer_page(pc, sdp, add_tracks)
        except Exception as exc:  # noqa: BLE001 - one page's bad offer never disturbs the others
            await self._drop(pc, tracks, peer)
            raise ValueError(f"could not answer the offer: {exc}") from None
        self.viewers_served += 1
        viewer_id = secrets.token_hex(8)
        self._by_id[viewer_id] = (pc, tracks, peer)
        log.info("viewer %s connected (%d watching)", peer, len(self.peers))
        return {**answer, "id": viewer_id}

    async def _leave(self, body: dict | None, peer: str) -> dict:
        found = self._by_id.pop(str((body or {}).get("id", "")), None)
        if found is not None:
            await self._drop(*found)
        return {}

    async def _drop(self, pc, tracks: list, peer: str) -> None:
        for key in [k for k, v in self._by_id.items() if v[0] is pc]:
            del self._by_id[key]
        for track in tracks:
            track.stop()
        tracks.clear()
        if pc in self.peers:
            self.peers.discard(pc)
            log.info("viewer %s left (%d watching)", peer, len(self.peers))
        await pc.close()

    async def _stats(self, body: dict | None, peer: str) -> dict:
        f = self.feed
        live = f.last_frame_at and time.time() - f.last_frame_at < 2.0
        return {"streaming": bool(live), "size": f.size, "viewers": len(self.peers), **f.overlay}

    async def _timing(self, body: dict | None, peer: str) -> dict:
        return {"frames": list(self.feed.timing)}


def _raise_bitrate() -> None:
    """Let aiortc's VP8 encoders run above their default 1.5 Mb/s cap.

    aiortc sets an encoder's rate from the browser's REMB estimate, clamped
    to module constants; on loopback the estimate is high, the clamp is what
    limits quality. Raised once per process, when a viewer is made.
    """
    try:
        from aiortc.codecs import vpx

        if vpx.MAX_BITRATE < VIEWER_BITRATE:
            vpx.MAX_BITRATE = VIEWER_BITRATE
            vpx.DEFAULT_BITRATE = VIEWER_BITRATE
    except (ImportError, AttributeError):  # another aiortc layout: keep its defaults
        pass

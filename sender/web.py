"""`vsend --web`: a browser's camera as the source.

vsend serves a page that asks for the camera (``getUserMedia``) and sends it
as a WebRTC video track. `CameraPage` answers the page's offer and hands
the first camera that plays to the sender as a `BrowserCapture`, which has
the interface `LiveSender` reads any source through (``info``, ``size``,
``live``, ``queue``, ``start``, ``stop``). From there on the frames are
streamed exactly as ``camera0``'s are.

The page also shows what is sent: the rate and target, frames, the
operating point, and the low-res frame itself (``/lowres``). A page that
is refused the camera says so, and posts why to ``/status`` so vsend says
it in the terminal too.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from vsa.common import webrtc
from vsa.common.video import SourceInfo, default_working_size, fit_frame
from vsa.common.webpage import WebServer, answer_page, parse_offer

from .live import put_newest

if TYPE_CHECKING:
    from .live import LiveSender

log = logging.getLogger("vsa.send.web")

DEFAULT_WEB = ("127.0.0.1", 8081)
MAX_CAMERA_SIDE = 4096
"""Bounds what a page may claim about its camera before anything is sized from it."""
DEFAULT_FPS = 30.0


class BrowserCapture:
    """Frames of a browser's camera track, as `LiveSender` reads a source: (count, rgb, capture_us) in ``queue``.

    Conversion and resizing run in a worker thread; when the sender falls
    behind, the oldest frame is dropped, as a camera would.
    """

    def __init__(self, track, info: SourceInfo, limit: int | None = None) -> None:
        self.track = track
        self.info = info
        self.size = default_working_size(info.width, info.height)
        self.live = True
        self.limit = limit
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=3)
        self.dropped = 0
        self.latest: np.ndarray | None = None
        """The newest frame at the working size (the page's low-res view reads it)."""
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.track.stop()

    def _put(self, item) -> None:
        self.dropped += put_newest(self.queue, item)

    def _convert(self, frame) -> np.ndarray:
        return fit_frame(frame.to_ndarray(format="rgb24"), *self.size)

    async def _run(self) -> None:
        from aiortc.mediastreams import MediaStreamError

        loop = asyncio.get_running_loop()
        count = 0
        try:
            while self.limit is None or count < self.limit:
                try:
                    frame = await self.track.recv()
                except MediaStreamError:  # the page closed or stopped its camera
                    log.info("the browser's camera track ended")
                    break
                capture_us = time.time_ns() // 1000
                rgb = await loop.run_in_executor(None, self._convert, frame)
                self.latest = rgb
                self._put((count, rgb, capture_us))
                count += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - surfaced in the sender's stream loop
            self._put(exc)
        self._put(None)


def _camera_info(body: dict) -> SourceInfo:
    """What the page says of its camera (width, height, frame rate), checked and bounded."""
    try:
        width, height = int(body.get("width") or 640), int(body.get("height") or 480)
        fps = float(body.get("frameRate") or DEFAULT_FPS)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's Infinity as a width
        raise ValueError("width, height and frameRate must be numbers") from None
    if not (16 <= width <= MAX_CAMERA_SIDE and 16 <= height <= MAX_CAMERA_SIDE):
        raise ValueError(f"a camera of {width}x{height}: each side must be 16 to {MAX_CAMERA_SIDE}")
    fps = min(max(fps, 1.0), 60.0) if np.isfinite(fps) else DEFAULT_FPS
    label = str(body.get("label") or "browser camera")[:64]
    return SourceInfo(name=label, width=width, height=height, fps=fps, frame_count=0)


class CameraPage:
    """`vsend --web`: the page, one camera at a time, and the figures of the stream it feeds."""

    def __init__(self, host: str = DEFAULT_WEB[0], port: int = DEFAULT_WEB[1], token: str | None = None,
                 bind: str | None = None, limit: int | None = None) -> None:
        self.bind = bind if bind is not None else (host if webrtc.is_loopback(host) else None)
        self.limit = limit
        self.server = WebServer(host, port, token, "vsa.sender",
                                {"/offer": self._offer, "/status": self._status, "/stats": self._stats,
                                 "/lowres": self._lowres})
        self.sender: LiveSender | None = None
        self.capture: BrowserCapture | None = None
        self.refusals: list[str] = []
        """What pages reported when the browser would not give them the camera."""
        self.state = "waiting for a camera"
        self._camera: asyncio.Future | None = None
        self._peers: set = set()

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        self._camera = asyncio.get_running_loop().create_future()
        await self.server.start()

    async def close(self) -> None:
        await asyncio.gather(*(pc.close() for pc in list(self._peers)), return_exceptions=True)
        self._peers.clear()
        await self.server.close()

    async def camera(self, timeout: float | None = None) -> BrowserCapture:
        """Wait (up to ``timeout`` s; None: as long as it takes) for a page's camera; its capture."""
        return await asyncio.wait_for(asyncio.shield(self._camera), timeout)

    async def _offer(self, body: dict | None, peer: str) -> dict:
        sdp, _ = parse_offer(body)
        if self._camera.done():
            raise ValueError("vsend already streams a camera; one at a time")
        info = _camera_info(body)
        pc = webrtc.make_peer()
        self._peers.add(pc)

        @pc.on("track")
        def on_track(track) -> None:
            if track.kind == "video" and not self._camera.done():
                self.capture = BrowserCapture(track, info, self.limit)
                self.state = "camera connected"
                log.info("camera from %s: %s, %dx%d at %g fps", peer, info.name, info.width, info.height, info.fps)
                self._camera.set_result(self.capture)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._peers.discard(pc)
                await pc.close()

        def bind() -> None:
            if self.bind:
                webrtc.bind_candidates(pc, self.bind)

        try:
            return await answer_page(pc, sdp, bind)
        except Exception as exc:  # noqa: BLE001 - one page's bad offer never ends vsend
            self._peers.discard(pc)
            await pc.close()
            raise ValueError(f"could not answer the offer: {exc}") from None

    async def _status(self, body: dict | None, peer: str) -> dict:
        error = str((body or {}).get("error") or "")[:300]
        if error:
            self.refusals.append(error)
            log.warning("the browser at %s did not give the camera: %s (allow it on the page, then reload)",
                        peer, error)
        return {}

    async def _stats(self, body: dict | None, peer: str) -> dict:
        out: dict = {"state": self.state}
        s = self.sender
        if s is None or s.encoder is None:
            return out
        r = s.report
        if r.sent_kbps:  # the sender's own once-a-second figure, whichever page asks and however often
            out["sent_kbps"] = r.sent_kbps[-1][1]
        settings = getattr(s.encoder, "settings", None)
        out.update(frames=r.frames, frames_sent=r.frames_sent, model_sent=r.model_sent,
                   target_kbps=r.targets[-1][1] if r.targets else (settings.kbps if settings else 0) or None,
                   size=list(getattr(s.encoder, "size", ()) or ()),
                   scale=getattr(s.encoder, "scale", None), stride=getattr(s.encoder, "stride", None),
                   codec=settings.codec if settings else None,
                   receiver=r.receiver_stats[-1] if r.receiver_stats else None)
        return out

    async def _lowres(self, body: dict | None, peer: str) -> dict:
        """The low-res frame the sender makes of the newest camera frame, as a PNG data URL."""
        s, capture = self.sender, self.capture
        if s is None or capture is None or capture.latest is None or not hasattr(s.encoder, "lowres"):
            return {}
        rgb = capture.latest
        if rgb.shape[:2] != tuple(s.encoder.size):
            return {}
        low = await asyncio.get_running_loop().run_in_executor(None, s.encoder.lowres, rgb)
        return {"png": "data:image/png;base64," + base64.b64encode(_png(low)).decode(), "size": list(low.shape[:2])}


def _png(rgb: np.ndarray) -> bytes:
    import av

    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
    packets = codec.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"))
    packets += codec.encode(None)
    return b"".join(bytes(p) for p in packets)

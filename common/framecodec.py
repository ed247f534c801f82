"""Codecs for the low-res frame payloads, through PyAV.

* ``png``: lossless, each frame independent.
* ``webp``: lossy intra (libwebp), each frame independent, so a lost frame
  costs only itself.
* ``h264``: inter-coded (libx264 in 4:4:4, ``tune=zerolatency`` so one frame
  in gives one packet out, no B-frames). A decoder that missed a packet, or starts
  mid-stream, waits for the next keyframe and restarts there.

Measured sizes per frame are in the README; h264 is the default because it is
by far the smallest.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

CODECS = ("h264", "webp", "png")
DEFAULT_CODEC = "h264"
DEFAULT_CRF = 20
DEFAULT_WEBP_QUALITY = 90


class FrameCodecError(Exception):
    """A payload that cannot be encoded or decoded."""


@dataclass(frozen=True)
class EncodedFrame:
    payload: bytes
    keyframe: bool


def _needs_even(codec: str) -> bool:
    return codec == "webp"  # 4:2:0 chroma


def check_lowres_size(codec: str, width: int, height: int) -> None:
    """Raise ValueError if ``codec`` cannot carry a frame of this size."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if width < 2 or height < 2:
        raise ValueError(f"low-res frame {height}x{width} is too small to encode; use a smaller --scale")
    if _needs_even(codec) and (width % 2 or height % 2):
        raise ValueError(
            f"{codec} needs even low-res sides (4:2:0 chroma), got {height}x{width}; use --codec h264 or png"
        )


class FrameEncoder:
    """Encode (H, W, 3) uint8 RGB frames of one fixed size into payloads."""

    def __init__(
        self,
        codec: str,
        width: int,
        height: int,
        fps: float = 30.0,
        crf: int = DEFAULT_CRF,
        quality: int = DEFAULT_WEBP_QUALITY,
        keyint: int = 60,
        chroma: str = "444",
    ) -> None:
        check_lowres_size(codec, width, height)
        if chroma not in ("444", "420"):
            raise ValueError(f"chroma must be 444 or 420, got {chroma!r}")
        self.codec, self.width, self.height = codec, width, height
        if codec == "png":
            ctx = av.CodecContext.create("png", "w")
            ctx.pix_fmt = "rgb24"
        elif codec == "webp":
            ctx = av.CodecContext.create("libwebp", "w")
            ctx.pix_fmt = "yuv420p"
            ctx.options = {"quality": str(quality), "lossless": "0"}
        else:
            ctx = av.CodecContext.create("libx264", "w")
            # 4:4:4: at low-res sizes 4:2:0 chroma costs ~6 dB of PSNR for
            # only ~12% fewer bytes (measured, README "Payload codecs").
            ctx.pix_fmt = f"yuv{chroma}p"  # 420 only for comparison (vsa bench codecs)
            ctx.options = {
                "crf": str(crf),
                "preset": "veryfast",
                "tune": "zerolatency",
                "g": str(keyint),
                "keyint_min": str(keyint),
                "sc_threshold": "0",
            }
        ctx.width, ctx.height = width, height
        rate = Fraction(fps).limit_denominator(1001)
        ctx.framerate = rate
        ctx.time_base = 1 / rate
        self._ctx = ctx
        self._pts = 0
        self._force_key = False

    def request_keyframe(self) -> None:
        """Make the next frame a keyframe (for a receiver that lost its place)."""
        self._force_key = True

    def encode(self, rgb: np.ndarray) -> list[EncodedFrame]:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise FrameCodecError(f"expected a {self.height}x{self.width} RGB uint8 frame, got {rgb.shape} {rgb.dtype}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if self._ctx.pix_fmt != "rgb24":
            frame = frame.reformat(format=self._ctx.pix_fmt)
        frame.pts = self._pts
        self._pts += 1
        if self._force_key:
            frame.pict_type = av.video.frame.PictureType.I
            self._force_key = False
        return self._packets(self._ctx.encode(frame))

    def flush(self) -> list[EncodedFrame]:
        return self._packets(self._ctx.encode(None))

    def _packets(self, packets: list) -> list[EncodedFrame]:
        return [EncodedFrame(bytes(p), bool(p.is_keyframe) or self.codec != "h264") for p in packets]


class FrameDecoder:
    """Decode payloads back to (H, W, 3) uint8 RGB frames.

    ``decode`` returns None for a payload it had to skip: an inter frame
    before the first keyframe, or anything after a decode error until the
    next keyframe.
    """

    def __init__(self, codec: str, width: int, height: int) -> None:
        check_lowres_size(codec, width, height)
        self.codec, self.width, self.height = codec, width, height
        self._ctx = self._new_context()
        self._need_keyframe = codec == "h264"
        self.skipped = 0

    def _new_context(self) -> av.CodecContext:
        name = {"png": "png", "webp": "webp", "h264": "h264"}[self.codec]
        ctx = av.CodecContext.create(name, "r")
        # Frame threading would hold frames back; slice threading does not.
        ctx.thread_type = "SLICE"
        return ctx

    def lost(self) -> None:
        """Tell the decoder a payload went missing: wait for the next keyframe."""
        if self.codec == "h264":
            self._need_keyframe = True

    def decode(self, payload: bytes, keyframe: bool) -> np.ndarray | None:
        if self._need_keyframe and not keyframe:
            self.skipped += 1
            return None
        if self._need_keyframe or self.codec != "h264":
            # Intra codecs get a fresh context per frame: FFmpeg's png decoder
            # otherwise carries state between packets and garbles later frames.
            self._ctx = self._new_context()
            self._need_keyframe = False
        try:
            frames = self._ctx.decode(av.Packet(payload))
        except (av.error.FFmpegError, ValueError) as exc:
            self.lost()
            self.skipped += 1
            if self.codec != "h264":
                raise FrameCodecError(f"cannot decode {self.codec} payload: {exc}") from None
            return None
        if not frames:
            self.skipped += 1
            return None
        rgb = frames[-1].to_ndarray(format="rgb24")
        if rgb.shape != (self.height, self.width, 3):
            self.lost()
            raise FrameCodecError(f"payload decoded to {rgb.shape[1]}x{rgb.shape[0]}, expected {self.width}x{self.height}")
        return rgb

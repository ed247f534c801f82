"""Codecs for the low-res frame payloads, through PyAV.

* ``png``: lossless, each frame independent.
* ``webp``: lossy intra (libwebp), each frame independent, so a lost frame
  costs only itself.
* ``h264``: inter-coded (libx264 in 4:4:4, ``tune=zerolatency`` so one frame
  in gives one packet out, no B-frames).
* ``vp9``: inter-coded (libvpx-vp9 in 4:4:4, profile 1; ``lag-in-frames=0``
  so one frame in gives one packet out, no hidden alt-ref frames). At the
  same low-res PSNR it needs 30-44% fewer bits than h264 on the low-res
  frames vsa sends (48x64, measured on four clips; README "Payload codecs"),
  for about 2 ms of encoding a frame instead of 0.7.

For the inter codecs, a decoder that missed a packet, or starts mid-stream,
waits for the next keyframe and restarts there. Measured sizes per frame are
in the README.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

CODECS = ("vp9", "h264", "webp", "png")
DEFAULT_CODEC = "vp9"
INTER_CODECS = ("h264", "vp9")
"""Codecs whose frames depend on earlier ones: a lost frame costs every frame up to the next keyframe."""
DEFAULT_CRFS = {"h264": 20, "vp9": 30}
"""Each inter codec's default quality (lower is better); vp9 30 gives about h264 20's low-res PSNR."""
DEFAULT_CRF = DEFAULT_CRFS["h264"]
"""The quality scale models are conditioned in (`model_crf`): h264's crf."""
DEFAULT_WEBP_QUALITY = 90
VP9_CPU_USED = 2
"""libvpx speed (0 slowest): at 48x64, 2 costs 2 ms a frame and 4 1.2 ms, for 8-10% more bits."""
KEYFRAME_SHARE_PCT = 300
"""Under a keyframe cap (`FrameEncoder`'s ``keyframe_bytes``), a vp9 keyframe may take this share of the average
frame's bits (libvpx's ``max-intra-rate``). The average is set from the cap, so this only fixes the rate ceiling
that comes with it: an average frame of a third of the cap."""

# vp9 crf -> the h264 crf with the same low-res PSNR: measured at scale 4 on the street and office clips
# (48x64; vp9 good/cpu-used 2 against x264 veryfast zerolatency, both 4:4:4), averaged.
_VP9_TO_H264 = ((0.0, 3.0), (20.0, 15.2), (28.0, 18.7), (36.0, 23.4), (44.0, 28.3), (52.0, 33.5), (63.0, 41.0))


def default_crf(codec: str) -> int:
    """The default quality of ``codec``; 0 for codecs without a crf."""
    return DEFAULT_CRFS.get(codec, 0)


def model_crf(codec: str, crf: int) -> int:
    """A payload's quality on the scale models are conditioned in (h264 crf; 0 = unknown).

    A network that has learned what h264 at crf 28 leaves of a frame is
    asked to treat a vp9 frame of the same low-res PSNR the same way.
    """
    if codec == "h264":
        return crf
    if codec == "vp9" and crf:
        xs, ys = zip(*_VP9_TO_H264)
        return max(1, round(float(np.interp(crf, xs, ys))))
    return 0


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
        crf: int | None = None,
        quality: int = DEFAULT_WEBP_QUALITY,
        keyint: int = 60,
        chroma: str = "444",
        keyframe_bytes: int = 0,
    ) -> None:
        """``keyframe_bytes``: vp9 only, the most a keyframe should take (0: no cap). A keyframe is the largest
        frame there is, and on a slow link every frame behind it waits while it crosses: one of 4 KB at 96x128
        took 0.6 s of a 60 kbps link. A keyframe over the cap is coded again in a new context under it
        (libvpx keeps to it within about 20%, to about 1.1 KB at least): coarser, and the inter frames after
        it refine it (see `_context`). x264's equivalent, a VBV buffer the size of the cap, cost 0.8 dB on
        the same clip, so h264 takes none."""
        check_lowres_size(codec, width, height)
        if chroma not in ("444", "420"):
            raise ValueError(f"chroma must be 444 or 420, got {chroma!r}")
        self.codec, self.width, self.height = codec, width, height
        self.fps, self.keyint, self.chroma, self.quality = fps, keyint, chroma, quality
        self.crf = default_crf(codec) if crf is None else crf
        self.keyframe_bytes = keyframe_bytes if codec == "vp9" else 0
        self._next: tuple[int, int] | None = None
        """(crf, keyframe_bytes) from the next group of pictures on (`set_crf`)."""
        self._ctx = self._context()
        self._capped = False
        """The context codes under the keyframe cap (constrained quality), not at constant quality."""
        self._pts = 0
        # Requests come from any thread (the event loop, when a receiver asks) and `encode` takes them in the
        # coding thread; test-and-clear under a lock, so a request landing mid-`encode` is kept for the next frame
        # rather than cleared unseen.
        self._force_key = False
        self._key_lock = threading.Lock()

    def _context(self, capped: bool = False) -> av.CodecContext:
        codec, crf, keyint = self.codec, self.crf, self.keyint
        if codec == "png":
            ctx = av.CodecContext.create("png", "w")
            ctx.pix_fmt = "rgb24"
        elif codec == "webp":
            ctx = av.CodecContext.create("libwebp", "w")
            ctx.pix_fmt = "yuv420p"
            ctx.options = {"quality": str(self.quality), "lossless": "0"}
        elif codec == "vp9":
            ctx = av.CodecContext.create("libvpx-vp9", "w")
            ctx.pix_fmt = "yuv444p"  # profile 1: as for h264, chroma matters at these sizes
            options = {
                "crf": str(crf),
                "b": "0",  # constant quality
                "deadline": "good",
                "cpu-used": str(VP9_CPU_USED),
                "lag-in-frames": "0",  # one frame in, one packet out; no alt-ref frames
                "auto-alt-ref": "0",
                "g": str(keyint),
                "threads": "1",
            }
            if capped:
                # libvpx caps a keyframe (``max-intra-rate``, a share of the average frame's bits) only under
                # rate control: constrained quality, the crf with a rate as a ceiling. The ceiling is the one
                # the cap implies, several times what the inter frames of a stream whose keyframe must cross
                # in a fraction of a second take, so the crf still sets their quality: on the signing clip at
                # 96x128 the mean PSNR of 100 frames at the same total rate stayed within 0.1 dB of constant
                # quality's from 30 to 70 kbps, and 0.4 dB better at 20. It is not the default: at low crfs
                # constrained quality spent up to a fifth more for the same PSNR.
                del options["b"]
                options["max-intra-rate"] = str(KEYFRAME_SHARE_PCT)
                ctx.bit_rate = round(self.keyframe_bytes * 8 * self.fps * 100 / KEYFRAME_SHARE_PCT)
            ctx.options = options
        else:
            ctx = av.CodecContext.create("libx264", "w")
            # 4:4:4: at low-res sizes 4:2:0 chroma costs ~6 dB of PSNR for
            # only ~12% fewer bytes (measured, README "Payload codecs").
            ctx.pix_fmt = f"yuv{self.chroma}p"  # 420 only for comparison (vsa bench codecs)
            ctx.options = {
                "crf": str(crf),
                "preset": "veryfast",
                "tune": "zerolatency",
                "g": str(keyint),
                "keyint_min": str(keyint),
                "sc_threshold": "0",
            }
        ctx.width, ctx.height = self.width, self.height
        rate = Fraction(self.fps).limit_denominator(1001)
        ctx.framerate = rate
        ctx.time_base = 1 / rate
        return ctx

    @property
    def at_group_start(self) -> bool:
        """Whether the next frame starts a group of pictures (where `set_crf` takes effect)."""
        return self._pts % self.keyint == 0

    def new_group(self) -> None:
        """Start the next group of pictures (a keyframe, where `set_crf` takes effect) at the next frame rather
        than at the next ``keyint``-th."""
        self._pts += -self._pts % self.keyint

    def set_crf(self, crf: int, keyframe_bytes: int | None = None) -> None:
        """Code at ``crf`` (and, vp9, with keyframes capped at ``keyframe_bytes``; None: as now) from the next
        group of pictures on (inter codecs). FFmpeg's x264 and libvpx wrappers take no new quality mid-stream,
        so the codec is restarted at that keyframe, which needs nothing before it anyway."""
        if self.codec not in INTER_CODECS:
            raise ValueError(f"{self.codec} has no crf")
        cap = self.keyframe_bytes if keyframe_bytes is None or self.codec != "vp9" else keyframe_bytes
        self._next = (crf, cap) if (crf, cap) != (self.crf, self.keyframe_bytes) else None

    def request_keyframe(self) -> None:
        """Make the next frame a keyframe (for a receiver that lost its place); safe from any thread."""
        with self._key_lock:
            self._force_key = True

    def encode(self, rgb: np.ndarray) -> list[EncodedFrame]:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise FrameCodecError(f"expected a {self.height}x{self.width} RGB uint8 frame, got {rgb.shape} {rgb.dtype}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if self._ctx.pix_fmt != "rgb24":
            frame = frame.reformat(format=self._ctx.pix_fmt)
        if self.at_group_start and (self._next is not None or self._capped):
            # One frame in gives one packet out, so the old context holds nothing to flush. (A group coded under
            # the cap ends with it: each group tries constant quality first.)
            if self._next is not None:
                (self.crf, self.keyframe_bytes), self._next = self._next, None
            self._ctx, self._capped = self._context(), False
        frame.pts = self._pts
        self._pts += 1
        if self._take_keyframe_request():
            frame.pict_type = av.video.frame.PictureType.I
        packets = self._packets(self._ctx.encode(frame))
        if self.keyframe_bytes and not self._capped and any(
                p.keyframe and len(p.payload) > self.keyframe_bytes for p in packets):
            # Over the cap: code it again, the first frame of a context under the cap (a keyframe needs nothing
            # before it, so the group goes on from there).
            self._ctx, self._capped = self._context(capped=True), True
            packets = self._packets(self._ctx.encode(frame))
        return packets

    def _take_keyframe_request(self) -> bool:
        with self._key_lock:
            wanted, self._force_key = self._force_key, False
        return wanted

    def flush(self) -> list[EncodedFrame]:
        return self._packets(self._ctx.encode(None))

    def _packets(self, packets: list) -> list[EncodedFrame]:
        return [EncodedFrame(bytes(p), bool(p.is_keyframe) or self.codec not in INTER_CODECS) for p in packets]


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
        self._need_keyframe = codec in INTER_CODECS
        self.skipped = 0

    def _new_context(self) -> av.CodecContext:
        ctx = av.CodecContext.create(self.codec, "r")  # FFmpeg's decoders go by the codecs' own names
        # Frame threading would hold frames back; slice threading does not.
        ctx.thread_type = "SLICE"
        return ctx

    def lost(self) -> None:
        """Tell the decoder a payload went missing: wait for the next keyframe."""
        if self.codec in INTER_CODECS:
            self._need_keyframe = True

    def decode(self, payload: bytes, keyframe: bool) -> np.ndarray | None:
        if self._need_keyframe and not keyframe:
            self.skipped += 1
            return None
        if self._need_keyframe or self.codec not in INTER_CODECS:
            # Intra codecs get a fresh context per frame: FFmpeg's png decoder
            # otherwise carries state between packets and garbles later frames.
            self._ctx = self._new_context()
            self._need_keyframe = False
        try:
            frames = self._ctx.decode(av.Packet(payload))
        except (av.error.FFmpegError, ValueError) as exc:
            self.lost()
            self.skipped += 1
            if self.codec not in INTER_CODECS:
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


@dataclass
class RoundTrip:
    """Frames through a codec and back, as a stream sends them (`round_trip`)."""

    frames: np.ndarray
    """(N, h, w, 3) uint8: what the receiver decodes."""
    packets: list[EncodedFrame]
    encode_s: float
    decode_s: float


def round_trip(codec: str, low: np.ndarray, fps: float = 30.0, **options) -> RoundTrip:
    """Encode the (N, h, w, 3) uint8 frames ``low`` with ``codec`` (``options``: crf, quality, keyint, chroma)
    and decode every packet; one frame in, one packet and one frame out, or RuntimeError."""
    import time

    h, w = low.shape[1:3]
    encoder, decoder = FrameEncoder(codec, w, h, fps=fps, **options), FrameDecoder(codec, w, h)
    start = time.perf_counter()
    packets = [p for frame in low for p in encoder.encode(frame)] + encoder.flush()
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    out = [decoder.decode(p.payload, p.keyframe) for p in packets]
    decode_s = time.perf_counter() - start
    if len(out) != len(low) or any(frame is None for frame in out):
        raise RuntimeError(f"{codec} round trip returned {len(out)} frames for {len(low)}")
    return RoundTrip(np.stack(out), packets, encode_s, decode_s)

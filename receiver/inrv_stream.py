"""The receiver's INR-V pipeline: one code per clip in, frames at any size and frame rate out.

`CodeDecoder` has the interface of `StreamDecoder`, so file mode (and any
transport) drives either one the same way. Each code is rendered by the
hypernetwork's implicit network at the size and frame rate the receiver
chooses; an output frame between source frames is a real sample of the
continuous clip, not a blend. A clip whose code was lost is concealed by
holding the last frame shown until the next code arrives.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from vsa.common.bundle import Bundle
from vsa.common.inrv import clip_time
from vsa.protocol.codes import unpack_code
from vsa.protocol.errors import ProtocolError
from vsa.protocol.messages import MAX_PTS_STEP, Frame, Hello

from .stream import Kind, OutputFrame, SessionDecoder


MAX_DEFAULT_RENDER_PIXELS = 512 * 512
"""Without ``--size``, a stream renders at the sender's size shrunk to at most this many pixels (aspect kept):
a peer's hello may claim up to 8192x8192, and a clip's coordinate grid is built whole."""


def default_render_size(height: int, width: int) -> tuple[int, int]:
    """The sender's size, or the largest size of its aspect within `MAX_DEFAULT_RENDER_PIXELS`."""
    if height * width <= MAX_DEFAULT_RENDER_PIXELS:
        return height, width
    shrink = math.sqrt(MAX_DEFAULT_RENDER_PIXELS / (height * width))
    return max(1, int(height * shrink)), max(1, int(width * shrink))


class CodeDecoder(SessionDecoder):
    """Renders an INR-V stream. ``size`` (H, W) defaults to the sender's (`default_render_size`); ``output_fps``
    to the source's."""

    payload = "codes"

    def __init__(self, device: torch.device | str = "cpu", size: tuple[int, int] | None = None,
                 output_fps: float | None = None,
                 model_lookup: Callable[[bytes], bytes | None] | None = None) -> None:
        super().__init__(model_lookup, output_fps)
        self.device = device
        self.size = size
        self.model = None
        self._last: OutputFrame | None = None

    @property
    def ready(self) -> bool:
        return self.model is not None

    @property
    def output_size(self) -> tuple[int, int]:
        assert self.size is not None
        return self.size

    def _start(self, hello: Hello) -> None:
        if self.size is None:
            self.size = default_render_size(hello.height, hello.width)
        super()._start(hello)

    def _load(self, bundle: Bundle) -> None:
        if bundle.config.clip_frames != self.hello.stride:
            raise ProtocolError(f"hello says {self.hello.stride} frames per code, the model renders "
                                f"{bundle.config.clip_frames}")
        self.model = bundle.build(self.device)

    @torch.no_grad()
    def _frame(self, frame: Frame) -> list[list[OutputFrame]]:
        """Render the clip whose code ``frame`` carries, at the chosen size and frame rate (one group)."""
        assert self.hello is not None and self.model is not None and self.size is not None
        self.payload_bytes += len(frame.payload)
        code = torch.tensor(unpack_code(frame.payload, self.hello.codec, self.model.config.code_dim))
        clip_frames = self.hello.stride
        end = frame.pts + clip_frames
        if self.hello.frame_count:
            end = min(end, self.hello.frame_count)
        # Output frames before this clip that no code covered: a lost clip, or a stream joined late.
        missing = []
        while self._next_index * self._ratio < frame.pts - 1e-9:
            missing.append((self._next_index, self._next_index * self._ratio))
            self._next_index += 1
        # Output frames whose source position falls inside this clip.
        targets = []
        while frame.pts - 1e-9 <= self._next_index * self._ratio < end - 1e-9:
            targets.append((self._next_index, self._next_index * self._ratio))
            self._next_index += 1
        if not targets:
            return []
        times = torch.tensor([clip_time(pos - frame.pts, clip_frames) for _, pos in targets])
        rendered = self.model.render(code[None].to(self.device), *self.size, times)[0].clamp(0, 1).cpu()
        out = []
        # The code carries its clip's first capture time.
        for index, pos in missing:
            kind, image = (Kind.CONCEALED, self._last.frame) if self._last is not None else (Kind.HELD, rendered[0])
            out.append(self._output(index, pos, image, kind,
                                    capture_us=self._capture_at(frame.capture_us, frame.pts, pos)))
        for (index, pos), image in zip(targets, rendered):
            kind = Kind.SENT if abs(pos - round(pos)) < 1e-9 else Kind.INTERPOLATED
            out.append(self._output(index, pos, image, kind,
                                    capture_us=self._capture_at(frame.capture_us, frame.pts, pos)))
        self._last = out[-1]
        return [out]

    def finish(self, fill: bool = True) -> list[OutputFrame]:
        if self.ended:
            return []
        self.ended = True
        out = []
        total = self.hello.frame_count if self.hello is not None and fill else 0
        if self._last is not None:
            # However long the hello said the stream is, hold the last frame no further than a frame may jump.
            total = min(total, int(self._last.position) + 1 + MAX_PTS_STEP)
        while self._last is not None and self._next_index * self._ratio <= total - 1 + 1e-9:
            pos = self._next_index * self._ratio
            capture_us = self._capture_at(self._last.capture_us, self._last.position, pos)
            out.append(self._output(self._next_index, pos, self._last.frame, Kind.HELD, capture_us=capture_us))
            self._next_index += 1
        return out

"""Training examples: source frames, paired with what a receiver really gets for them.

A receiver never sees a clean downscaled frame: it sees the low-res frame
after the payload codec (vp9 or h264, 4:4:4), with its blocking and
ringing. A network trained on clean downscales learns to sharpen codec noise.
So `Examples` codes every clip's low-res frames through the very
`FrameEncoder`/`FrameDecoder` pair a stream uses, at each scale and crf the
model must serve, once, and training batches are cut from those.

Batches are crops: a step on 16 crops of 96x96 costs a fraction of a step on
whole frames and sees more variety. A crop's low-res input is upsampled with
a margin of real neighbouring pixels, so its edges match what upsampling the
whole frame gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .framecodec import DEFAULT_CODEC, default_crf, model_crf, round_trip
from .resample import downscale, to_tensor, to_uint8, upscale

CROP = 96
"""Side of a training crop: a multiple of every scale up to 16 and of the SR latent factor 4."""
MARGIN = 3
"""Low-res pixels of context around a crop when it is upsampled (bicubic reaches 2)."""


@dataclass
class Batch:
    """One training step's data, on the CPU until `to` moves it."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lows: list[torch.Tensor] | None = None
    """The low-res frames the inputs came from, where an objective needs them (back-projection)."""
    scale: int = 0
    """The scale every input of the batch was sent at (0: not from a stream)."""
    crf: int = 0
    """The payload quality every input was coded at, as models are conditioned on it (`model_crf`: h264 crf
    units; 0: not coded)."""

    def to(self, device: torch.device | str) -> "Batch":
        lows = [low.to(device) for low in self.lows] if self.lows is not None else None
        return replace(self, inputs=self.inputs.to(device), targets=self.targets.to(device), lows=lows)


def code_lowres(frames: np.ndarray, scale: int, crf: int | None = None, fps: float = 30.0,
                keyint: int = 60, codec: str = DEFAULT_CODEC) -> np.ndarray:
    """(N, h, w, 3) uint8: ``frames`` downscaled by ``scale``, through ``codec`` and back, as a stream sends them."""
    low = to_uint8(downscale(to_tensor(frames), scale))
    return round_trip(codec, low, fps, crf=crf, keyint=keyint).frames


@dataclass
class Examples:
    """Frames of one or more clips, and their coded low-res versions at each (scale, crf) of ``codec``."""

    clips: list[np.ndarray]
    """Each (N, H, W, 3) uint8; clips may differ in size."""
    fps: list[float] = field(default_factory=list)
    scales: tuple[int, ...] = (4,)
    crfs: tuple[int, ...] = ()
    """In ``codec``'s own units; empty: its default."""
    codec: str = DEFAULT_CODEC
    _coded: dict[tuple[int, int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.clips or any(len(c) == 0 for c in self.clips):
            raise ValueError("no frames to train on")
        if not self.fps:
            self.fps = [30.0] * len(self.clips)
        if not self.crfs:
            self.crfs = (default_crf(self.codec),)
        for clip in self.clips:
            h, w = clip.shape[1:3]
            bad = [s for s in self.scales if h % s or w % s]
            if bad:
                raise ValueError(f"scale {bad[0]} does not divide the frame size {h}x{w}")
        # Crops are CROP square, or the largest square that fits the smallest clip, in whole low-res pixels at
        # every scale and whole cells of an SR code (multiples of 16).
        multiple = math.lcm(16, *self.scales)
        side = min([CROP] + [min(c.shape[1:3]) for c in self.clips])
        self.crop = side - side % multiple
        if self.crop == 0:
            raise ValueError(f"frames of {self.clips[0].shape[1]}x{self.clips[0].shape[2]} are too small to train on "
                             f"(at least {multiple}x{multiple})")

    @classmethod
    def single(cls, frames: np.ndarray, fps: float = 30.0, **kwargs) -> "Examples":
        return cls([frames], [fps], **kwargs)

    @property
    def frame_count(self) -> int:
        return sum(len(c) for c in self.clips)

    def coded(self, clip: int, scale: int, crf: int) -> np.ndarray:
        """The low-res frames a receiver gets for clip ``clip`` at this scale and crf (coded once, then kept)."""
        key = (clip, scale, crf)
        if key not in self._coded:
            self._coded[key] = code_lowres(self.clips[clip], scale, crf, self.fps[clip], codec=self.codec)
        return self._coded[key]

    def prepare(self, progress: bool = False) -> None:
        """Code every clip at every scale and crf now (training would otherwise pause for it)."""
        jobs = [(c, s, q) for c in range(len(self.clips)) for s in self.scales for q in self.crfs]
        if progress:
            from tqdm import tqdm

            jobs = tqdm(jobs, desc="coding low-res frames", unit="variant", mininterval=1.0)
        for job in jobs:
            self.coded(*job)

    def _pick(self, generator: torch.Generator) -> tuple[int, int]:
        """A random (clip, frame), every frame of every clip equally likely."""
        index = int(torch.randint(self.frame_count, (1,), generator=generator))
        for clip, frames in enumerate(self.clips):
            if index < len(frames):
                return clip, index
            index -= len(frames)
        raise AssertionError("unreachable")

    def whole_frames(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """(batch, 3, H, W) float frames of one randomly chosen clip (whole frames must share a size)."""
        clip, _ = self._pick(generator)
        idx = torch.randint(len(self.clips[clip]), (batch,), generator=generator)
        return to_tensor(self.clips[clip][idx.numpy()])

    def crops(self, batch: int, generator: torch.Generator, scale: int, crf: int, crop: int | None = None) -> Batch:
        """Random crops sent at ``scale`` and ``crf``: (bicubic upsampling of the coded low-res crop, the
        source crop), each (batch, 3, crop, crop).

        Crops are placed uniformly. (Placing half of them where bicubic errs
        most, since a talking head is mostly background bicubic gets right,
        measured no better: +2.21 and +2.16 dB against +2.15 on its held-out
        tail.)
        """
        crop = crop or self.crop
        inputs, targets = [], []
        for _ in range(batch):
            clip, i = self._pick(generator)
            low_all = self.coded(clip, scale, crf)
            frames = self.clips[clip]
            lh, lw = low_all.shape[1:3]
            side = crop // scale
            y0 = int(torch.randint(lh - side + 1, (1,), generator=generator))
            x0 = int(torch.randint(lw - side + 1, (1,), generator=generator))
            ly0, lx0 = max(0, y0 - MARGIN), max(0, x0 - MARGIN)
            ly1, lx1 = min(lh, y0 + side + MARGIN), min(lw, x0 + side + MARGIN)
            low = to_tensor(low_all[i, ly0:ly1, lx0:lx1])
            up = upscale(low, ((ly1 - ly0) * scale, (lx1 - lx0) * scale))
            oy, ox = (y0 - ly0) * scale, (x0 - lx0) * scale
            inputs.append(up[:, :, oy : oy + crop, ox : ox + crop])
            targets.append(to_tensor(frames[i, y0 * scale : y0 * scale + crop, x0 * scale : x0 * scale + crop]))
        return Batch(torch.cat(inputs), torch.cat(targets), scale=scale, crf=model_crf(self.codec, crf))

"""`vsa compare`: score a video that was received or decoded against its source.

``vrecv --output`` and ``vsa decode -o`` write mp4s; this measures them the
way `vsa decode --reference` measures a decode (mean PSNR and SSIM), so a
live stream and an offline decode can be compared on the same footing. The
reference is read at the output's size. An output at k times the source's
frame rate is scored on every k-th frame, the ones that sit on source frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vsa.common.metrics import mean_psnr, psnr, ssim
from vsa.common.resample import to_tensor
from vsa.common.video import VideoSource, read_video


@dataclass
class Comparison:
    frames: int
    """Output frames scored (those on source frames, within the range)."""
    size: tuple[int, int]
    psnr: float
    ssim: float
    first: int
    end: int

    def summary(self) -> str:
        return (f"source frames {self.first}..{self.end - 1} ({self.frames} scored) at "
                f"{self.size[0]}x{self.size[1]}: PSNR {self.psnr:.2f} dB, SSIM {self.ssim:.3f}")

    def as_dict(self) -> dict:
        return asdict(self)


def compare(output: str, reference: str, frame_range: tuple[int, int] | None = None) -> Comparison:
    """Mean PSNR and SSIM of ``output`` against ``reference`` over source frames [first, end)."""
    with VideoSource(output) as src:
        native = (src.info.height, src.info.width)
    out, out_info, size = read_video(output, size=native)
    with VideoSource(reference) as src:
        ref_info = src.info
    ratio = out_info.fps / ref_info.fps
    step = round(ratio)
    if step < 1 or abs(ratio - step) > 1e-3:
        raise ValueError(f"{output} runs at {out_info.fps:g} fps and {reference} at {ref_info.fps:g} fps: "
                         "compare needs the output at a whole multiple of the source's frame rate")
    on_source = out[::step]
    first, end = frame_range or (0, len(on_source))
    end = min(end, len(on_source))
    if first >= end:
        raise ValueError(f"no frames to score: the output covers {len(on_source)} source frames")
    ref, _, _ = read_video(reference, size=size, limit=end)
    end = min(end, len(ref))
    a, b = to_tensor(on_source[first:end]), to_tensor(ref[first:end])
    return Comparison(end - first, size, mean_psnr(psnr(a, b)), float(ssim(a, b).mean()), first, end)

"""The operating-point ladder: which scale and stride to stream at for a target bitrate.

`vsa eval` measures, for every (scale, stride, quality), what rate a stream
costs and what PSNR it reaches. The best point at each rate is the ladder a
rate-limited sender climbs: below a rung's rate, a coarser rung at a higher
payload quality looks better than this rung starved.

`DEFAULT_LADDER` comes from `vsa eval --arch sr --mode cold,live` run on
2026-11-29 (the shipped base, vp9 crf 30; 192x256 at 30 fps; the median over
person_signing_webcam, talking_head_indoor_woman, street_pedestrians_static
and asl_office_session of each point's rate and PSNR), keeping only the
points no other point beats at a lower median rate. Two things stand out:
sending every fourth frame at scale 2 (23.5 kbps, live 32.9 dB) beats
every frame at scale 4 (23.7 kbps, 30.7 dB), because latent interpolation
fills the gaps well at 30 fps; and scale 16 is never worth it.

Rates scale with the stream's pixels per second (the ladder was measured at
192x256, 30 fps). Clips differ: the static street costs half the median at
each rung, so the ladder is a default, not a law.
"""

from __future__ import annotations

from dataclasses import dataclass

LADDER_PIXELS_PER_SECOND = 192 * 256 * 30.0
"""Where `DEFAULT_LADDER`'s rates were measured."""
SQUEEZE = 1.25
"""A rung is chosen for targets down to 1/SQUEEZE of its rate: the codec's rate control can take a rung down a
little, but cannot raise a coarse one far. Asked for 20 kbps at scale 8, stride 4 (nominal 12.8 kbps at
256x448), libvpx delivered 12.5 kbps whatever it was asked, its tiny frames already at their best quality."""


@dataclass(frozen=True)
class Rung:
    kbps: float
    """The rung's median rate at `LADDER_PIXELS_PER_SECOND`, at the payload's default quality."""
    scale: int
    stride: int
    psnr: float
    """Its median PSNR there, fine-tuned on each clip's first half (`vsa eval --mode live`), for the record."""


DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung(5.5, 8, 4, 25.97),
    Rung(8.8, 8, 2, 26.22),
    Rung(11.1, 4, 4, 29.86),
    Rung(16.7, 4, 2, 30.35),
    Rung(23.5, 2, 4, 32.91),
    Rung(34.2, 2, 2, 33.96),
    Rung(46.3, 2, 1, 34.72),
)


def rung_kbps(rung: Rung, size: tuple[int, int], fps: float) -> float:
    """``rung``'s rate for a stream of ``size`` (height, width) at ``fps``."""
    return rung.kbps * size[0] * size[1] * fps / LADDER_PIXELS_PER_SECOND


def choose(kbps: float, size: tuple[int, int], fps: float, scales: tuple[int, ...] | None = None,
           ladder: tuple[Rung, ...] = DEFAULT_LADDER) -> Rung:
    """The highest rung whose rate is at most ``kbps`` times `SQUEEZE` (the lowest when none is) among those
    whose scale divides ``size`` and is one of ``scales`` (the model's; None: any)."""
    usable = [r for r in ladder if size[0] % r.scale == 0 and size[1] % r.scale == 0
              and (scales is None or r.scale in scales)]
    if not usable:
        raise ValueError(f"no rung of the ladder suits a {size[0]}x{size[1]} stream"
                         + (f" with a model for scales {', '.join(map(str, scales))}" if scales else "")
                         + "; give --scale and --stride")
    usable.sort(key=lambda r: r.kbps)
    fitting = [r for r in usable if rung_kbps(r, size, fps) <= kbps * SQUEEZE]
    return fitting[-1] if fitting else usable[0]


def settle(kbps: float, size: tuple[int, int], fps: float, scale: int | None, stride: int | None,
           scales: tuple[int, ...] | None = None) -> tuple[int, int]:
    """(scale, stride) for a stream with a target: what the caller fixed, the ladder's choice for the rest."""
    if scale is not None and stride is not None:
        return scale, stride
    rungs = DEFAULT_LADDER if scale is None else tuple(r for r in DEFAULT_LADDER if r.scale == scale) or DEFAULT_LADDER
    rung = choose(kbps, size, fps, scales if scale is None else None, rungs)
    return (scale if scale is not None else rung.scale), (stride if stride is not None else rung.stride)

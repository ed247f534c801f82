"""The operating-point ladder: which scale and stride to stream at for a target bitrate.

`vsa eval` measures, for every (scale, stride, quality), what rate a stream
costs and what PSNR it reaches. The best point at each rate is the ladder a
rate-limited sender climbs: below a rung's rate, a coarser rung at a higher
payload quality looks better than this rung starved.

`DEFAULT_LADDER` is `from_points` of `vsa eval --arch sr --mode cold,live`
run on 2026-11-29 (the shipped base, vp9 crf 30; 192x256; the median over
person_signing_webcam, talking_head_indoor_woman, street_pedestrians_static
and asl_office_session of each point's rate, scaled to 30 fps, and of its
live PSNR), keeping only the points no other beats at a lower median rate.
Sending every fourth frame at scale 2 (29.4 kbps, 32.9 dB) beats every frame
at scale 4 (26.1 kbps, 30.7 dB) by 2.2 dB for 13% more rate: latent
interpolation fills the gaps well at 30 fps. `vsa eval --ladder PATH` writes
one for other clips or models, which `--ladder PATH` reads.

Rates scale with the stream's pixels per second (the ladder was measured at
192x256, 30 fps). Clips differ: the static street costs half the median at
each rung, so the ladder is a default, not a law.

A live stream climbs it with two costs a file does not have. Each frame sent
is a datagram whose headers cost `LIVE_FRAME_BYTES` on the path (24 kbps at
30 frames a second: stride 1 costs more than its payload says). And each
stride costs latency (`rung_latency_ms`): `within_latency` keeps the rungs a
latency goal allows (`vsend --latency`, 150 ms by default: stride 2 at 30
fps, where stride 4 took the lossy 60 kbps link's median to 230-400 ms).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass

from vsa.protocol.fragment import HEADER, WIRE_OVERHEAD

MAX_RUNGS = 64
DEFAULT_LATENCY_MS = 150.0
"""A live stream's latency goal (`within_latency`): ITU-T G.114's bound for one-way delay in conversation."""
PIPELINE_MS = 50.0
"""Capture to display less the path, for a sent frame: coding it (14 ms median) and reconstructing it once whole
(34 ms) on this 2-core machine, in one process at 60 kbps (README, Rate control)."""
MIN_TRANSIT_MS = 30.0
"""The least a latency goal leaves the frames' time on the path (`transit_budget_ms`): one small frame's length on
a slow link."""
LIVE_FRAME_BYTES = HEADER.size + WIRE_OVERHEAD
"""What a live stream's frame costs on the path beyond its coded message (one datagram's headers): at 30 frames a
second, 24 kbps, as much as a whole rung."""
LADDER_PIXELS_PER_SECOND = 192 * 256 * 30.0
"""Where `DEFAULT_LADDER`'s rates were measured."""
SQUEEZE = 1.25
"""A rung is chosen for targets down to 1/SQUEEZE of its rate: a higher crf can take a rung down a little, but
a lower one cannot raise a coarse rung far. Asked for 20 kbps at scale 8, stride 4 (12.8 kbps at 256x448 by
the first ladder), the talking head's 32x56 frames delivered 12.5 kbps at any quality."""


@dataclass(frozen=True)
class Rung:
    kbps: float
    """The rung's median rate at `LADDER_PIXELS_PER_SECOND`, at the payload's default quality."""
    scale: int
    stride: int
    psnr: float
    """Its median PSNR there, fine-tuned on each clip's first half (`vsa eval --mode live`), for the record."""


DEFAULT_LADDER: tuple[Rung, ...] = (
    Rung(3.37, 16, 4, 22.21),
    Rung(5.46, 16, 2, 22.34),
    Rung(5.83, 8, 4, 25.97),
    Rung(9.04, 8, 2, 26.22),
    Rung(12.88, 4, 4, 29.86),
    Rung(17.95, 4, 2, 30.35),
    Rung(26.05, 4, 1, 30.68),
    Rung(29.37, 2, 4, 32.91),
    Rung(39.57, 2, 2, 33.96),
    Rung(55.59, 2, 1, 34.72),
)


def rung_kbps(rung: Rung, size: tuple[int, int], fps: float, frame_bytes: float = 0.0) -> float:
    """``rung``'s rate for a stream of ``size`` (height, width) at ``fps``, with ``frame_bytes`` more for every
    frame sent (a live stream's datagram headers, `LIVE_FRAME_BYTES`: the ladder's rates are the stream's own)."""
    return (rung.kbps * size[0] * size[1] * fps / LADDER_PIXELS_PER_SECOND
            + fps / rung.stride * frame_bytes * 8 / 1000)


def suitable(ladder: tuple[Rung, ...], size: tuple[int, int], scales: tuple[int, ...] | None = None,
             scale: int | None = None, stride: int | None = None) -> tuple[Rung, ...]:
    """The rungs a stream of ``size`` may take: a scale that divides it and is one of ``scales`` (the model's),
    and the ``scale`` and ``stride`` the caller fixed (None: any of each)."""
    return tuple(r for r in ladder if size[0] % r.scale == 0 and size[1] % r.scale == 0
                 and (scales is None or r.scale in scales) and scale in (None, r.scale) and stride in (None, r.stride))


def choose(kbps: float, size: tuple[int, int], fps: float, scales: tuple[int, ...] | None = None,
           ladder: tuple[Rung, ...] = DEFAULT_LADDER, frame_bytes: float = 0.0) -> Rung:
    """The highest rung whose rate is at most ``kbps`` times `SQUEEZE` (the lowest when none is) among those
    whose scale divides ``size`` and is one of ``scales`` (the model's; None: any)."""
    usable = list(suitable(ladder, size, scales))
    if not usable:
        raise ValueError(f"no rung of the ladder suits a {size[0]}x{size[1]} stream"
                         + (f" with a model for scales {', '.join(map(str, scales))}" if scales else "")
                         + "; give --scale and --stride")
    usable.sort(key=lambda r: r.kbps)
    fitting = [r for r in usable if rung_kbps(r, size, fps, frame_bytes) <= kbps * SQUEEZE]
    return fitting[-1] if fitting else usable[0]


def settle(kbps: float, size: tuple[int, int], fps: float, scale: int | None, stride: int | None,
           scales: tuple[int, ...] | None = None, ladder: tuple[Rung, ...] = DEFAULT_LADDER,
           frame_bytes: float = 0.0) -> tuple[int, int]:
    """(scale, stride) for a stream with a target: what the caller fixed, the ladder's choice for the rest."""
    if scale is not None and stride is not None:
        return scale, stride
    # Only the rungs with what the caller fixed: a fixed stride 2 chose its scale by stride 4's rates.
    rungs = suitable(ladder, size, None, scale, stride) or ladder
    rung = choose(kbps, size, fps, scales if scale is None else None, rungs, frame_bytes)
    return (scale if scale is not None else rung.scale), (stride if stride is not None else rung.stride)


def rung_latency_ms(stride: int, fps: float) -> float:
    """What a rung's stride adds to latency: its interpolated frames wait up to ``stride - 1`` frame times for the
    next sent frame, and a sent frame takes about ``stride`` frame times to cross a link the stream fills."""
    return (2 * stride - 1) / fps * 1000


def transit_budget_ms(latency_ms: float, stride: int, fps: float) -> float:
    """What a latency goal of ``latency_ms`` leaves the frames' time on the path at ``stride``: the goal less
    `PIPELINE_MS` and the interpolated frames' wait for the next sent one, at least `MIN_TRANSIT_MS`."""
    return max(MIN_TRANSIT_MS, latency_ms - PIPELINE_MS - (stride - 1) / fps * 1000)


def within_latency(ladder: tuple[Rung, ...], fps: float, latency_ms: float) -> tuple[Rung, ...]:
    """The rungs whose stride fits a latency of ``latency_ms`` (`rung_latency_ms`; 0: every rung), and the finest
    stride's whatever it is."""
    if not latency_ms or not ladder:
        return ladder
    finest = min(r.stride for r in ladder)
    return tuple(r for r in ladder if r.stride == finest or rung_latency_ms(r.stride, fps) <= latency_ms)


def from_points(points: list[dict], size: tuple[int, int], mode: str = "live", method: str = "vsa-sr",
                crf: int | None = None) -> tuple[Rung, ...]:
    """A ladder from `vsa eval`'s points (results.json): for each (scale, stride) at ``crf`` (default: the
    most common crf among the points), the median rate (scaled to `LADDER_PIXELS_PER_SECOND`) and PSNR over
    the clips, keeping only the rungs no other beats at a lower rate."""
    chosen = [p for p in points if p.get("mode") == mode and p.get("method") == method
              and p.get("seconds") and p.get("kbps") is not None and p.get("psnr") is not None]
    if crf is None and chosen:
        crf = statistics.mode(p["params"].get("crf", 0) for p in chosen)
    groups: dict[tuple[int, int], list[dict]] = {}
    for p in chosen:
        if p["params"].get("crf", 0) == crf:
            groups.setdefault((p["params"]["scale"], p["params"]["stride"]), []).append(p)
    if not groups:
        raise ValueError(f"no {method} points in mode {mode} to build a ladder from (run vsa eval with --mode {mode})")
    rungs = []
    for (scale, stride), group in groups.items():
        rates = [p["kbps"] * LADDER_PIXELS_PER_SECOND / (size[0] * size[1] * p["frames"] / p["seconds"])
                 for p in group]
        rungs.append(Rung(round(statistics.median(rates), 2), scale, stride,
                          round(statistics.median(p["psnr"] for p in group), 2)))
    rungs.sort(key=lambda r: (r.kbps, -r.psnr))
    front: list[Rung] = []
    for rung in rungs:
        if not front or rung.psnr > front[-1].psnr:
            front.append(rung)
    return tuple(front)


def save(path: str, ladder: tuple[Rung, ...], note: str = "") -> None:
    """Write ``ladder`` as JSON (`vsa eval --ladder`), for `vsend --ladder` and `vsa encode --ladder`."""
    with open(path, "w") as f:
        json.dump({"version": 1, "note": note, "pixels_per_second": LADDER_PIXELS_PER_SECOND,
                   "rungs": [asdict(r) for r in ladder]}, f, indent=1)


def load_or_default(path: str | None) -> tuple[Rung, ...]:
    """The ladder at ``path`` (``--ladder``), or `DEFAULT_LADDER` when none is given."""
    return DEFAULT_LADDER if path is None else load(path)


def load(path: str) -> tuple[Rung, ...]:
    """A ladder written by `save`; ValueError, in one line, for anything else."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(1 << 20))
        rungs = data["rungs"]
        if data.get("version") != 1 or not isinstance(rungs, list) or not 1 <= len(rungs) <= MAX_RUNGS:
            raise ValueError("not a version 1 ladder of 1 to 64 rungs")
        ladder = []
        for r in rungs:
            rung = Rung(float(r["kbps"]), int(r["scale"]), int(r["stride"]), float(r["psnr"]))
            if not (0 < rung.kbps < 1e6 and 1 <= rung.scale <= 64 and 1 <= rung.stride <= 64):
                raise ValueError(f"rung {r} is out of range")
            ladder.append(rung)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a ladder written by vsa eval --ladder: {exc}") from None
    return tuple(sorted(ladder, key=lambda r: r.kbps))

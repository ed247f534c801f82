"""Rate-distortion arithmetic: Pareto fronts, BD-rate, and the model's break-even time.

BD-rate comes from the ``bjontegaard`` package (FAU-LMS), whose PCHIP variant
matches the JVET common-test-conditions spreadsheet; we use its Akima variant,
which its authors found the most stable. Here we only choose the points.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable, Sequence

import numpy as np

Point = tuple[float, float]  # (kbps, psnr)


def pareto(points: Iterable[Point]) -> list[Point]:
    """The points no other point beats on both rate and quality, by increasing rate.

    Equal rates keep the best quality; the result is strictly increasing in
    both coordinates, which is what BD interpolation needs.
    """
    front: list[Point] = []
    for kbps, quality in sorted(points, key=lambda p: (p[0], -p[1])):
        if not (math.isfinite(kbps) and math.isfinite(quality)) or kbps <= 0:
            continue
        if front and kbps == front[-1][0]:
            continue
        if not front or quality > front[-1][1]:
            front.append((kbps, quality))
    return front


def psnr_overlap(anchor: Sequence[Point], test: Sequence[Point]) -> float:
    """Width in dB of the quality range both curves cover (0 when they do not meet)."""
    if not anchor or not test:
        return 0.0
    low = max(min(q for _, q in anchor), min(q for _, q in test))
    high = min(max(q for _, q in anchor), max(q for _, q in test))
    return max(0.0, high - low)


def bd_rate(anchor: Sequence[Point], test: Sequence[Point], min_overlap_db: float = 0.2) -> float | None:
    """Average rate difference of ``test`` against ``anchor`` at equal PSNR, in percent.

    Negative means ``test`` needs fewer bits. None when the two Pareto fronts
    share less than ``min_overlap_db`` of PSNR range (or have under two
    points), because there is then nothing honest to average over.
    """
    import bjontegaard

    a, t = pareto(anchor), pareto(test)
    if len(a) < 2 or len(t) < 2 or psnr_overlap(a, t) < min_overlap_db:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns on small overlaps; we report the overlap instead
        value = bjontegaard.bd_rate([r for r, _ in a], [q for _, q in a], [r for r, _ in t], [q for _, q in t],
                                    method="akima", require_matching_points=False, min_overlap=0)
    return float(value) if math.isfinite(value) else None


def bd_psnr(anchor: Sequence[Point], test: Sequence[Point]) -> float | None:
    """Average PSNR difference of ``test`` against ``anchor`` at equal rate, in dB (None without overlap)."""
    import bjontegaard

    a, t = pareto(anchor), pareto(test)
    if len(a) < 2 or len(t) < 2:
        return None
    if min(a[-1][0], t[-1][0]) <= max(a[0][0], t[0][0]):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_psnr([r for r, _ in a], [q for _, q in a], [r for r, _ in t], [q for _, q in t],
                                    method="akima", require_matching_points=False, min_overlap=0)
    return float(value) if math.isfinite(value) else None


def rate_at_quality(curve: Sequence[Point], quality: float) -> float | None:
    """The rate ``curve`` needs for ``quality``, log-linear between its Pareto points; None outside its range."""
    front = pareto(curve)
    if not front or not front[0][1] <= quality <= front[-1][1]:
        return None
    qualities = [q for _, q in front]
    log_rates = [math.log(r) for r, _ in front]
    return float(math.exp(np.interp(quality, qualities, log_rates)))


def quality_at_rate(curve: Sequence[Point], kbps: float) -> float | None:
    """The PSNR ``curve`` reaches at ``kbps``, linear in log-rate between Pareto points; None outside its range."""
    front = pareto(curve)
    if not front or not front[0][0] <= kbps <= front[-1][0]:
        return None
    return float(np.interp(math.log(kbps), [math.log(r) for r, _ in front], [q for _, q in front]))


def break_even_seconds(model_bytes: int, vsa_kbps: float, other_kbps: float | None) -> float | None:
    """How long a stream must run before vsa's model plus payload costs no more than the other codec.

    At equal quality vsa sends ``vsa_kbps`` and the other codec ``other_kbps``;
    the model's bits are paid once. None means never: the other codec is no
    more expensive per second (or cannot reach that quality in the sweep).
    """
    if other_kbps is None or other_kbps <= vsa_kbps:
        return None
    return model_bytes * 8 / 1000 / (other_kbps - vsa_kbps)


def total_kbps(payload_kbps: float, model_bytes: int, minutes: float) -> float:
    """Payload rate plus the model's bits spread over a stream of ``minutes``."""
    return payload_kbps + model_bytes * 8 / 1000 / (minutes * 60)

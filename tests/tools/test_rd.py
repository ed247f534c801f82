"""BD-rate and the other rate-distortion arithmetic, against values known by construction."""

from __future__ import annotations

import math

import pytest

from vsa.tools import rd

ANCHOR = [(100.0, 30.0), (200.0, 33.0), (400.0, 35.5), (800.0, 37.5)]


def test_bd_rate_of_a_curve_needing_fewer_bits_at_every_quality():
    # The same curve at 80% of the rate saves exactly 20% at every PSNR, whatever the interpolation.
    test = [(r * 0.8, q) for r, q in ANCHOR]
    assert rd.bd_rate(ANCHOR, test) == pytest.approx(-20.0, abs=1e-6)
    assert rd.bd_rate(test, ANCHOR) == pytest.approx(25.0, abs=1e-6)


def test_bd_psnr_of_a_curve_one_db_higher():
    test = [(r, q + 1.0) for r, q in ANCHOR]
    assert rd.bd_psnr(ANCHOR, test) == pytest.approx(1.0, abs=1e-6)


def test_bd_rate_matches_the_package_example_with_its_points_shifted():
    # The bjontegaard package's own example data; doubling the test rates adds log2 to every log-rate,
    # so the BD-rate r becomes (1 + r) * 2 - 1 exactly.
    anchor = [(9487.76, 40.037), (4593.60, 38.615), (2486.44, 36.845), (1358.24, 34.851)]
    test = [(9787.80, 40.121), (4469.00, 38.651), (2451.52, 36.970), (1356.24, 34.987)]
    base = rd.bd_rate(anchor, test)
    assert base is not None and -10 < base < 0  # the test curve is slightly better
    doubled = rd.bd_rate(anchor, [(r * 2, q) for r, q in test])
    assert doubled == pytest.approx((1 + base / 100) * 2 * 100 - 100, abs=1e-6)


def test_no_bd_rate_without_a_shared_quality_range():
    far = [(r, q + 20) for r, q in ANCHOR]
    assert rd.bd_rate(ANCHOR, far) is None
    assert rd.bd_rate(ANCHOR, ANCHOR[:1]) is None


def test_pareto_keeps_only_undominated_points_in_rate_order():
    points = [(50, 31.0), (10, 25.0), (20, 24.0), (30, 31.0), (40, 33.0), (40, 32.0), (5, float("nan"))]
    assert rd.pareto(points) == [(10, 25.0), (30, 31.0), (40, 33.0)]


def test_rate_and_quality_lookups_interpolate_in_log_rate_and_refuse_to_extrapolate():
    assert rd.rate_at_quality(ANCHOR, 33.0) == pytest.approx(200.0)
    assert rd.rate_at_quality(ANCHOR, 31.5) == pytest.approx(math.sqrt(100 * 200))
    assert rd.rate_at_quality(ANCHOR, 40.0) is None
    assert rd.quality_at_rate(ANCHOR, math.sqrt(200 * 400)) == pytest.approx(34.25)
    assert rd.quality_at_rate(ANCHOR, 50.0) is None


def test_break_even_is_the_model_bits_over_the_rate_saved():
    # A 100 kB model, 40 kbps cheaper than the other codec: 800 kbit / 40 kbps = 20 s.
    assert rd.break_even_seconds(100_000, 10.0, 50.0) == pytest.approx(20.0)
    assert rd.break_even_seconds(100_000, 50.0, 40.0) is None
    assert rd.break_even_seconds(100_000, 50.0, None) is None
    assert rd.total_kbps(10.0, 75_000, 1) == pytest.approx(20.0)

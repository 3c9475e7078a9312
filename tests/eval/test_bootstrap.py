"""Percentile-bootstrap confidence intervals of a mean over routes."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.eval.bootstrap import bootstrap_mean_ci, format_ci, route_cis


def test_constant_data_gives_a_zero_width_interval():
    ci = bootstrap_mean_ci([100.0] * 12, resamples=500)
    assert ci["mean"] == ci["low"] == ci["high"] == 100.0
    assert ci["n"] == 12 and ci["confidence"] == 0.95


def test_interval_contains_the_mean_and_narrows_with_more_routes():
    rng = np.random.default_rng(3)
    small = bootstrap_mean_ci(rng.uniform(0, 100, 8), resamples=2000)
    large = bootstrap_mean_ci(rng.uniform(0, 100, 800), resamples=2000)
    for ci in (small, large):
        assert ci["low"] < ci["mean"] < ci["high"]
    assert large["high"] - large["low"] < small["high"] - small["low"]


def test_deterministic_given_the_seed():
    x = np.random.default_rng(1).uniform(0.0, 100.0, 9)
    assert bootstrap_mean_ci(x, seed=7) == bootstrap_mean_ci(x, seed=7)
    assert bootstrap_mean_ci(x, seed=7) != bootstrap_mean_ci(x, seed=8)


def test_matches_the_normal_approximation_on_many_routes():
    x = np.random.default_rng(0).normal(50.0, 10.0, 400)
    ci = bootstrap_mean_ci(x, resamples=4000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert ci["high"] - ci["low"] == pytest.approx(2 * half, rel=0.1)


def test_two_values_span_their_range():
    ci = bootstrap_mean_ci([0.0, 1.0], resamples=4000)
    assert (ci["low"], ci["mean"], ci["high"]) == (0.0, 0.5, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": []}, "values: got none"),
        ({"values": [1.0, float("nan")]}, "values: got non-finite"),
        ({"values": [1.0], "confidence": 1.0}, "confidence: got 1.0"),
        ({"values": [1.0], "resamples": 0}, "resamples: got 0"),
    ],
)
def test_bad_input_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_mean_ci(**kwargs)


def test_route_cis_and_format():
    cis = route_cis({"driving_score": [10.0, 10.0], "collisions": [0, 0]}, resamples=10)
    assert set(cis) == {"driving_score", "collisions"}
    assert format_ci(cis["driving_score"]) == "10.0 [10.0, 10.0]"

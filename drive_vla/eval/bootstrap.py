"""Percentile-bootstrap confidence intervals of a mean over routes (pure functions of arrays)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, float]:
    """Mean of ``values`` with a percentile-bootstrap confidence interval.

    Routes are resampled with replacement ``resamples`` times from a generator seeded with ``seed``, so
    the interval is the same on every run for the same values.

    Args:
        values: one number per route (e.g. driving scores in %), all finite; at least one.
        confidence: coverage of the interval, in (0, 1).
        resamples: bootstrap resamples, >= 1.
        seed: seed of the resampling generator.

    Returns:
        {"mean", "low", "high", "confidence", "n"}; low <= mean <= high.

    Raises:
        ValueError: empty or non-finite values, a confidence outside (0, 1), resamples < 1.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("values: got none, expected at least one value per route")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"values: got non-finite entries {x[~np.isfinite(x)][:3].tolist()}, expected finite numbers")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: got {confidence!r}, expected a fraction in (0, 1)")
    if resamples < 1:
        raise ValueError(f"resamples: got {resamples!r}, expected >= 1")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(resamples, x.size))  # (R, N)
    means = x[idx].mean(axis=1)  # (R,)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    mean = float(x.mean())
    # Quantiles of a constant array can differ from its mean by rounding: keep low <= mean <= high.
    return {
        "mean": mean,
        "low": float(min(low, mean)),
        "high": float(max(high, mean)),
        "confidence": float(confidence),
        "n": int(x.size),
    }


def route_cis(
    per_route: dict[str, Sequence[float]],
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, dict[str, float]]:
    """``bootstrap_mean_ci`` for each named per-route quantity (e.g. driving_score, collisions)."""
    return {k: bootstrap_mean_ci(v, confidence, resamples, seed) for k, v in per_route.items()}


def format_ci(ci: dict[str, float], digits: int = 1) -> str:
    """``"72.3 [65.1, 79.0]"``."""
    return f"{ci['mean']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"

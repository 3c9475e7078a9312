"""UniformBinTokenizer: uniform bins over per-step (dx, dy) displacements, with error-feedback quantisation.

Layout and grammar (FUTURE_STEPS = 6, so 12 tokens per plan):
    ids 0 .. bins_x-1                  dx bins (shared by all steps)
    ids bins_x .. bins_x+bins_y-1      dy bins (shared by all steps)
    a plan is exactly dx_1 dy_1 dx_2 dy_2 ... dx_6 dy_6: position 2k takes only dx ids, 2k+1 only dy ids,
    and the plan may end only after all 12.

Bins: ``bins`` centres spaced evenly over the axis range [lo, hi], endpoints included, width
w = (hi - lo) / (bins - 1). Decoding sums the bin centres of the displacements.

Error feedback: encoding quantises each step's displacement measured from the *reconstructed* previous
waypoint (p_k - p^_{k-1}), so every waypoint's error is one rounding error, never a sum of them. If every
true displacement lies in [lo, hi] per axis ("in range"), then by induction |p_k - p^_k| <= w/2 per axis
for every k (the quantiser input stays within [lo - w/2, hi + w/2], where the nearest centre is at most
w/2 away), so the round-trip bound is sqrt(wx^2 + wy^2) / 2 at every waypoint. Without error feedback
the k-th waypoint's bound is k times that (k = 1..6). Out-of-range values clip to the end bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.tokenizers.base import (
    ActionTokenizer,
    build_config,
    check_fit_range,
    check_ids,
    check_percentiles,
    complete_plans,
    displacements,
    percentile_range,
    plan_xy,
    trajectory_from_xy,
)
from drive_vla.types import FUTURE_STEPS, Trajectory


@dataclass
class UniformBinConfig:
    """Settings of UniformBinTokenizer.

    Attributes:
        bins_x: number of dx bins (forward displacement per 0.5 s step).
        bins_y: number of dy bins (leftward displacement per 0.5 s step).
        range_x_m: (lo, hi) dx range in metres per step; the default covers -4..24 m/s; ``fit`` replaces it.
        range_y_m: (lo, hi) dy range in metres per step; ``fit`` replaces it.
        fit_percentiles: percentiles of the training displacements that ``fit`` takes as the range ...
        fit_margin: ... widened on each side by this fraction of the percentile span ...
        min_span_m: ... and to at least this span (about its centre), so a degenerate axis keeps resolution.
        error_feedback: quantise each step relative to the reconstructed previous waypoint (bound w/2 at
            every waypoint) instead of the true one (bound grows k * w/2).
    """

    bins_x: int = 256
    bins_y: int = 256
    range_x_m: tuple[float, float] = (-2.0, 12.0)
    range_y_m: tuple[float, float] = (-6.0, 6.0)
    fit_percentiles: tuple[float, float] = (0.1, 99.9)
    fit_margin: float = 0.1
    min_span_m: float = 0.5
    error_feedback: bool = True

    def __post_init__(self) -> None:
        for name in ("bins_x", "bins_y"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 100_000:
                raise ValueError(f"uniform.{name}: got {v!r}, expected an int in 2..100000")
        self.range_x_m = check_fit_range("uniform.range_x_m", self.range_x_m)
        self.range_y_m = check_fit_range("uniform.range_y_m", self.range_y_m)
        self.fit_percentiles = check_percentiles("uniform.fit_percentiles", self.fit_percentiles)
        if not 0.0 <= float(self.fit_margin) <= 10.0:
            raise ValueError(f"uniform.fit_margin: got {self.fit_margin!r}, expected a fraction in [0, 10]")
        if not 0.0 < float(self.min_span_m) < 1e3:
            raise ValueError(f"uniform.min_span_m: got {self.min_span_m!r}, expected metres in (0, 1000)")


class UniformBinTokenizer(ActionTokenizer):
    """Uniform displacement bins, 12 tokens per plan (see the module docstring for layout and bound)."""

    type_name = "uniform"
    config_class = UniformBinConfig

    def __init__(self, config: UniformBinConfig | None = None, **kwargs: Any) -> None:
        """Build from a config, or from config fields as keyword arguments (not both)."""
        if config is not None and kwargs:
            raise ValueError(f"UniformBinTokenizer: got config and keyword fields {sorted(kwargs)}, expected one")
        if config is None:
            config = build_config(UniformBinConfig, kwargs, "UniformBinTokenizer")
        if not isinstance(config, UniformBinConfig):
            raise ValueError(f"config: got {type(config).__name__}, expected UniformBinConfig")
        self.config = config
        self.fitted = False
        self._setup()

    def _setup(self) -> None:
        c = self.config
        self._lo = np.array([c.range_x_m[0], c.range_y_m[0]], dtype=np.float64)
        hi = np.array([c.range_x_m[1], c.range_y_m[1]], dtype=np.float64)
        self._bins = np.array([c.bins_x, c.bins_y], dtype=np.int64)
        self._width = (hi - self._lo) / (self._bins - 1)  # (2,) metres per bin, x and y
        self._hi = hi
        self._axis_ids = (list(range(c.bins_x)), list(range(c.bins_x, c.bins_x + c.bins_y)))

    # -- sizes and bounds -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self._bins.sum())

    @property
    def max_tokens(self) -> int:
        return 2 * FUTURE_STEPS

    @property
    def bin_width_m(self) -> tuple[float, float]:
        """(wx, wy): spacing of the dx and dy bin centres, metres."""
        return float(self._width[0]), float(self._width[1])

    @property
    def waypoint_bounds_m(self) -> np.ndarray:
        half = float(np.hypot(*self._width)) / 2.0
        if self.config.error_feedback:
            return np.full(FUTURE_STEPS, half)
        return half * np.arange(1, FUTURE_STEPS + 1, dtype=np.float64)

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, trajectories: Sequence[Trajectory]) -> UniformBinTokenizer:
        """Set the dx and dy ranges from percentiles of the training displacements (config fit_* fields)."""
        d = displacements_of(complete_plans(trajectories))  # (N * 6, 2)
        c = self.config
        ranges = [percentile_range(d[:, a], c.fit_percentiles, c.fit_margin, c.min_span_m) for a in (0, 1)]
        self.config = replace(c, range_x_m=ranges[0], range_y_m=ranges[1])
        self.fitted = True
        self._setup()
        return self

    def in_range(self, traj: Trajectory) -> bool:
        d = displacements(plan_xy(traj))
        return bool(np.all((d >= self._lo) & (d <= self._hi)))

    # -- arithmetic -------------------------------------------------------------------------------
    def _quantise(self, v: np.ndarray) -> np.ndarray:
        """(2,) displacement -> (2,) bin indices (nearest centre, clipped to the end bins)."""
        return np.clip(np.rint((v - self._lo) / self._width), 0, self._bins - 1).astype(np.int64)

    def _centre(self, idx: np.ndarray) -> np.ndarray:
        return self._lo + idx * self._width

    def encode(self, traj: Trajectory) -> list[int]:
        xy = plan_xy(traj)
        ids: list[int] = []
        recon = np.zeros(2)  # reconstructed previous waypoint p^_{k-1}
        prev = np.zeros(2)  # true previous waypoint p_{k-1}
        for p in xy:
            idx = self._quantise(p - (recon if self.config.error_feedback else prev))
            recon = recon + self._centre(idx)
            prev = p
            ids += [int(idx[0]), int(self._bins[0] + idx[1])]
        return ids

    def _check_plan(self, ids: Sequence[int], name: str, complete: bool) -> list[int]:
        out = check_ids(ids, self.vocab_size, name)
        if len(out) > self.max_tokens or (complete and len(out) != self.max_tokens):
            want = f"exactly {self.max_tokens}" if complete else f"at most {self.max_tokens}"
            raise ValueError(f"{name}: got {len(out)} ids, expected {want} (dx, dy for {FUTURE_STEPS} steps)")
        for i, v in enumerate(out):
            axis = i % 2
            lo, hi = self._axis_ids[axis][0], self._axis_ids[axis][-1]
            if not lo <= v <= hi:
                raise ValueError(f"{name}[{i}]: got {v}, expected a {'dx' if axis == 0 else 'dy'} id in {lo}..{hi}")
        return out

    def decode(self, ids: Sequence[int]) -> Trajectory:
        out = self._check_plan(ids, "ids", complete=True)
        idx = np.array(out, dtype=np.int64).reshape(FUTURE_STEPS, 2) - np.array([0, self._bins[0]])
        return trajectory_from_xy(np.cumsum(self._centre(idx), axis=0))

    def token_steps(self, ids: Sequence[int]) -> list[int]:
        """The waypoint index (0..5) each id of a plan belongs to: id 2k and 2k+1 are step k's dx and dy.

        Tokens of step k depend only on waypoints 0..k (error feedback looks back, never ahead), so a loss
        may skip the tokens of missing waypoints and keep the others.
        """
        return [i // 2 for i in range(len(self._check_plan(ids, "ids", complete=False)))]

    def allowed_next(self, prefix: Sequence[int]) -> tuple[list[int], bool]:
        n = len(self._check_plan(prefix, "prefix", complete=False))
        if n == self.max_tokens:
            return [], True
        return list(self._axis_ids[n % 2]), False

    # -- persistence ------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"fitted": self.fitted}

    @classmethod
    def _from_saved(cls, config: Any, state: dict[str, Any], directory: Path) -> UniformBinTokenizer:
        tok = cls(config)
        tok.fitted = bool(state.get("fitted", False))
        return tok

    def __repr__(self) -> str:
        c = self.config
        return (
            f"UniformBinTokenizer(bins=({c.bins_x}, {c.bins_y}), range_x_m={c.range_x_m}, range_y_m={c.range_y_m}, "
            f"error_feedback={c.error_feedback}, bound={self.round_trip_bound_m:.4f} m, fitted={self.fitted})"
        )


def displacements_of(plans: np.ndarray) -> np.ndarray:
    """(N, T, 2) waypoints -> (N * T, 2) per-step displacements (the first from the origin)."""
    d = np.diff(np.concatenate([np.zeros((plans.shape[0], 1, 2)), plans], axis=1), axis=1)
    return d.reshape(-1, 2)

"""Measures of an action tokenizer on a set of plans: tokens per plan and round-trip errors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drive_vla.tokenizers.base import ActionTokenizer, plan_xy
from drive_vla.types import Trajectory


def tokens_per_plan(tokenizer: ActionTokenizer, trajectories: Sequence[Trajectory]) -> float:
    """Mean number of tokens ``tokenizer.encode`` gives per plan."""
    if len(trajectories) == 0:
        raise ValueError("trajectories: got an empty sequence, expected at least one plan")
    return float(np.mean([len(tokenizer.encode(t)) for t in trajectories]))


def round_trip_errors_m(tokenizer: ActionTokenizer, trajectories: Sequence[Trajectory]) -> np.ndarray:
    """(N, FUTURE_STEPS) Euclidean position error of decode(encode(plan)) per plan and waypoint, metres."""
    if len(trajectories) == 0:
        raise ValueError("trajectories: got an empty sequence, expected at least one plan")
    errs = []
    for i, t in enumerate(trajectories):
        xy = plan_xy(t, f"trajectories[{i}]")
        rec = tokenizer.decode(tokenizer.encode(t)).xy.astype(np.float64)
        errs.append(np.hypot(*(rec - xy).T))
    return np.stack(errs)

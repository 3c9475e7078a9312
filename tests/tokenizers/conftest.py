"""Plan factories for tokenizer tests: realistic driving plans (kinematic rollouts) and random in-range plans."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.types import FUTURE_STEPS, STEP_DT_S, Trajectory

FINE_DT_S = 0.05
KINDS = ("straight", "speed_change", "stop", "turn", "lane_change")


def rollout(v0_mps: float, accel_mps2: float, yaw_rate_rps: np.ndarray) -> Trajectory:
    """Unicycle rollout over 3 s at 20 Hz, sampled at 2 Hz; ``yaw_rate_rps`` is (60,) per fine step."""
    n = int(round(FUTURE_STEPS * STEP_DT_S / FINE_DT_S))
    t = np.arange(n) * FINE_DT_S
    speed = np.clip(v0_mps + accel_mps2 * t, 0.0, 25.0)  # (60,)
    heading = np.cumsum(yaw_rate_rps * FINE_DT_S)
    xy = np.cumsum(np.stack([speed * np.cos(heading), speed * np.sin(heading)], axis=1) * FINE_DT_S, axis=0)
    every = int(round(STEP_DT_S / FINE_DT_S))
    return Trajectory(xy=xy[every - 1 :: every].astype(np.float32))


def driving_plans(n: int, seed: int = 0) -> list[Trajectory]:
    """``n`` realistic plans cycling through KINDS: straight at 0-20 m/s, speed changes, stops, turns, lane changes."""
    rng = np.random.default_rng(seed)
    steps = int(round(FUTURE_STEPS * STEP_DT_S / FINE_DT_S))
    t = np.arange(steps) * FINE_DT_S
    plans = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        wobble = rng.normal(0.0, 0.01) * np.ones(steps)  # road curvature noise, rad/s
        if kind == "straight":
            plans.append(rollout(rng.uniform(0.0, 20.0), 0.0, 0.0 * wobble))
        elif kind == "speed_change":
            plans.append(rollout(rng.uniform(0.0, 20.0), rng.uniform(-3.0, 2.0), wobble))
        elif kind == "stop":
            v0 = rng.uniform(0.0, 10.0) if rng.random() < 0.8 else 0.0
            plans.append(rollout(v0, -rng.uniform(2.0, 6.0), 0.0 * wobble))
        elif kind == "turn":
            peak = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 0.6)
            plans.append(rollout(rng.uniform(2.0, 10.0), rng.uniform(-1.0, 1.0), peak * np.minimum(1.0, t / 1.0)))
        else:
            amp = rng.uniform(-0.15, 0.15)
            plans.append(rollout(rng.uniform(5.0, 20.0), 0.0, amp * np.sin(2 * np.pi * t / 3.0) + wobble))
    return plans


def plans_from_displacements(d: np.ndarray) -> list[Trajectory]:
    """(N, 6, 2) per-step displacements -> N Trajectories."""
    return [Trajectory(xy=np.cumsum(di, axis=0).astype(np.float32)) for di in d]


def random_walk(tokenizer, rng: np.random.Generator, p_end: float = 0.3) -> list[int]:
    """A random grammar-valid id sequence: follow allowed_next, ending with probability p_end where allowed."""
    prefix: list[int] = []
    while True:
        allowed, may_end = tokenizer.allowed_next(prefix)
        if may_end and (not allowed or rng.random() < p_end):
            return prefix
        assert allowed, f"grammar dead end after {prefix}"
        prefix.append(int(rng.choice(allowed)))


@pytest.fixture(scope="session")
def train_plans() -> list[Trajectory]:
    return driving_plans(1000, seed=0)


@pytest.fixture(scope="session")
def test_plans() -> list[Trajectory]:
    return driving_plans(300, seed=1)


@pytest.fixture(scope="session")
def make_driving_plans():
    return driving_plans


@pytest.fixture(scope="session")
def make_plans_from_displacements():
    return plans_from_displacements


@pytest.fixture(scope="session")
def walk():
    return random_walk

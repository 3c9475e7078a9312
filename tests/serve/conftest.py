"""Serve fixtures: a deterministic stand-in policy, a tiny observation, and a real server on loopback."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from drive_vla import geometry
from drive_vla.serve import BackgroundServer, create_app, request_from_observation
from drive_vla.types import CAMERA_NAMES, Command, Control, EgoState, Observation, Plan, Trajectory

IMAGE_WH = (64, 36)
FAIL_INSTRUCTION = "make the policy raise"


class StubPolicy:
    """Constant-velocity plan, a fixed explanation; counts calls and detects concurrent entry."""

    name = "stub-constant-velocity"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.resets = 0
        self.predicts = 0
        self.questions: list[str | None] = []
        self.last_obs: Observation | None = None
        self._inside = 0
        self.max_inside = 0
        self._count_lock = threading.Lock()

    def _enter(self) -> None:
        with self._count_lock:
            self._inside += 1
            self.max_inside = max(self.max_inside, self._inside)
        time.sleep(self.delay_s)
        with self._count_lock:
            self._inside -= 1

    def reset(self) -> None:
        self.resets += 1

    def predict(self, obs: Observation) -> Plan:
        self._enter()
        if obs.instruction == FAIL_INSTRUCTION:
            raise RuntimeError("simulated failure inside the model")
        self.predicts += 1
        self.last_obs = obs
        t = np.arange(1, 7, dtype=np.float32) * 0.5
        xy = np.stack([obs.ego.speed_mps * t, np.zeros(6, dtype=np.float32)], axis=1)
        return Plan(
            trajectory=Trajectory(xy),
            controls=Control(steer=0.0, throttle=0.3, brake=0.0),
            meta_action="keep speed, straight",
            timings_ms={"total": 1.5},
        )

    def predict_batch(self, observations):
        return [self.predict(o) for o in observations]

    def explain(self, obs: Observation, question: str | None = None) -> str:
        self._enter()
        self.questions.append(question)
        return f"I keep {obs.ego.speed_mps:.1f} m/s straight because the lane ahead is clear."


def make_observation(wh: tuple[int, int] = IMAGE_WH, speed_mps: float = 5.0, seed: int = 0) -> Observation:
    """Six deterministic noise images, the nominal rig at that size, a short straight history."""
    rng = np.random.default_rng(seed)
    w, h = wh
    intr, extr = geometry.rig_calibration(w, h)
    images = {cam: rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for cam in CAMERA_NAMES}
    history = np.array([[-speed_mps * 0.5 * k, 0.0, 0.0] for k in (4, 3, 2, 1)], dtype=np.float32)
    return Observation(
        images=images,
        intrinsics=intr,
        extrinsics=extr,
        ego=EgoState(speed_mps=speed_mps, source="sim"),
        history=history,
        command=Command.STRAIGHT,
        instruction="keep following the road",
        timestamp_s=12.5,
    )


@pytest.fixture(scope="module")
def stub_policy() -> StubPolicy:
    return StubPolicy(delay_s=0.02)


@pytest.fixture(scope="module")
def server(stub_policy):
    """A real uvicorn server on a free loopback port, 1 MiB body limit."""
    app = create_app(stub_policy, max_body_bytes=1024 * 1024)
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def good_body() -> dict:
    return request_from_observation(make_observation(), with_calibration=False)


@pytest.fixture(scope="module")
def make_obs():
    """The observation factory (test modules cannot import conftest under importlib mode)."""
    return make_observation

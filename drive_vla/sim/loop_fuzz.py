"""Observation faults through the shared drive loop with the embedded backend.

``FaultyEnv`` wraps ``EmbeddedEnv``: at the planner frames it is told to, it rebuilds the observation from
its fields with one fault applied, the way any backend builds an Observation from raw sensor data. Faults
that the Observation's own checks refuse (a missing camera, a wrong image size or dtype, NaN/inf or absurd
ego values, a NaN or far route target, a bad speed limit, an over-long instruction) leave the loop without
an observation and with ``info["observation_error"]`` naming the field; degraded but valid data (black,
white or noise images, time going backwards or repeated, control characters or undecodable bytes in the
instruction) is handed to the planner as it is. The campaign checks, frame by frame: nothing escapes the
loop, a refused observation brakes fully from its own step on and the logged error names the field, and
the next valid frame plans again (recovery in steps). Cases are drawn with hypothesis.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drive_vla.sim.env import EmbeddedEnv
from drive_vla.types import CAMERA_NAMES, EgoState, Observation, StepResult


def _bad(rng: np.random.Generator) -> float:
    return float(rng.choice([math.nan, math.inf, -math.inf]))


# name -> (fields -> fields with the fault, text the logged error must contain); None: valid, drive on
REFUSED: dict[str, tuple[Any, str]] = {
    "missing camera": (lambda f, r: f["images"].pop(str(r.choice(CAMERA_NAMES))), "observation.images"),
    "wrong image size": (
        lambda f, r: f["images"].update({"CAM_BACK": f["images"]["CAM_BACK"][::2]}),
        "observation.images[CAM_BACK]",
    ),
    "wrong image dtype": (
        lambda f, r: f["images"].update({"CAM_FRONT": f["images"]["CAM_FRONT"].astype(np.float32)}),
        "observation.images[CAM_FRONT]",
    ),
    "NaN/inf speed": (lambda f, r: f["ego"].update(speed_mps=_bad(r)), "ego.speed_mps"),
    "absurd speed": (lambda f, r: f["ego"].update(speed_mps=float(r.choice([1e6, -1e6, 500.0]))), "ego.speed_mps"),
    "NaN/inf acceleration": (
        lambda f, r: f["ego"].update(accel_mps2=np.array([_bad(r), 0.0], np.float32)),
        "ego.accel_mps2",
    ),
    "NaN/inf yaw rate": (lambda f, r: f["ego"].update(yaw_rate_rps=_bad(r)), "ego.yaw_rate_rps"),
    "NaN history (GNSS/compass poses)": (
        lambda f, r: f.update(history=np.full_like(f["history"], math.nan)),
        "observation.history",
    ),
    "NaN route target": (
        lambda f, r: f.update(route_target=np.array([[math.nan, 0.0], [10.0, 0.0]], np.float32)),
        "observation.route_target",
    ),
    "far route target": (
        lambda f, r: f.update(route_target=np.array([[5e3, 0.0], [5e3, 10.0]], np.float32)),
        "observation.route_target",
    ),
    "bad speed limit": (lambda f, r: f.update(speed_limit_mps=float(r.choice([math.nan, -5.0, 1e6]))), "speed_limit"),
    "bad junction distance": (lambda f, r: f.update(junction_m=float(r.choice([math.nan, -5.0, 1e6]))), "junction_m"),
    "1 MB instruction": (lambda f, r: f.update(instruction="turn left " * 110_000), "observation.instruction"),
    "NaN timestamp": (lambda f, r: f.update(timestamp_s=math.nan), "observation.timestamp_s"),
}
DRIVE_ON: dict[str, Any] = {
    "black frames": lambda f, r: f.update(images={c: np.zeros_like(v) for c, v in f["images"].items()}),
    "white frames": lambda f, r: f.update(images={c: np.full_like(v, 255) for c, v in f["images"].items()}),
    "noise frames": lambda f, r: f.update(
        images={c: r.integers(0, 256, v.shape, dtype=np.uint8) for c, v in f["images"].items()}
    ),
    "time going backwards": lambda f, r: f.update(timestamp_s=f["timestamp_s"] - float(r.uniform(0.1, 30.0))),
    "repeated timestamp": lambda f, r: f.update(timestamp_s=f["timestamp_s"]),
    "control characters in text": lambda f, r: f.update(instruction="turn\x00 left\x1b[2J\x07"),
    "undecodable bytes in text": lambda f, r: f.update(instruction=b"turn \xff\xfe left".decode("utf-8", "replace")),
}
ALL_FAULTS: tuple[str, ...] = (*REFUSED, *DRIVE_ON)


def faulty_observation(obs: Observation, fault: str, rng: np.random.Generator) -> tuple[Observation | None, str | None]:
    """(the observation rebuilt with ``fault``, None) or (None, the error naming the refused field)."""
    fields = {f.name: getattr(obs, f.name) for f in dataclasses.fields(obs)}
    fields["images"] = dict(fields["images"])
    ego = {f.name: getattr(obs.ego, f.name) for f in dataclasses.fields(obs.ego)}
    fields["ego"] = ego
    (REFUSED[fault][0] if fault in REFUSED else DRIVE_ON[fault])(fields, rng)
    try:
        fields["ego"] = EgoState(**fields["ego"])
        return Observation(**fields), None
    except ValueError as exc:
        return None, str(exc)


class FaultyEnv:
    """``EmbeddedEnv`` whose observations carry ``faults[k]`` at the k-th planner frame (None: untouched)."""

    def __init__(self, env: EmbeddedEnv, faults: list[str | None], seed: int = 0) -> None:
        self.env, self.faults, self.rng = env, list(faults), np.random.default_rng(seed)
        self.dt_s = env.dt_s
        self.frame = 0
        self.log: list[tuple[str | None, str | None]] = []  # per planner frame: (fault, refusal error)

    def reset(self, scenario: str, seed: int) -> Observation:
        self.frame = 0
        return self.env.reset(scenario, seed)

    def step(self, control, observe: bool = True) -> StepResult:
        result = self.env.step(control, observe=observe)
        if not observe or result.observation is None:
            return result
        fault = self.faults[self.frame] if self.frame < len(self.faults) else None
        self.frame += 1
        if fault is None:
            self.log.append((None, None))
            return result
        obs, error = faulty_observation(result.observation, fault, self.rng)
        self.log.append((fault, error))
        info = dict(result.info)
        if error is not None:
            info["observation_error"] = error
        return StepResult(observation=obs, done=result.done, info=info)

    def close(self) -> None:
        self.env.close()


@dataclass
class LoopCampaignResult:
    """Counts of a drive-loop campaign (``crashes`` and every ``*_failures`` must be 0)."""

    cases: int = 0
    crashes: int = 0
    brake_failures: int = 0  # a refused observation whose steps did not brake fully
    unnamed_faults: int = 0  # a refusal whose logged error does not name the field
    refusal_failures: int = 0  # a fault in REFUSED that the Observation accepted, or in DRIVE_ON that it refused
    recovery_failures: int = 0  # the valid frame after a fault did not plan
    recovery_steps_max: int = 0
    per_fault: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0


def check_episode(env: FaultyEnv, steps: list[dict[str, Any]], every: int, result: LoopCampaignResult) -> None:
    """Match the loop's recorded steps against the injected faults (frame k+1 is planned at step (k+1)*every)."""
    for k, (fault, error) in enumerate(env.log):
        if fault is None:
            continue
        result.cases += 1
        result.per_fault[fault] = result.per_fault.get(fault, 0) + 1
        plan_step = (k + 1) * every
        if plan_step >= len(steps):
            continue
        entry = steps[plan_step]
        if (fault in REFUSED) != (error is not None):
            result.refusal_failures += 1
            result.examples.append(f"{fault}: refusal was {error!r}")
            continue
        if error is None:
            continue
        logged = entry.get("error") or ""
        if REFUSED[fault][1] not in logged:
            result.unnamed_faults += 1
            result.examples.append(f"{fault}: logged {logged!r}, expected it to name {REFUSED[fault][1]!r}")
        window = steps[plan_step : min(plan_step + every, len(steps))]
        if any(s["control"]["brake"] < 1.0 or s["control"]["throttle"] > 0.0 for s in window):
            result.brake_failures += 1
            result.examples.append(f"{fault}: did not brake fully until the next planner frame")
        nxt = plan_step + every
        if nxt < len(steps) and (k + 1 >= len(env.log) or env.log[k + 1][0] is None):
            if "error" in steps[nxt] or "plan" not in steps[nxt]:
                result.recovery_failures += 1
                result.examples.append(f"{fault}: the next valid frame did not plan: {steps[nxt].get('error')}")
            else:
                result.recovery_steps_max = max(result.recovery_steps_max, every)


def run_loop_campaign(cases: int, seed: int = 0, image_wh: tuple[int, int] = (64, 36)) -> LoopCampaignResult:
    """``cases`` faulty planner frames (kinds drawn by hypothesis), each followed by a valid one, in
    40 s episodes of the embedded world driven by the constant-velocity baseline through ``run_episode``."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from drive_vla.baselines.constant_velocity import ConstantVelocityPlanner
    from drive_vla.closed_loop import DriveLoopConfig, run_episode
    from drive_vla.control import make_controller

    result = LoopCampaignResult()
    per = 20  # faulty frames per episode, each followed by a valid one: 40 planner frames = 20 s at 2 Hz
    counter = {"episode": 0}
    t0 = time.perf_counter()

    @settings(
        max_examples=2 * math.ceil(cases / per),  # an episode that ends early (goal, collision) applies fewer
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(kinds=st.lists(st.sampled_from(ALL_FAULTS), min_size=per, max_size=per))
    def episode(kinds: list[str]) -> None:
        if result.cases >= cases:
            return
        e = counter["episode"] = counter["episode"] + 1
        kinds = kinds[: cases - result.cases]
        faults: list[str | None] = [x for kind in kinds for x in (kind, None)]
        env = FaultyEnv(EmbeddedEnv(image_wh=image_wh), faults, seed + e)
        scenario = ("highway", "intersection", "roundabout", "merge")[e % 4]
        cfg = DriveLoopConfig(policy_hz=2.0, max_time_s=per + 1.0, seed=seed, save_frames_every_s=0.0)
        try:
            ep = run_episode(env, ConstantVelocityPlanner(), make_controller("pid"), scenario, 930_000 + e, cfg)
        except Exception as exc:  # noqa: BLE001 - counting what escapes the loop is the point
            result.crashes += 1
            result.cases += sum(f is not None for f, _ in env.log)
            result.examples.append(f"episode {e}: {type(exc).__name__}: {exc}")
            return
        check_episode(env, ep.steps, int(round(1.0 / (cfg.policy_hz * env.dt_s))), result)

    episode()
    result.seconds = time.perf_counter() - t0
    return result

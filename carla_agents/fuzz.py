"""Sensor-fault campaign for the leaderboard agent: generated input_data, each case valid -> faulty -> valid.

The agent must never raise (the leaderboard scores a crashed route 0). For every case the campaign checks:

- a fault in the sensor data (``BRAKE_FAULTS``) makes the agent brake fully on that very frame and log an
  error that names the sensor or field (``input_data['SPEED']``, ``ego.accel_mps2``, ...);
- degraded but valid data (``DRIVE_FAULTS``: black, white or noise images, time going backwards, a repeated
  timestamp, a NaN compass that CARLA sends on early frames) is driven through without an error;
- the next valid frame drives again (recovery, counted in frames).

Cases are drawn with hypothesis (``run_campaign``), so a failure shrinks to the smallest fault that breaks
the agent. The planner is drive-vla's constant-velocity baseline (configs/carla/agent_baseline.yaml), so a
campaign needs neither weights nor a GPU.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carla_agents.route import GpsReference, RoadOption, carla_xy_to_gps
from carla_agents.sensor_rig import GNSS_ID, IMU_ID, SPEED_ID
from drive_vla.types import CAMERA_NAMES

MAP_REF = GpsReference(49.0, 8.0)
DT_S = 0.05
HW = (36, 64)


def valid_input_data(frame: int, x_m: float, speed_mps: float = 5.0, hw: tuple[int, int] = HW) -> dict:
    """input_data as the leaderboard hands it over ({id: (frame, data)}), for a car at CARLA (x_m, 0) heading +x."""
    rng = np.random.default_rng(frame)
    data: dict[str, Any] = {}
    for cam in CAMERA_NAMES:
        bgra = rng.integers(0, 256, size=(*hw, 4), dtype=np.uint8)
        bgra[..., 3] = 255
        data[cam] = (frame, bgra)
    lat, lon = carla_xy_to_gps(x_m, 0.0, MAP_REF)
    data[GNSS_ID] = (frame, np.array([float(lat), float(lon), 0.5]))
    data[IMU_ID] = (frame, np.array([0.3, -0.1, 9.81, 0.0, 0.0, 0.0, math.pi / 2]))
    data[SPEED_ID] = (frame, {"speed": speed_mps})
    return data


def _image(d: dict, cam: str, fill: Callable[[tuple[int, ...]], np.ndarray]) -> None:
    f, bgra = d[cam]
    d[cam] = (f, fill(bgra.shape))


def _set_imu(d: dict, index: int, value: float) -> None:
    f, imu = d[IMU_ID]
    imu = np.array(imu, dtype=np.float64)
    imu[index] = value
    d[IMU_ID] = (f, imu)


def _bad_value(rng: np.random.Generator) -> float:
    return float(rng.choice([math.nan, math.inf, -math.inf]))


# name -> (apply(data, rng) -> None, text the logged error must contain)
BRAKE_FAULTS: dict[str, tuple[Callable[[dict, np.random.Generator], None], str]] = {
    "missing camera": (lambda d, r: d.pop(str(r.choice(CAMERA_NAMES))), "missing sensor 'CAM_"),
    "wrong image size": (
        lambda d, r: _image(d, str(r.choice(CAMERA_NAMES)), lambda s: np.zeros((s[0] // 2, s[1], 4), np.uint8)),
        "input_data[",
    ),
    "wrong image dtype": (
        lambda d, r: _image(d, str(r.choice(CAMERA_NAMES)), lambda s: np.zeros(s, np.float32)),
        "input_data[",
    ),
    "three-channel image": (
        lambda d, r: _image(d, str(r.choice(CAMERA_NAMES)), lambda s: np.zeros((*s[:2], 3), np.uint8)),
        "input_data[",
    ),
    "NaN/inf speed": (lambda d, r: d.update({SPEED_ID: (d[SPEED_ID][0], {"speed": _bad_value(r)})}), SPEED_ID),
    "absurd speed": (
        lambda d, r: d.update({SPEED_ID: (d[SPEED_ID][0], {"speed": float(r.choice([1e6, -1e6, 150.0]))})}),
        SPEED_ID,
    ),
    "speed not a number": (lambda d, r: d.update({SPEED_ID: (d[SPEED_ID][0], {"speed": "fast"})}), SPEED_ID),
    "NaN/inf acceleration": (lambda d, r: _set_imu(d, int(r.integers(0, 3)), _bad_value(r)), IMU_ID),
    "NaN/inf yaw rate": (lambda d, r: _set_imu(d, 5, _bad_value(r)), IMU_ID),
    "NaN/inf GNSS": (
        lambda d, r: d.update({GNSS_ID: (d[GNSS_ID][0], np.array([_bad_value(r), 8.0, 0.5]))}),
        GNSS_ID,
    ),
    "missing GNSS": (lambda d, r: d.pop(GNSS_ID), GNSS_ID),
    "short IMU": (lambda d, r: d.update({IMU_ID: (d[IMU_ID][0], np.zeros(3))}), IMU_ID),
}

DRIVE_FAULTS: dict[str, Callable[[dict, np.random.Generator], None]] = {
    "black frames": lambda d, r: [_image(d, c, lambda s: np.zeros(s, np.uint8)) for c in CAMERA_NAMES],
    "white frames": lambda d, r: [_image(d, c, lambda s: np.full(s, 255, np.uint8)) for c in CAMERA_NAMES],
    "noise frames": lambda d, r: [
        _image(d, c, lambda s: r.integers(0, 256, size=s, dtype=np.uint8)) for c in CAMERA_NAMES
    ],
    "NaN compass": lambda d, r: _set_imu(d, 6, math.nan),
    "negative speed (reversing)": lambda d, r: d.update({SPEED_ID: (d[SPEED_ID][0], {"speed": -2.0})}),
}
TIME_FAULTS = ("time going backwards", "repeated timestamp")
ALL_FAULTS: tuple[str, ...] = (*BRAKE_FAULTS, *DRIVE_FAULTS, *TIME_FAULTS)


@dataclass
class CampaignResult:
    """What a campaign saw (``crashes`` must be 0, and so must the three ``*_failures``)."""

    cases: int = 0
    crashes: int = 0
    brake_failures: int = 0  # a sensor fault that did not brake on its frame
    unnamed_faults: int = 0  # a sensor fault whose logged error does not name the sensor or field
    drive_failures: int = 0  # degraded but valid data that raised an error
    recovery_frames_max: int = 0  # frames from the first valid frame after a fault until the car drives again
    slow_recoveries: dict[str, int] = field(default_factory=dict)  # fault -> most frames it took (> 1)
    per_fault: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0


class AgentHarness:
    """One leaderboard agent driving a straight route on generated frames (time advances by DT_S a frame)."""

    def __init__(self, repo: Path, out_dir: Path, hw: tuple[int, int] = HW) -> None:
        from carla_agents.leaderboard_agent import DriveVLAAgent

        self.hw = hw
        config = out_dir / "agent.yaml"
        config.write_text(
            "\n".join(
                [
                    f"base: {repo / 'configs/carla/agent_baseline.yaml'}",
                    f"output_dir: {out_dir / 'out'}",
                    f"camera_width: {hw[1]}",
                    f"camera_height: {hw[0]}",
                    "controller_overrides: ['initial_brake_s=0.0', 'max_steer_rate_per_s=null']",
                ]
            )
            + "\n"
        )
        route = []
        for x in range(0, 100_000, 20):
            lat, lon = carla_xy_to_gps(float(x), 0.0, MAP_REF)
            route.append(({"lat": float(lat), "lon": float(lon), "z": 0.0}, RoadOption.LANEFOLLOW))
        self.agent = DriveVLAAgent("localhost", 2000, False)
        self.agent.set_global_plan(route, [])
        self.agent.setup(str(config))
        self.frame, self.t, self.x = 100, 1.0, 0.0

    def step(self, data: dict | None = None, t: float | None = None) -> tuple[Any, str | None]:
        """Feed one frame (a valid one when ``data`` is None); returns (control, logged error or None)."""
        self.frame += 1
        self.t += DT_S
        self.x += 5.0 * DT_S
        data = valid_input_data(self.frame, self.x, hw=self.hw) if data is None else data
        errors = self.agent.error_count
        control = self.agent.run_step(data, self.t if t is None else t)
        return control, self.agent.last_error if self.agent.error_count > errors else None


def run_case(h: AgentHarness, fault: str, seed: int, result: CampaignResult) -> None:
    """valid -> ``fault`` -> valid frames on the harness; updates ``result``."""
    rng = np.random.default_rng(seed)
    result.cases += 1
    result.per_fault[fault] = result.per_fault.get(fault, 0) + 1
    try:
        h.step()
        data = valid_input_data(h.frame + 1, h.x + 5.0 * DT_S, hw=h.hw)
        t = None
        if fault in BRAKE_FAULTS:
            BRAKE_FAULTS[fault][0](data, rng)
        elif fault in DRIVE_FAULTS:
            DRIVE_FAULTS[fault](data, rng)
        else:
            t = h.t - float(rng.uniform(0.05, 5.0)) if fault == "time going backwards" else h.t
        control, error = h.step(data, t)
        if fault in BRAKE_FAULTS:
            if (control.brake, control.throttle) != (1.0, 0.0):
                result.brake_failures += 1
                result.examples.append(f"{fault}: control {control} did not brake")
            if error is None or BRAKE_FAULTS[fault][1] not in error:
                result.unnamed_faults += 1
                result.examples.append(f"{fault}: logged {error!r}, expected it to name {BRAKE_FAULTS[fault][1]!r}")
        elif error is not None:
            result.drive_failures += 1
            result.examples.append(f"{fault}: valid data raised {error!r}")
        for k in range(1, 6):  # recovery: valid frames until the car is no longer braking
            control, error = h.step()
            if error is None and control.brake < 1.0:
                result.recovery_frames_max = max(result.recovery_frames_max, k)
                if k > 1:
                    result.slow_recoveries[fault] = max(result.slow_recoveries.get(fault, 0), k)
                break
        else:
            result.recovery_frames_max = max(result.recovery_frames_max, 99)
            result.examples.append(f"{fault}: still braking 5 valid frames later")
    except Exception as exc:  # noqa: BLE001 - counting what escapes the agent is the point
        result.crashes += 1
        result.examples.append(f"{fault}: {type(exc).__name__}: {exc}")


def run_campaign(cases: int, seed: int = 0, repo: Path | None = None) -> CampaignResult:
    """``cases`` generated cases (fault kind and its seed drawn by hypothesis, derandomized from ``seed``)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    repo = repo or Path(__file__).resolve().parents[1]
    result = CampaignResult()
    t0 = time.perf_counter()
    agent_log = logging.getLogger("carla_agents")
    level = agent_log.level
    agent_log.setLevel(logging.CRITICAL)  # every injected fault logs an error with a traceback: count, not print
    with tempfile.TemporaryDirectory() as tmp:
        harness = AgentHarness(repo, Path(tmp))

        @settings(
            max_examples=cases,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(fault=st.sampled_from(ALL_FAULTS), case_seed=st.integers(0, 2**31 - 1))
        def one(fault: str, case_seed: int) -> None:
            run_case(harness, fault, case_seed ^ seed, result)

        try:
            one()
        finally:
            agent_log.setLevel(level)
    result.seconds = time.perf_counter() - t0
    return result

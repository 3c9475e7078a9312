"""Recorded CARLA inputs for the agent tests: synthetic arrays in the leaderboard's input_data layout."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from carla_agents.route import GpsReference, RoadOption, carla_xy_to_gps
from carla_agents.sensor_rig import GNSS_ID, IMU_ID, SPEED_ID
from drive_vla.types import CAMERA_NAMES

REPO = Path(__file__).resolve().parents[2]
MAP_REF = GpsReference(49.0, 8.0)  # CARLA's classic town georeference
H, W = 36, 64


def recorded_input_data(
    x_m: float = 0.0,
    y_m: float = 0.0,
    compass_rad: float = math.pi / 2,
    speed_mps: float = 5.0,
    frame: int = 100,
    gyro_z: float = 0.0,
) -> dict:
    """input_data as the leaderboard hands it over: {id: (frame, data)}, for a car at CARLA (x, y)."""
    rng = np.random.default_rng(frame)
    data = {}
    for cam in CAMERA_NAMES:
        bgra = rng.integers(0, 256, size=(H, W, 4), dtype=np.uint8)
        bgra[..., 3] = 255
        data[cam] = (frame, bgra)
    lat, lon = carla_xy_to_gps(x_m, y_m, MAP_REF)
    data[GNSS_ID] = (frame, np.array([float(lat), float(lon), 0.5]))
    data[IMU_ID] = (frame, np.array([0.3, -0.1, 9.81, 0.0, 0.0, gyro_z, compass_rad]))
    data[SPEED_ID] = (frame, {"speed": speed_mps})
    return data


def gps_route(points_xy: list[tuple[float, float]], options: list[RoadOption]) -> list[tuple[dict, RoadOption]]:
    """A leaderboard ``_global_plan``: ({'lat','lon','z'}, RoadOption) per CARLA-frame point."""
    out = []
    for (x, y), opt in zip(points_xy, options):
        lat, lon = carla_xy_to_gps(x, y, MAP_REF)
        out.append(({"lat": float(lat), "lon": float(lon), "z": 0.0}, opt))
    return out


@pytest.fixture
def recorded() -> SimpleNamespace:
    return SimpleNamespace(input_data=recorded_input_data, gps_route=gps_route, ref=MAP_REF, hw=(H, W), repo=REPO)

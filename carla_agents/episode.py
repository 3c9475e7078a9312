"""Pure episode logic of the CARLA env: config, settings, route building and annotation, progress, scoring facts."""

from __future__ import annotations

import math
import queue
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from carla_agents.route import RoadOption


@dataclass
class CarlaEnvConfig:
    """``drive-vla drive --env carla`` settings (YAML: configs/carla/env.yaml)."""

    host: str = "127.0.0.1"
    port: int = 2000
    tm_port: int = 8000
    connect_timeout_s: float = 5.0  # first contact: fail fast with a clear error when no server answers
    timeout_s: float = 20.0  # RPC timeout afterwards (map loads take longer)
    town: str = ""  # map to load; "" keeps the server's current map
    fixed_delta_s: float = 0.05  # synchronous mode at 20 Hz, as the leaderboard runs
    vehicle_blueprint: str = "vehicle.lincoln.mkz_2020"  # the leaderboard's ego car
    camera_width: int = 320
    camera_height: int = 180
    ego_origin_in_vehicle_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    n_vehicles: int = 20  # background traffic through the traffic manager
    hybrid_physics_radius_m: float = 70.0  # TM hybrid physics: full physics only near the ego
    route_length_m: float = 300.0
    route_step_m: float = 2.0
    route_min_distance_m: float = 4.0
    route_max_distance_m: float = 50.0
    instruction_style: str = "command"
    warmup_ticks: int = 10  # ticks after spawning before the first observation (sensors settle)
    sensor_timeout_s: float = 5.0
    episode_timeout_s: float = 120.0
    max_off_route_m: float = 30.0  # Bench2Drive ends a route 30 m off it
    standstill_timeout_s: float = 60.0  # Bench2Drive: 60 s below 0.1 m/s
    standstill_speed_mps: float = 0.1
    end_on_collision: bool = True
    goal_tolerance_m: float = 4.0

    def __post_init__(self) -> None:
        if not 0.0 < self.fixed_delta_s <= 0.1:
            raise ValueError(f"fixed_delta_s: got {self.fixed_delta_s!r}, expected seconds in (0, 0.1]")
        if self.camera_width <= 0 or self.camera_height <= 0:
            raise ValueError(f"camera size: got {self.camera_width}x{self.camera_height}, expected positive")
        if self.route_step_m <= 0 or self.route_length_m <= self.route_step_m:
            raise ValueError(
                f"route_length_m / route_step_m: got {self.route_length_m!r} / {self.route_step_m!r}, "
                "expected a positive step shorter than the route"
            )
        if self.n_vehicles < 0 or self.warmup_ticks < 0:
            raise ValueError(
                f"n_vehicles / warmup_ticks: got {self.n_vehicles!r} / {self.warmup_ticks!r}, expected >= 0"
            )


class CarlaConnectionError(RuntimeError):
    """No CARLA server answered."""


_SETTINGS_FIELDS = (
    "synchronous_mode",
    "no_rendering_mode",
    "fixed_delta_seconds",
    "substepping",
    "max_substep_delta_time",
    "max_substeps",
    "max_culling_distance",
    "deterministic_ragdolls",
    "tile_stream_distance",
    "actor_active_distance",
    "spectator_as_ego",
)


def copy_settings(settings: Any) -> Any:
    """A field-by-field copy of carla.WorldSettings (it cannot be copied or pickled)."""
    import carla

    out = carla.WorldSettings()
    for name in _SETTINGS_FIELDS:
        if hasattr(settings, name) and hasattr(out, name):
            setattr(out, name, getattr(settings, name))
    return out


def synchronous_settings(settings: Any, fixed_delta_s: float) -> Any:
    """A copy of carla.WorldSettings in synchronous mode with a fixed step (rendering on: cameras need it)."""
    out = copy_settings(settings)
    out.synchronous_mode = True
    out.no_rendering_mode = False
    out.fixed_delta_seconds = float(fixed_delta_s)
    return out


def town_for_scenario(scenario: str, default_town: str) -> str:
    """``reset(scenario)``: a scenario naming a map ("Town05", "Town05/anything") loads it; else the default."""
    head = str(scenario or "").split("/")[0].strip()
    return head if head.lower().startswith("town") else default_town


def same_town(current_map_name: str, town: str) -> bool:
    """CARLA map names are paths ("Carla/Maps/Town05"); compare their last part."""
    return bool(town) and current_map_name.rstrip("/").split("/")[-1] == town.rstrip("/").split("/")[-1]


def choose_spawn_indices(n_points: int, n_traffic: int, seed: int) -> tuple[int, list[int]]:
    """(ego spawn index, traffic spawn indices) from ``n_points`` spawn points, reproducible per seed."""
    if n_points < 1:
        raise ValueError(f"spawn points: got {n_points}, expected at least one in the map")
    order = list(range(n_points))
    random.Random(seed).shuffle(order)
    return order[0], order[1 : 1 + min(n_traffic, n_points - 1)]


def walk_route(start_waypoint: Any, length_m: float, step_m: float, rng: random.Random) -> list[Any]:
    """Waypoints from ``start_waypoint`` along the map topology (``waypoint.next``), picking branches at
    random, until ``length_m`` or a dead end. Works on any carla.Waypoint (also from an offline carla.Map)."""
    route = [start_waypoint]
    travelled = 0.0
    while travelled < length_m:
        options = route[-1].next(step_m)
        if not options:
            break
        route.append(options[0] if len(options) == 1 else rng.choice(options))
        travelled += step_m
    return route


def road_option_for_turn(yaw_change_deg: float, turn_threshold_deg: float = 30.0) -> RoadOption:
    """RoadOption of a junction crossing from the heading change in CARLA degrees (clockwise positive)."""
    change = (float(yaw_change_deg) + 180.0) % 360.0 - 180.0
    if change <= -turn_threshold_deg:
        return RoadOption.LEFT
    if change >= turn_threshold_deg:
        return RoadOption.RIGHT
    return RoadOption.STRAIGHT


def annotate_route(yaws_deg: Sequence[float], in_junction: Sequence[bool]) -> list[RoadOption]:
    """RoadOption per route point: LANEFOLLOW outside junctions; inside, the turn of the whole crossing
    (heading before the junction vs after it), as the GlobalRoutePlanner labels its routes."""
    n = len(yaws_deg)
    if n != len(in_junction):
        raise ValueError(f"route annotation: got {n} yaws and {len(in_junction)} junction flags, expected equal")
    options = [RoadOption.LANEFOLLOW] * n
    i = 0
    while i < n:
        if not in_junction[i]:
            i += 1
            continue
        j = i
        while j < n and in_junction[j]:
            j += 1
        before = yaws_deg[i - 1] if i > 0 else yaws_deg[i]
        after = yaws_deg[j] if j < n else yaws_deg[j - 1]
        option = road_option_for_turn(after - before)
        for k in range(i, j):
            options[k] = option
        i = j
    return options


class RouteProgress:
    """Route completion and distance to the route for a car moving along local-frame route points.

    The nearest point is searched only a short way ahead of the last one reached, so loops and
    crossings do not make the car skip ahead.
    """

    def __init__(self, route_xy: np.ndarray, search_ahead: int = 20) -> None:
        self.xy = np.asarray(route_xy, dtype=np.float64).reshape(-1, 2)
        if len(self.xy) < 2:
            raise ValueError(f"route: got {len(self.xy)} points, expected at least 2")
        seg = np.linalg.norm(np.diff(self.xy, axis=0), axis=1)
        self.cum_m = np.concatenate([[0.0], np.cumsum(seg)])
        self.search_ahead = int(search_ahead)
        self.index = 0

    @property
    def length_m(self) -> float:
        return float(self.cum_m[-1])

    def update(self, xy: Sequence[float]) -> tuple[float, float]:
        """(completion in [0, 1], distance to the route in metres) for the car at ``xy``."""
        car = np.asarray(xy, dtype=np.float64)
        hi = min(len(self.xy), self.index + self.search_ahead + 1)
        d = np.linalg.norm(self.xy[self.index : hi] - car, axis=1)
        best = self.index + int(np.argmin(d))
        if best > self.index:
            self.index = best
        off = float(np.linalg.norm(self.xy - car, axis=1).min())
        return (self.cum_m[self.index] / self.length_m if self.length_m > 0 else 1.0), off


def collision_kind(other_type_id: str) -> str:
    """'vehicle' | 'pedestrian' | 'static' from the other actor's blueprint id."""
    t = str(other_type_id)
    if t.startswith("vehicle."):
        return "vehicle"
    if t.startswith("walker."):
        return "pedestrian"
    return "static"


def episode_end(
    cfg: CarlaEnvConfig,
    time_s: float,
    completion: float,
    distance_to_goal_m: float,
    off_route_m: float,
    collision: str | None,
    standstill_s: float,
) -> str | None:
    """Why the episode ends now, or None: goal, collision, off_route, blocked, timeout (the embedded world's
    reasons, plus Bench2Drive's "blocked")."""
    if completion >= 0.999 or distance_to_goal_m <= cfg.goal_tolerance_m:
        return "goal"
    if collision is not None and cfg.end_on_collision:
        return "collision"
    if off_route_m > cfg.max_off_route_m:
        return "off_route"
    if standstill_s >= cfg.standstill_timeout_s:
        return "blocked"
    if time_s >= cfg.episode_timeout_s:
        return "timeout"
    return None


def frame_data(q: queue.Queue, frame: int, timeout_s: float, name: str) -> Any:
    """The item of ``frame`` from a sensor queue of (frame, data), dropping older frames."""
    deadline = time.monotonic() + float(timeout_s)
    while True:
        try:
            f, data = q.get(timeout=max(deadline - time.monotonic(), 1e-3))
        except queue.Empty:
            raise TimeoutError(f"sensor {name!r}: no data for frame {frame} within {timeout_s} s") from None
        if f == frame:
            return data
        if f > frame:
            raise TimeoutError(f"sensor {name!r}: got frame {f} while waiting for frame {frame}")


def forward_speed_mps(velocity_xyz: Sequence[float], forward_xyz: Sequence[float]) -> float:
    """Speed along the car's heading (negative when reversing)."""
    return float(np.dot(np.asarray(velocity_xyz, dtype=np.float64), np.asarray(forward_xyz, dtype=np.float64)))


def yaw_rate_rps_from_carla(angular_velocity_z_deg_s: float) -> float:
    """CARLA angular velocity about z (deg/s, left-handed: clockwise positive) -> CCW rad/s."""
    return -math.radians(float(angular_velocity_z_deg_s))

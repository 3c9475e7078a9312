"""Counterfactual obstacles: the same moment of an episode with a car standing on the ego's route ahead.

A policy that learns to brake for a car ahead from recorded driving alone can fit the braking to the
context it comes with (a junction, a speed, a slowing ego) instead of to the car. Here a keyframe is
branched: on a copy of the world, a car is placed standing in the ego's lane ``gap_m`` ahead of its front
bumper, the cameras are rendered and the expert drives the copy for the label horizon. The branch has
the recorded keyframe's ego state, history and traffic; only the standing car and the plan differ, so
the car alone explains the braking (``DatasetConfig.obstacle_scene_fraction``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from highway_env.road.road import LaneIndex

from drive_vla.sim.embedded import EmbeddedWorld
from drive_vla.sim.vehicles import STOP_HORIZON_S, TrafficVehicle, make_traffic

PLACE_CLEARANCE_M = 7.0  # no other vehicle's centre within this distance of the placed car's centre
PATH_HALF_WIDTH_M = 2.5  # a vehicle centre this close to the route's centre line is on the ego's path


def stopping_gap_m(speed_mps: float, decel_mps2: float, margin_m: float) -> float:
    """The bumper gap in which a car at ``speed_mps`` stops at ``decel_mps2`` with ``margin_m`` to spare."""
    return float(speed_mps) ** 2 / (2.0 * float(decel_mps2)) + float(margin_m)


def vehicle_on_route_before(world: EmbeddedWorld, arc_m: float, half_width_m: float = PATH_HALF_WIDTH_M) -> bool:
    """Whether another vehicle's centre lies on the ego's route (within ``half_width_m`` of its centre line)
    between the ego and route arc ``arc_m``."""
    for v in world.traffic():
        arc, dist = world.route.project(v.position, world.route_arc, window_m=arc_m - world.route_arc + 10.0)
        if dist < half_width_m and world.route_arc < arc < arc_m:
            return True
    return False


def standing_spot(world: EmbeddedWorld, gap_m: float) -> tuple[LaneIndex, float] | None:
    """(lane, position along it) of a car standing on the ego's route with its rear ``gap_m`` ahead of the
    ego's front bumper; None where the route ends before it, another vehicle stands within PLACE_CLEARANCE_M
    of the spot, or another vehicle is on the route between the ego and the spot."""
    cfg = world.cfg
    arc = world.route_arc + cfg.ego.length_m / 2 + float(gap_m) + cfg.traffic.car_lwh_m[0] / 2
    route = world.route
    if arc > route.length_m - 1.0:
        return None
    piece = route.piece_at(arc)
    lane_index = route.lanes[piece]
    s = arc - float(route.piece_start_arc[piece])
    lane = world.road.network.get_lane(lane_index)
    if not 0.0 <= s <= lane.length:
        return None
    spot = lane.position(s, 0.0)
    if any(np.linalg.norm(v.position - spot) < PLACE_CLEARANCE_M for v in world.road.vehicles):
        return None
    if vehicle_on_route_before(world, arc):
        return None  # the car must be the first thing on the ego's path, in view and the only cause of braking
    return lane_index, s


def add_standing_car(
    world: EmbeddedWorld, lane_index: LaneIndex, s: float, instance_id: str, yaw_rad: float = 0.0
) -> TrafficVehicle:
    """Add a car at rest at ``s`` on ``lane_index``, turned ``yaw_rad`` from the lane's heading (0: facing along
    it; +-pi/2: across it, as a crossing car that stopped in the junction), that stays at rest."""
    # A car (never a truck: its size is part of what the branch keeps fixed) that brakes at rest from now on.
    traffic = replace(world.cfg.traffic, truck_fraction=0.0, stop_rate_per_min=0.0)
    colour = world.next_vehicle_index  # the colour the scenario's next car would get
    v = make_traffic(world.road, lane_index, s, 0.0, np.random.default_rng(0), traffic, instance_id, colour)
    v.stops = ((0.0, STOP_HORIZON_S),)
    v.heading = float(v.heading + yaw_rad)  # at rest it never turns back (its heading changes only with speed)
    world.add_vehicle(v)
    return v


def place_standing_car(world: EmbeddedWorld, gap_m: float, instance_id: str) -> TrafficVehicle | None:
    """Add a car standing on the ego's route, its rear ``gap_m`` ahead of the ego's front bumper, facing
    along the route; None (nothing added) where ``standing_spot`` finds no free spot there."""
    spot = standing_spot(world, gap_m)
    return None if spot is None else add_standing_car(world, *spot, instance_id)


def obstacle_twin(
    world: EmbeddedWorld,
    rng: np.random.Generator,
    gap_range_m: tuple[float, float],
    instance_id: str,
    yaw_range_deg: float = 0.0,
    stopping_floor: bool = True,
) -> EmbeddedWorld | None:
    """A copy of ``world`` (the renderer shared) with a standing car ``instance_id`` placed at a gap drawn
    from ``gap_range_m`` but (with ``stopping_floor``) never closer than the expert's hard-braking stopping gap,
    turned from its lane by an angle drawn from [-yaw_range_deg, yaw_range_deg] (0: no draw, facing along the
    lane); None where no spot is free (``world`` itself is never changed, and is copied only when the spot is
    free)."""
    lo, hi = gap_range_m
    if stopping_floor:
        lo = max(lo, stopping_gap_m(world.ego_speed_mps, world.cfg.expert.max_decel_mps2, 2.0))
    if lo > hi:
        return None
    spot = standing_spot(world, float(rng.uniform(lo, hi)))
    if spot is None:
        return None
    yaw = float(np.radians(rng.uniform(-yaw_range_deg, yaw_range_deg))) if yaw_range_deg > 0.0 else 0.0
    twin = copy.deepcopy(world, {id(world.renderer): world.renderer})
    add_standing_car(twin, *spot, instance_id, yaw)
    return twin


OBSTACLE_SCENES_FILE = "drive_vla_obstacle_scenes.json"  # {obstacle scene name: the recorded scene it branches}


def write_obstacle_scenes(dataroot: str | Path, version: str, pairs: dict[str, str]) -> Path:
    """Write which recorded scene each obstacle scene branches (beside the dataset's tables), atomically."""
    path = Path(dataroot) / version / OBSTACLE_SCENES_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(sorted(pairs.items())), indent=1) + "\n")
    tmp.replace(path)
    return path


def read_obstacle_scenes(dataroot: str | Path, version: str) -> dict[str, str]:
    """{obstacle scene: recorded scene} of a dataset; empty where it has none."""
    path = Path(dataroot) / version / OBSTACLE_SCENES_FILE
    if not path.is_file():
        return {}
    pairs = json.loads(path.read_text())
    if not isinstance(pairs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()):
        raise ValueError(f"{path}: expected a JSON object of scene name -> scene name")
    return pairs

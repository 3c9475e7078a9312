"""The vehicles of the embedded world: highway-env IDM/MOBIL traffic with ids and sizes, and the ego car.

Traffic uses highway-env's ``IDMVehicle`` (IDM car following, MOBIL lane changes, route following); this
module only adds what the dataset needs on top: a stable instance id, a nuScenes category, a box height
and a distinct colour. The ego is a highway-env kinematic bicycle whose steering angle and acceleration
are set from outside (the expert or a ``Control``) each step.
"""

from __future__ import annotations

import colorsys

import numpy as np
from highway_env.road.road import LaneIndex, Road, RoadNetwork
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.controller import MDPVehicle

from drive_vla.sim.config import EgoDynamicsConfig, TrafficConfig


def vehicle_color(index: int) -> tuple[int, int, int]:
    """A saturated RGB colour for vehicle ``index``; consecutive indices get well-separated hues."""
    hue = (0.11 + index * 0.618034) % 1.0
    sat = 0.62 + 0.25 * ((index * 7) % 3) / 2
    val = 0.78 + 0.17 * ((index * 5) % 2)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


_NEIGHBOURS: dict[int, tuple[RoadNetwork, dict[tuple[str, str], list[LaneIndex]]]] = {}


def _candidate_lanes(network: RoadNetwork, road: tuple[str, str]) -> list[LaneIndex]:
    """Lanes of every road that shares a node with ``road`` (itself, siblings, successors, predecessors)."""
    hit = _NEIGHBOURS.get(id(network))
    if hit is None or hit[0] is not network:
        hit = _NEIGHBOURS[id(network)] = (network, {})
    table = hit[1]
    if road not in table:
        nodes = set(road)
        table[road] = [
            (a, b, i)
            for a, tos in network.graph.items()
            for b, lanes in tos.items()
            if {a, b} & nodes
            for i in range(len(lanes))
        ]
    return table[road]


def closest_lane_index(
    network: RoadNetwork, position: np.ndarray, heading: float, previous: LaneIndex | None
) -> LaneIndex:
    """highway-env's closest-lane rule (L1 distance plus heading error), searched first among the lanes
    around the previous lane and over the whole network only when none of those is close: the full search
    costs one distance per lane of the network per vehicle per step."""
    if previous is not None:
        best, best_d = None, np.inf
        for index in _candidate_lanes(network, previous[:2]):
            d = network.get_lane(index).distance_with_heading(position, heading)
            if d < best_d:
                best, best_d = index, d
        if best_d < 2.5:
            return best
    return network.get_closest_lane_index(position, heading)


class _FastLanes:
    """Mixin: lane lookup after each step through ``closest_lane_index``, and memoised route predictions
    (highway-env's regulation asks each vehicle for the same prediction once per pair of vehicles)."""

    def on_state_update(self) -> None:
        if self.road:
            self.lane_index = closest_lane_index(
                self.road.network, self.position, self.heading, getattr(self, "lane_index", None)
            )
            self.lane = self.road.network.get_lane(self.lane_index)

    def predict_trajectory_constant_speed(self, times: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        """highway-env's constant-speed prediction along the route, with the route's unset lane ids resolved.

        highway-env fills an unset id with the current lane's id even where the next road has fewer lanes
        (e.g. leaving a two-lane roundabout), which indexes past the road's lanes; clip it to the road.
        """
        key = (
            self.position[0],
            self.position[1],
            self.heading,
            self.speed,
            tuple(np.asarray(times).tolist()),
            self.lane_index,
        )
        memo = getattr(self, "_prediction_memo", None)
        if memo is not None and memo[0] == key:
            return memo[1]
        graph = self.road.network.graph
        route = [
            (a, b, min(self.lane_index[2] if i is None else i, len(graph[a][b]) - 1))
            for a, b, i in (self.route or [self.lane_index])
        ]
        s = self.lane.local_coordinates(self.position)[0]
        states = [
            self.road.network.position_heading_along_route(route, s + self.speed * t, 0, self.lane_index) for t in times
        ]
        out = tuple(zip(*states, strict=False))
        self._prediction_memo = (key, out)
        return out


def _set_footprint(vehicle, length_m: float, width_m: float) -> None:
    # highway-env reads LENGTH/WIDTH through the instance, so per-vehicle sizes are instance attributes;
    # the collision pre-check radius (diagonal) is derived from them once at construction, so redo it.
    vehicle.LENGTH = float(length_m)
    vehicle.WIDTH = float(width_m)
    vehicle.diagonal = float(np.hypot(length_m, width_m))


class TrafficVehicle(_FastLanes, IDMVehicle):
    """A highway-env IDM/MOBIL vehicle with an instance id, a category, a height and a colour.

    IDM parameters are instance attributes (set by ``make_traffic``) rather than class attributes, so
    scenarios never change highway-env's classes for each other.
    """

    instance_id: str = ""
    category: str = "vehicle.car"
    height_m: float = 1.6
    color_rgb: tuple[int, int, int] = (200, 60, 60)
    crashed_time_s: float = 0.0
    age_s: float = 0.0
    stops: tuple[tuple[float, float], ...] = ()  # (start, end) of its stop events, seconds since spawn
    stop_decel_mps2: float = 4.0

    def step(self, dt: float) -> None:
        before = self.speed
        # highway-env's IDM keeps braking below zero speed when boxed in, i.e. it reverses; road traffic
        # does not, so stop at rest instead.
        super().step(dt)
        self.age_s += dt
        if any(a <= self.age_s < b for a, b in self.stops):  # a stop event: brake to rest and stand
            self.speed = min(self.speed, max(0.0, before - self.stop_decel_mps2 * dt))
        if self.speed < 0.0:
            self.speed = 0.0


STOP_HORIZON_S = 600.0  # stop events are drawn for this long after a vehicle spawns (longer than any episode)


def make_traffic(
    road: Road,
    lane_index: LaneIndex,
    longitudinal_m: float,
    speed_mps: float,
    rng: np.random.Generator,
    cfg: TrafficConfig,
    instance_id: str,
    color_index: int,
    destination: str | None = None,
    idm: dict[str, float] | None = None,
) -> TrafficVehicle:
    """Create (but do not add) a traffic vehicle on a lane, planning its route to ``destination``.

    Args:
        road: the highway-env road it drives on.
        lane_index: (from, to, id) of its lane.
        longitudinal_m: position along that lane.
        speed_mps: initial speed; also its target speed (capped by the lane's speed limit in IDM).
        rng: the episode's random generator (truck or car, IDM exponent).
        cfg: traffic sizes and shares.
        instance_id: stable id for annotations.
        color_index: index into the colour palette.
        destination: road-network node to plan a route to (highway-env ``plan_route_to``), or None.
        idm: IDM parameters to set on the instance (e.g. ``DISTANCE_WANTED``, ``COMFORT_ACC_MAX``).
    """
    lane = road.network.get_lane(lane_index)
    v = TrafficVehicle(
        road,
        lane.position(longitudinal_m, 0.0),
        heading=lane.heading_at(longitudinal_m),
        speed=float(speed_mps),
        target_lane_index=lane_index,
        target_speed=float(speed_mps),
    )
    truck = bool(rng.random() < cfg.truck_fraction)
    length, width, height = cfg.truck_lwh_m if truck else cfg.car_lwh_m
    _set_footprint(v, length, width)
    v.category = "vehicle.truck" if truck else "vehicle.car"
    v.height_m = float(height)
    v.instance_id = instance_id
    v.color_rgb = vehicle_color(color_index)
    for key, value in (idm or {}).items():
        setattr(v, key, float(value))
    # The jam distance counts from centre to centre in highway-env, so long vehicles need more of it.
    v.DISTANCE_WANTED = float(getattr(v, "DISTANCE_WANTED", IDMVehicle.DISTANCE_WANTED)) + (length - 5.0)
    v.DELTA = float(rng.uniform(*IDMVehicle.DELTA_RANGE))
    if cfg.stop_rate_per_min > 0:  # stop events over the longest episode, drawn now from the episode's generator
        stops, t = [], 0.0
        while True:
            t += float(rng.exponential(60.0 / cfg.stop_rate_per_min))
            if t > STOP_HORIZON_S:
                break
            stops.append((t, t + float(rng.uniform(*cfg.stop_duration_s))))
        v.stops, v.stop_decel_mps2 = tuple(stops), float(cfg.stop_decel_mps2)
    if destination is not None:
        v.plan_route_to(destination)
    return v


class EgoVehicle(_FastLanes, MDPVehicle):
    """The ego car: highway-env's kinematic bicycle driven by a steering angle and an acceleration.

    It subclasses ``MDPVehicle`` only so that highway-env's ``RegulatedRoad`` never takes control of it
    (the regulation makes other vehicles yield to it but leaves the ego's decisions to the expert). Its
    ``route`` is kept current by the world so that traffic can predict it.
    """

    def __init__(self, road: Road, position: np.ndarray, heading: float, speed: float, cfg: EgoDynamicsConfig):
        super().__init__(road, position, heading=heading, speed=speed)
        _set_footprint(self, cfg.length_m, cfg.width_m)
        self.cfg = cfg
        self.MAX_SPEED = cfg.max_speed_mps
        self.instance_id = "ego"
        self.category = "vehicle.ego"
        self.height_m = cfg.height_m
        self.steering_rad = 0.0
        self.accel_mps2 = 0.0

    def act(self, action: dict | str | None = None) -> None:
        """Keep the last commanded steering angle and acceleration (set with ``command``)."""
        self.action = {"steering": self.steering_rad, "acceleration": self.accel_mps2}

    def command(self, steering_rad: float, accel_mps2: float) -> None:
        """Set the front-wheel angle (highway-env sign: positive turns right on the y-down plane) and accel."""
        self.steering_rad = float(steering_rad)
        self.accel_mps2 = float(accel_mps2)
        self.act()

    def step(self, dt: float) -> None:
        # Never reverse: the longitudinal acceleration may bring the car to rest but not below.
        if self.speed + self.action["acceleration"] * dt < 0.0:
            self.action["acceleration"] = -self.speed / dt
        super().step(dt)
        self.speed = float(np.clip(self.speed, 0.0, self.cfg.max_speed_mps))

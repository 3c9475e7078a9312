"""Route following for CARLA agents: RoadOption -> command/instruction, GPS -> metric frame, compass, route planner.

Frames used here:
    carla   CARLA world: x east, y SOUTH (north is (0, -1, 0)), left-handed, yaw clockwise.
    local   right-handed planar frame of the same origin: x east, y north, yaw counter-clockwise from
            east (geometry.carla_to_ego_frame of the carla frame). The route planner works in it, and
            geometry.global_points_to_local takes points from it into the canonical ego frame.

GPS (verified against carla-simulator/leaderboard ``route_manipulation._location_to_gps``, which makes
the GPS route and matches the GNSS sensor of CARLA <= 0.9.15): a point (x, y) of the carla frame is
placed on a Mercator projection scaled by s = cos(lat_ref) around the map's reference (lat_ref, lon_ref),
with EARTH_RADIUS 6378137 m:
    mx = s R lon_rad,   my = s R ln(tan(pi/4 + lat_rad/2)),   mx = mx_ref + x,   my = my_ref - y
(``- y`` because CARLA's y points south). Near the reference this is the equirectangular map
x = R cos(lat_ref) dlon, y = -R dlat to first order; we use the exact inverse. Any reference works for
driving (relative geometry is preserved to ~1e-3 over a town), so agents take the first route point.
Note: the CARLA 0.9.16 Python API's ``Map.transform_to_geolocation`` (transverse Mercator) maps +y to
north instead; ``north_is_minus_y=False`` selects that convention if a server's GNSS follows it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from drive_vla.data.labels import instruction_for_command
from drive_vla.geometry import global_points_to_local, wrap_angle
from drive_vla.route_planner import RoutePlanner as TargetPlanner
from drive_vla.types import JUNCTION_HORIZON_M, ROUTE_TARGET_POINTS, Command

EARTH_RADIUS_EQUA_M = 6378137.0


class RoadOption(IntEnum):
    """CARLA's agents.navigation.local_planner.RoadOption values."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


JUNCTION_OPTIONS = (RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT)  # the global plan's junction waypoints


def parse_road_option(value: Any) -> RoadOption:
    """Accept a RoadOption, CARLA's own RoadOption enum (anything with ``.value``/``.name``), an int or a name."""
    raw = getattr(value, "value", value)
    if isinstance(raw, (int, np.integer)) and not isinstance(raw, bool) and int(raw) in RoadOption._value2member_map_:
        return RoadOption(int(raw))
    name = getattr(value, "name", value)
    if isinstance(name, str) and name.strip().upper() in RoadOption.__members__:
        return RoadOption[name.strip().upper()]
    raise ValueError(f"road option: got {value!r}, expected one of {[o.name for o in RoadOption]} or their values")


# nuScenes-style commands are about where the car ends up laterally (2 m rule): a lane change ends a
# lane (~3.5 m) to the side, so it maps like a turn.
_COMMANDS = {
    RoadOption.VOID: Command.STRAIGHT,
    RoadOption.LEFT: Command.LEFT,
    RoadOption.RIGHT: Command.RIGHT,
    RoadOption.STRAIGHT: Command.STRAIGHT,
    RoadOption.LANEFOLLOW: Command.STRAIGHT,
    RoadOption.CHANGELANELEFT: Command.LEFT,
    RoadOption.CHANGELANERIGHT: Command.RIGHT,
}
_SENTENCES = {
    RoadOption.VOID: "keep following the road",
    RoadOption.LEFT: "turn left at the next intersection",
    RoadOption.RIGHT: "turn right at the next intersection",
    RoadOption.STRAIGHT: "go straight through the next intersection",
    RoadOption.LANEFOLLOW: "keep following the road",
    RoadOption.CHANGELANELEFT: "change to the left lane",
    RoadOption.CHANGELANERIGHT: "change to the right lane",
}
INSTRUCTION_STYLES = ("command", "road_option")


def command_for_road_option(option: Any) -> Command:
    """LEFT/CHANGELANELEFT -> LEFT, RIGHT/CHANGELANERIGHT -> RIGHT, everything else -> STRAIGHT."""
    return _COMMANDS[parse_road_option(option)]


def instruction_for_road_option(option: Any, style: str = "command") -> str:
    """Instruction sentence for a road option.

    Args:
        style: "command" uses the training sentences of drive_vla.data.labels for the mapped command (what
            a model trained on nuScenes-format labels has seen); "road_option" names the manoeuvre.
    """
    if style == "command":
        return instruction_for_command(command_for_road_option(option))
    if style == "road_option":
        return _SENTENCES[parse_road_option(option)]
    raise ValueError(f"instruction style: got {style!r}, expected one of {list(INSTRUCTION_STYLES)}")


# ----------------------------------------------------------------------------- GPS


@dataclass(frozen=True)
class GpsReference:
    """The reference point of the metric frame, degrees."""

    lat_deg: float
    lon_deg: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat_deg) and -85.0 < self.lat_deg < 85.0):
            raise ValueError(f"gps reference lat_deg: got {self.lat_deg!r}, expected a latitude in (-85, 85)")
        if not (math.isfinite(self.lon_deg) and -180.0 <= self.lon_deg <= 180.0):
            raise ValueError(f"gps reference lon_deg: got {self.lon_deg!r}, expected a longitude in [-180, 180]")


def _mercator(lat_deg, lon_deg, scale: float) -> tuple[np.ndarray, np.ndarray]:
    mx = scale * EARTH_RADIUS_EQUA_M * np.radians(lon_deg)
    my = scale * EARTH_RADIUS_EQUA_M * np.log(np.tan(np.pi / 4.0 + np.radians(lat_deg) / 2.0))
    return mx, my


def carla_xy_to_gps(x_m, y_m, ref: GpsReference, north_is_minus_y: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CARLA world (x, y) -> (lat, lon) degrees, as the leaderboard computes its GPS route."""
    scale = math.cos(math.radians(ref.lat_deg))
    mx0, my0 = _mercator(ref.lat_deg, ref.lon_deg, scale)
    sign = -1.0 if north_is_minus_y else 1.0
    mx = mx0 + np.asarray(x_m, dtype=np.float64)
    my = my0 + sign * np.asarray(y_m, dtype=np.float64)
    lon = np.degrees(mx / (scale * EARTH_RADIUS_EQUA_M))
    lat = np.degrees(2.0 * np.arctan(np.exp(my / (scale * EARTH_RADIUS_EQUA_M))) - np.pi / 2.0)
    return lat, lon


def gps_to_carla_xy(
    lat_deg, lon_deg, ref: GpsReference, north_is_minus_y: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) degrees -> CARLA world (x, y) metres relative to ``ref``: exact inverse of carla_xy_to_gps."""
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    if not (np.all(np.isfinite(lat)) and np.all(np.isfinite(lon))):
        raise ValueError(f"gps: got lat {lat!r}, lon {lon!r}, expected finite degrees")
    scale = math.cos(math.radians(ref.lat_deg))
    mx0, my0 = _mercator(ref.lat_deg, ref.lon_deg, scale)
    mx, my = _mercator(lat, lon, scale)
    sign = -1.0 if north_is_minus_y else 1.0
    return mx - mx0, sign * (my - my0)


def gps_to_local_xy(lat_deg, lon_deg, ref: GpsReference, north_is_minus_y: bool = True) -> np.ndarray:
    """(lat, lon) -> (..., 2) in the right-handed local frame (x east, y north)."""
    x, y = gps_to_carla_xy(lat_deg, lon_deg, ref, north_is_minus_y)
    return np.stack([x, -y], axis=-1)  # carla y (south) -> local y (north), as geometry.carla_to_ego_frame


# ----------------------------------------------------------------------------- compass


def compass_to_carla_yaw_rad(compass_rad: float) -> float:
    """IMU compass (radians clockwise from north, north = carla -y) -> CARLA yaw (radians, clockwise from +x).

    Compass 0 faces north = -y, which is CARLA yaw -90 deg; compass pi/2 faces east = +x, yaw 0. So
    yaw = compass - pi/2.
    """
    return float(wrap_angle(float(compass_rad) - math.pi / 2.0))


def compass_to_local_yaw_rad(compass_rad: float) -> float:
    """IMU compass -> heading in the right-handed local frame (counter-clockwise from east) = pi/2 - compass."""
    return float(wrap_angle(-compass_to_carla_yaw_rad(compass_rad)))


def resolve_heading(
    compass_rad: float | None,
    last_yaw_rad: float | None,
    prev_xy: Sequence[float] | None,
    xy: Sequence[float],
    min_move_m: float = 0.5,
) -> tuple[float, str]:
    """Heading in the local frame from the compass, or a fallback when the compass is NaN (early frames).

    Returns (yaw_rad, source): source "compass"; else "gps_motion" (direction from ``prev_xy`` to ``xy``
    when the car moved at least ``min_move_m``); else "last" (the last valid heading); else "none"
    (yaw 0, nothing known yet).
    """
    if compass_rad is not None and math.isfinite(float(compass_rad)):
        return compass_to_local_yaw_rad(float(compass_rad)), "compass"
    if prev_xy is not None and all(math.isfinite(float(v)) for v in (*prev_xy, *xy)):
        dx, dy = float(xy[0]) - float(prev_xy[0]), float(xy[1]) - float(prev_xy[1])
        if math.hypot(dx, dy) >= min_move_m:
            return math.atan2(dy, dx), "gps_motion"
    if last_yaw_rad is not None and math.isfinite(float(last_yaw_rad)):
        return float(last_yaw_rad), "last"
    return 0.0, "none"


# ----------------------------------------------------------------------------- route planner


@dataclass(frozen=True)
class RouteTarget:
    """The next route points to drive to: local-frame positions (nearest first), the first one's RoadOption,
    and how many points remain; ``junction_m`` is the distance along the route to the next junction
    waypoint (``Observation.junction_m``)."""

    points_xy: np.ndarray
    option: RoadOption
    remaining: int
    junction_m: float = JUNCTION_HORIZON_M

    @property
    def xy(self) -> np.ndarray:
        """The next target point (local frame)."""
        return self.points_xy[0]

    @property
    def command(self) -> Command:
        return command_for_road_option(self.option)

    def in_ego_frame(self, ego_xy: Sequence[float], ego_yaw_rad: float) -> np.ndarray:
        """(ROUTE_TARGET_POINTS, 2) the target points in the canonical ego frame (``Observation.route_target``)."""
        return global_points_to_local(self.points_xy, (float(ego_xy[0]), float(ego_xy[1]), float(ego_yaw_rad)))


class RoutePlanner(TargetPlanner):
    """`drive_vla.route_planner.RoutePlanner` over a route whose points carry CARLA RoadOptions."""

    def __init__(self, min_distance_m: float = 4.0, max_distance_m: float = 50.0) -> None:
        super().__init__(min_distance_m, max_distance_m)
        self.options: list[RoadOption] = []

    def set_route(self, points_xy: np.ndarray, options: Sequence[Any]) -> None:  # type: ignore[override]
        """Route as (N, 2) local-frame points and their N road options."""
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0 or len(pts) != len(options):
            raise ValueError(f"route: got {len(pts)} points and {len(options)} options, expected the same number > 0")
        parsed = [parse_road_option(o) for o in options]
        super().set_route(pts)
        self.options = parsed

    def run_step(self, xy: Sequence[float]) -> RouteTarget:
        """Advance along the route for a car at local-frame ``xy``; return the next targets."""
        drop = self.advance(xy)
        self.options = self.options[drop:]
        k = self.target_index
        junction = junction_distance(xy, self.points, self.options)
        return RouteTarget(self.targets(ROUTE_TARGET_POINTS), self.options[k], len(self.points) - k, junction)


def junction_distance(xy: Sequence[float], points: np.ndarray, options: Sequence[RoadOption]) -> float:
    """Metres from a car at ``xy`` along the route's remaining ``points`` (the first one reached, the second
    ahead) to the entry of the next junction: the first point whose option is LEFT, RIGHT or STRAIGHT after
    any such points the car is already among; at most JUNCTION_HORIZON_M (also when none lies within it)."""
    i = 1 if len(points) > 1 else 0
    along = float(np.hypot(*(np.asarray(points[i], dtype=np.float64) - np.asarray(xy, dtype=np.float64))))
    inside = options[0] in JUNCTION_OPTIONS  # the junction the car is in is behind its entry
    while i < len(points) and along < JUNCTION_HORIZON_M:
        if options[i] in JUNCTION_OPTIONS and not inside:
            return along
        inside = inside and options[i] in JUNCTION_OPTIONS
        if i + 1 < len(points):
            along += float(np.hypot(*(points[i + 1] - points[i])))
        i += 1
    return JUNCTION_HORIZON_M


def target_in_ego_frame(target_xy: Sequence[float], ego_xy: Sequence[float], ego_yaw_rad: float) -> np.ndarray:
    """A local-frame target point in the canonical ego frame (x forward, y left)."""
    return global_points_to_local(np.asarray(target_xy), (float(ego_xy[0]), float(ego_xy[1]), float(ego_yaw_rad)))[0]


def route_from_gps_plan(
    global_plan: Sequence[tuple[dict, Any]], ref: GpsReference | None = None, north_is_minus_y: bool = True
) -> tuple[np.ndarray, list[RoadOption], GpsReference]:
    """The leaderboard's ``_global_plan`` [({'lat','lon','z'}, RoadOption), ...] -> local points, options, ref.

    ``ref`` defaults to the first route point.
    """
    if not global_plan:
        raise ValueError("global plan: got an empty route, expected at least one ({'lat','lon'}, RoadOption)")
    lat = np.array([float(p["lat"]) for p, _ in global_plan])
    lon = np.array([float(p["lon"]) for p, _ in global_plan])
    ref = ref or GpsReference(float(lat[0]), float(lon[0]))
    return gps_to_local_xy(lat, lon, ref, north_is_minus_y), [parse_road_option(o) for _, o in global_plan], ref

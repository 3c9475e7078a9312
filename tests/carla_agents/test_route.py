"""Route: GPS and compass conversions (hand-computed), road options, and the route planner on a recorded route."""

from __future__ import annotations

import math

import numpy as np
import pytest

from carla_agents.route import (
    EARTH_RADIUS_EQUA_M,
    GpsReference,
    RoadOption,
    RoutePlanner,
    carla_xy_to_gps,
    command_for_road_option,
    compass_to_carla_yaw_rad,
    compass_to_local_yaw_rad,
    gps_to_carla_xy,
    gps_to_local_xy,
    instruction_for_road_option,
    parse_road_option,
    resolve_heading,
    route_from_gps_plan,
    target_in_ego_frame,
)
from drive_vla.types import Command

R = EARTH_RADIUS_EQUA_M


def test_gps_at_the_equator_by_hand():
    ref = GpsReference(0.0, 0.0)
    # 1 deg of longitude at the equator is R * pi / 180 = 111319.49 m east (+x)
    x, y = gps_to_carla_xy(0.0, 1.0, ref)
    assert (float(x), float(y)) == pytest.approx((R * math.pi / 180, 0.0))
    # 1000 m north is CARLA y = -1000: lat = 2 atan(exp(1000 / R)) - pi/2 (Mercator at scale 1)
    lat_north = math.degrees(2 * math.atan(math.exp(1000.0 / R)) - math.pi / 2)
    x, y = gps_to_carla_xy(lat_north, 0.0, ref)
    assert (float(x), float(y)) == pytest.approx((0.0, -1000.0), abs=1e-6)


def test_gps_at_49_degrees_by_hand():
    """Near the reference the projection is equirectangular: dx = R cos(lat0) dlon, dy = -R dlat."""
    ref = GpsReference(49.0, 8.0)
    lat, lon = carla_xy_to_gps(100.0, 0.0, ref)
    assert float(lon) == pytest.approx(8.0 + math.degrees(100.0 / (R * math.cos(math.radians(49.0)))), abs=1e-12)
    assert float(lat) == pytest.approx(49.0, abs=1e-12)  # moving east keeps the latitude (Mercator)
    lat, lon = carla_xy_to_gps(0.0, -50.0, ref)  # 50 m north
    assert float(lat) == pytest.approx(49.0 + math.degrees(50.0 / R), abs=1e-8)  # first order: < 1 mm off


def test_gps_round_trip_and_local_frame():
    ref = GpsReference(49.0, 8.0)
    xs, ys = np.array([-1500.0, 0.0, 250.5, 3000.0]), np.array([800.0, 0.0, -42.0, -2500.0])
    lat, lon = carla_xy_to_gps(xs, ys, ref)
    bx, by = gps_to_carla_xy(lat, lon, ref)
    np.testing.assert_allclose(bx, xs, atol=1e-6)
    np.testing.assert_allclose(by, ys, atol=1e-6)
    np.testing.assert_allclose(gps_to_local_xy(lat, lon, ref), np.stack([xs, -ys], axis=1), atol=1e-6)  # y north


def test_other_reference_keeps_local_geometry():
    """Agents take the first route point as reference: distances stay within 1e-3 relative."""
    map_ref = GpsReference(49.0, 8.0)
    lat, lon = carla_xy_to_gps(np.array([2000.0, 2030.0]), np.array([-1500.0, -1540.0]), map_ref)
    local = gps_to_local_xy(lat, lon, GpsReference(float(lat[0]), float(lon[0])))
    assert np.linalg.norm(local[1] - local[0]) == pytest.approx(50.0, rel=1e-3)
    assert local[0] == pytest.approx([0.0, 0.0], abs=1e-9)


def test_north_convention_switch():
    ref = GpsReference(49.0, 8.0)
    lat, _ = carla_xy_to_gps(0.0, 100.0, ref, north_is_minus_y=False)
    assert float(lat) > 49.0
    _, y = gps_to_carla_xy(lat, 8.0, ref, north_is_minus_y=False)
    assert float(y) == pytest.approx(100.0, abs=1e-6)


def test_gps_rejects_nan():
    with pytest.raises(ValueError, match="gps"):
        gps_to_carla_xy(float("nan"), 8.0, GpsReference(49.0, 8.0))
    with pytest.raises(ValueError, match="lat_deg"):
        GpsReference(float("nan"), 0.0)


@pytest.mark.parametrize(
    ("compass_deg", "carla_yaw_deg", "local_yaw_deg"),
    [(0.0, -90.0, 90.0), (90.0, 0.0, 0.0), (180.0, 90.0, -90.0), (270.0, 180.0, 180.0), (359.0, -91.0, 91.0)],
)
def test_compass_to_yaw(compass_deg, carla_yaw_deg, local_yaw_deg):
    carla_yaw = math.degrees(compass_to_carla_yaw_rad(math.radians(compass_deg)))
    local_yaw = math.degrees(compass_to_local_yaw_rad(math.radians(compass_deg)))
    assert math.cos(math.radians(carla_yaw - carla_yaw_deg)) == pytest.approx(1.0)
    assert math.cos(math.radians(local_yaw - local_yaw_deg)) == pytest.approx(1.0)


def test_nan_compass_fallbacks():
    nan = float("nan")
    assert resolve_heading(math.pi / 2, None, None, (0, 0)) == (pytest.approx(0.0), "compass")
    # first frame, nothing known
    assert resolve_heading(nan, None, None, (0.0, 0.0)) == (0.0, "none")
    # keep the last valid heading while standing still
    assert resolve_heading(nan, 1.0, (0.0, 0.0), (0.1, 0.0)) == (1.0, "last")
    # derive it from GPS motion once the car moved far enough (north-east: 45 deg)
    yaw, source = resolve_heading(nan, 1.0, (0.0, 0.0), (1.0, 1.0))
    assert source == "gps_motion" and yaw == pytest.approx(math.pi / 4)


def test_road_options_to_commands_and_instructions():
    assert command_for_road_option(RoadOption.LEFT) is Command.LEFT
    assert command_for_road_option(2) is Command.RIGHT
    assert command_for_road_option("LANEFOLLOW") is Command.STRAIGHT
    assert command_for_road_option(RoadOption.CHANGELANELEFT) is Command.LEFT
    assert command_for_road_option(-1) is Command.STRAIGHT
    assert instruction_for_road_option(RoadOption.LEFT) == "turn left at the next intersection"
    assert instruction_for_road_option(RoadOption.STRAIGHT) == "keep following the road"  # training sentence
    assert (
        instruction_for_road_option(RoadOption.STRAIGHT, "road_option") == "go straight through the next intersection"
    )
    assert parse_road_option(RoadOption.CHANGELANERIGHT) is RoadOption.CHANGELANERIGHT
    with pytest.raises(ValueError, match="road option"):
        parse_road_option(9)
    with pytest.raises(ValueError, match="instruction style"):
        instruction_for_road_option(1, "poetic")


# A recorded route (CARLA frame): 60 m east, a left turn at the junction, then 40 m north (y decreasing).
ROUTE_CARLA = [(0, 0), (20, 0), (40, 0), (60, 0), (70, -10), (70, -30), (70, -50)]
ROUTE_OPTIONS = [RoadOption.LANEFOLLOW] * 3 + [RoadOption.LEFT] * 2 + [RoadOption.LANEFOLLOW] * 2


def test_route_planner_commands_along_a_recorded_route(recorded):
    pts, options, ref = route_from_gps_plan(recorded.gps_route(ROUTE_CARLA, ROUTE_OPTIONS))
    planner = RoutePlanner(min_distance_m=4.0, max_distance_m=50.0)
    planner.set_route(pts, options)
    seen = []
    for x in np.arange(0.0, 61.0, 1.0):  # drive east along the route
        target = planner.run_step(gps_to_local_xy(*carla_xy_to_gps(x, 0.0, recorded.ref), ref))
        seen.append((x, target.command))
    commands = dict(seen)
    assert commands[0.0] is Command.STRAIGHT  # next target (20, 0) is lane following
    assert commands[40.0] is Command.LEFT  # past (40, 0): the next point starts the left turn
    target = planner.run_step(gps_to_local_xy(*carla_xy_to_gps(70.0, -30.0, recorded.ref), ref))
    assert target.command is Command.STRAIGHT and target.remaining == 1
    # the target in the ego frame: heading north, the last point (70, -50) is 20 m straight ahead
    ego_xy = gps_to_local_xy(*carla_xy_to_gps(70.0, -30.0, recorded.ref), ref)
    np.testing.assert_allclose(target_in_ego_frame(target.xy, ego_xy, math.pi / 2), [20.0, 0.0], atol=0.05)


def test_route_planner_looks_only_max_distance_ahead():
    planner = RoutePlanner(min_distance_m=4.0, max_distance_m=15.0)
    # a loop: the point at index 4 comes back near the start but lies 40 m along the route
    pts = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 1], [0, -10]], dtype=float)
    planner.set_route(pts, [RoadOption.LANEFOLLOW] * 6)
    target = planner.run_step((0.0, 0.0))
    assert target.xy.tolist() == [10.0, 0.0]  # did not jump ahead to the loop's end


def test_route_planner_rejects_bad_routes():
    with pytest.raises(ValueError, match="route"):
        RoutePlanner().set_route(np.zeros((2, 2)), [RoadOption.LEFT])
    with pytest.raises(ValueError, match="distances"):
        RoutePlanner(10.0, 5.0)
    with pytest.raises(ValueError, match="no route"):
        RoutePlanner().run_step((0, 0))

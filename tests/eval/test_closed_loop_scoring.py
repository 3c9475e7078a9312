"""Hand-worked checks of the leaderboard / Bench2Drive scoring functions."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.eval.closed_loop_scoring import (
    DriveLog,
    Infraction,
    RouteRecord,
    comfort_metrics,
    infraction_penalty,
    is_success,
    kinematics_from_poses,
    mean_speed,
    route_score,
    summarize_routes,
)


def test_penalties_multiply():
    events = [Infraction("collision_pedestrian"), Infraction("collision_vehicle"), Infraction("collision_vehicle"),
              Infraction("red_light"), Infraction("stop_sign"), Infraction("collision_static"),
              Infraction("scenario_timeout"), Infraction("yield_emergency_vehicle")]  # fmt: skip
    assert infraction_penalty(events) == pytest.approx(0.5 * 0.6 * 0.6 * 0.7 * 0.8 * 0.65 * 0.7 * 0.7)
    assert infraction_penalty([]) == 1.0


def test_route_score_is_completion_times_penalty():
    rec = RouteRecord("r0", 0.8, (Infraction("collision_pedestrian"), Infraction("red_light")))
    s = route_score(rec)
    assert s["route_completion"] == pytest.approx(80.0)
    assert s["infraction_penalty"] == pytest.approx(0.35)
    assert s["driving_score"] == pytest.approx(28.0)
    assert not s["success"]


def test_outside_route_lanes_uses_the_percentage_rule_and_route_ending_events_cost_completion_only():
    assert Infraction("outside_route_lanes", percent=20.0).factor() == pytest.approx(0.8)
    rec = RouteRecord("r", 0.4, (Infraction("route_deviation"),), status="ended")
    assert route_score(rec)["driving_score"] == pytest.approx(40.0)
    assert not is_success(rec)
    with pytest.raises(ValueError, match="infraction.percent"):
        Infraction("outside_route_lanes")
    with pytest.raises(ValueError, match="infraction.kind"):
        Infraction("speeding")


def test_success_needs_completion_and_no_infraction():
    assert is_success(RouteRecord("a", 1.0))
    assert not is_success(RouteRecord("b", 0.99))
    assert not is_success(RouteRecord("c", 1.0, (Infraction("stop_sign"),)))
    assert not is_success(RouteRecord("d", 1.0, status="failed"))


def test_driving_score_counts_failed_and_missing_routes_as_zero():
    records = [
        RouteRecord("r1", 1.0, distance_m=1000.0, mean_speed_mps=6.0, comfort_pct=90.0),  # DS 100, success
        RouteRecord("r2", 0.5, (Infraction("collision_vehicle"),), distance_m=500.0),  # DS 30
        RouteRecord("r3", 0.9, status="failed"),  # crash: 0
    ]
    out = summarize_routes(records, expected_route_ids=["r1", "r2", "r3", "r4"])
    assert out["driving_score"] == pytest.approx((100 + 30 + 0 + 0) / 4)
    assert out["route_completion"] == pytest.approx((100 + 50) / 4)
    assert out["success_rate"] == pytest.approx(25.0)
    assert out["infraction_penalty"] == pytest.approx((1.0 + 0.6) / 2)
    assert (out["num_routes"], out["num_failed"], out["num_missing"]) == (4, 1, 1)
    assert out["missing_routes"] == ["r4"]
    assert out["infractions"]["collision_vehicle"] == 1
    assert out["collisions"] == 1
    assert out["infractions_per_km"]["collision_vehicle"] == pytest.approx(1 / 1.5)
    assert out["mean_speed_mps"] == 6.0 and out["comfort_pct"] == 90.0
    with pytest.raises(ValueError, match="duplicate"):
        summarize_routes([RouteRecord("a", 1.0), RouteRecord("a", 1.0)])
    with pytest.raises(ValueError, match="not in expected"):
        summarize_routes([RouteRecord("z", 1.0)], expected_route_ids=["a"])


def _log(n: int = 60, dt: float = 0.05, speed: float = 8.0, **overrides) -> DriveLog:
    t = dt * np.arange(n)
    fields = dict(time_s=t, speed_mps=np.full(n, speed), lon_accel_mps2=np.zeros(n), lat_accel_mps2=np.zeros(n),
                  yaw_rate_rps=np.zeros(n))  # fmt: skip
    fields.update(overrides)
    return DriveLog(**fields)


def test_comfort_windows():
    assert comfort_metrics(_log())["comfort_pct"] == 100.0
    assert comfort_metrics(_log())["windows"] == 3
    brake = np.zeros(60)
    brake[25:30] = -6.0  # hard braking inside window 2 (frames 20..39)
    out = comfort_metrics(_log(lon_accel_mps2=brake))
    assert out["failed_windows"]["lon_accel_mps2"] == 1
    assert out["comfort_pct"] == pytest.approx(200 / 3)
    # np.gradient's central difference spreads the 0 -> -6 m/s^2 step over 0.1 s: |jerk| = 60 m/s^3
    assert out["failed_windows"]["lon_jerk_mps3"] == 1 and out["max_abs"]["jerk_mps3"] == pytest.approx(60.0)
    spin = np.zeros(60)
    spin[45:] = 1.2  # yaw rate above 0.95 rad/s in window 3
    assert comfort_metrics(_log(yaw_rate_rps=spin))["failed_windows"]["yaw_rate_rps"] == 1
    assert comfort_metrics(_log(n=10))["windows"] == 1  # shorter than one window: one window


def test_kinematics_from_a_circle():
    v, r = 10.0, 50.0
    t = 0.05 * np.arange(200)
    yaw = v / r * t
    log = kinematics_from_poses(t, r * np.sin(yaw), r * (1 - np.cos(yaw)), yaw)
    inner = slice(2, -2)
    assert log.speed_mps[inner] == pytest.approx(v, rel=1e-3)
    assert log.yaw_rate_rps[inner] == pytest.approx(v / r, rel=1e-6)
    assert log.lat_accel_mps2[inner] == pytest.approx(v * v / r, rel=1e-3)  # 2 m/s^2 to the left
    assert np.abs(log.lon_accel_mps2[inner]).max() < 1e-2
    assert mean_speed(log) == pytest.approx(v, rel=1e-2)


def test_drive_log_validation():
    with pytest.raises(ValueError, match="log.speed_mps"):
        DriveLog(np.arange(3.0), np.zeros(2), np.zeros(3), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="increasing"):
        DriveLog(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="route.completion"):
        RouteRecord("r", 1.5)

"""Monitor scoring by hand: fire rate, infractions flagged beforehand or missed, onsets, totals over routes."""

from __future__ import annotations

import pytest

from drive_vla.eval.closed_loop_scoring import Infraction
from drive_vla.eval.monitor_metrics import (
    fires_per_minute,
    flag_infractions,
    infraction_onsets,
    merge_monitor_summaries,
)


def test_fires_per_minute():
    assert fires_per_minute(3, 30.0) == pytest.approx(6.0)
    assert fires_per_minute(0, 0.0) is None
    with pytest.raises(ValueError, match="duration_s"):
        fires_per_minute(1, -1.0)


def test_flag_window():
    infractions = [("collision_vehicle", 10.0), ("route_deviation", 20.0), ("route_timeout", 30.0)]
    out = flag_infractions([6.5, 7.5, 9.0, 21.0], infractions, window_s=3.0)
    # 7.5 and 9.0 s warn of the 10 s collision (6.5 s is too early); 21 s comes after the deviation.
    assert out["flagged"] == 1 and out["missed"] == 1  # a timeout is not a flaggable failure
    assert out["by_kind"] == {
        "collision_vehicle": {"flagged": 1, "missed": 0},
        "route_deviation": {"flagged": 0, "missed": 1},
    }
    assert out["lead_s"] == [pytest.approx(2.5)]
    assert flag_infractions([10.0], [("collision_static", 10.0)], 3.0)["flagged"] == 1  # a fire at the onset counts
    with pytest.raises(ValueError, match="window_s"):
        flag_infractions([], [], 0.0)


def test_onsets():
    infractions = [
        Infraction("collision_vehicle", time_s=12.0),
        Infraction("agent_blocked", time_s=50.0),
        Infraction("outside_route_lanes", percent=10.0),
    ]
    assert infraction_onsets(infractions, 7.0, blocked_after_s=20.0) == [
        ("collision_vehicle", 12.0),
        ("agent_blocked", 30.0),
        ("outside_route_lanes", 7.0),
    ]


def test_merge_over_routes():
    a = {"mode": "on", "fires": 2, "driven_s": 30.0, "by_check": {"plan_jump": 2}, "infractions_flagged": 1}
    b = {"mode": "on", "fires": 1, "driven_s": 30.0, "by_check": {"plan_jump": 1, "off_drivable": 1}}
    total = merge_monitor_summaries([a, b, {}])
    assert total["fires"] == 3 and total["fires_per_min"] == pytest.approx(3.0)
    assert total["by_check"] == {"plan_jump": 3, "off_drivable": 1} and total["infractions_flagged"] == 1
    assert merge_monitor_summaries([{}, {}]) == {}

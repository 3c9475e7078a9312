"""Lateral probe: the sideways shift moves the ego and its history together; slopes of known planners."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.eval.lateral_probe import fit_line, probe, probe_observations
from drive_vla.sim.embedded import EmbeddedWorld
from drive_vla.types import Plan, Trajectory


class RouteSteer:
    """Plans straight toward the first route target's lateral position (or straight ahead without one)."""

    def reset(self) -> None:
        pass

    def predict_batch(self, observations):
        out = []
        for obs in observations:
            y = 0.0 if obs.route_target is None else float(obs.route_target[0, 1])
            xy = np.stack([np.arange(1, 7) * 5.0, np.full(6, y)], axis=1).astype(np.float32)
            out.append(Plan(Trajectory(xy)))
        return out


def test_shift_moves_the_ego_and_its_history_but_not_the_route():
    world = EmbeddedWorld()
    world.reset("highway", 5)
    for _ in range(10):
        world.step(None)
    history, target, off = world.history(), world.route_target(), world.distance_from_route_m
    world.shift_ego_sideways(1.0)
    np.testing.assert_allclose(world.history(), history, atol=1e-6)  # the past moved with the car
    np.testing.assert_allclose(world.route_target()[:, 1], target[:, 1] - 1.0, atol=0.05)
    assert world.distance_from_route_m == pytest.approx(off + 1.0, abs=0.3)  # nearest of points 0.5 m apart
    with pytest.raises(ValueError, match="offset_m"):
        world.shift_ego_sideways(float("nan"))


def test_probe_reads_a_full_correction_from_the_route_and_none_without_it():
    cases = probe_observations([7, 8], (-1.0, 0.0, 1.0), (64, 36), warmup_steps=10)
    full = probe(RouteSteer(), cases, "images")
    assert full["slope_3.0s"] == pytest.approx(-1.0, abs=0.05) and abs(full["bias_m_3.0s"]) < 0.05
    blind = probe(RouteSteer(), cases, "no_route")
    assert blind["slope_3.0s"] == pytest.approx(0.0, abs=1e-6)
    assert fit_line(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))[:2] == pytest.approx((2.0, 1.0))


def test_the_expert_returns_to_its_lane_within_the_horizon():
    from drive_vla.eval.lateral_probe import expert_row

    row = expert_row([7], (-1.0, 0.0, 1.0), warmup_steps=10)
    assert row["variant"] == "expert" and row["cases"] == 3
    assert row["slope_3.0s"] == pytest.approx(-1.0, abs=0.15) and abs(row["bias_m_3.0s"]) < 0.1

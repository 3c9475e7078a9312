"""Averaging the plans of several policies (drive --ensemble)."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.ensemble import EnsemblePlanner, average_plans
from drive_vla.types import Control, Plan, Trajectory


def _plan(x: float, yaw: float, steer: float, mask_last: bool = True) -> Plan:
    xy = np.stack([np.arange(1, 7) * x, np.zeros(6)], axis=1).astype(np.float32)
    mask = np.ones(6, bool)
    mask[-1] = mask_last
    traj = Trajectory(xy, np.full(6, yaw, np.float32), mask)
    return Plan(traj, Control(steer, 0.5, 0.0), meta_action=f"m{x}", timings_ms={"total": 2.0})


def test_average_plans_means_waypoints_wraps_headings_and_ands_masks():
    a, b = _plan(2.0, np.pi - 0.1, 0.2), _plan(4.0, -np.pi + 0.1, -0.4, mask_last=False)
    m = average_plans([a, b])
    np.testing.assert_allclose(m.trajectory.xy[:, 0], np.arange(1, 7) * 3.0)
    assert np.allclose(np.abs(m.trajectory.yaw_rad), np.pi, atol=1e-5)  # not 0: headings average on the circle
    assert m.trajectory.mask.tolist() == [True] * 5 + [False]
    assert m.controls.steer == pytest.approx(-0.1) and m.meta_action == "m2.0" and m.timings_ms["total"] == 4.0


class _Member:
    def __init__(self, x: float) -> None:
        self.x, self.resets = x, 0

    def predict_batch(self, observations):
        return [_plan(self.x, 0.0, 0.0) for _ in observations]

    def reset(self) -> None:
        self.resets += 1


def test_the_ensemble_averages_its_members_and_resets_them_all():
    members = [_Member(1.0), _Member(2.0), _Member(6.0)]
    ens = EnsemblePlanner(members)
    plans = ens.predict_batch([object(), object()])
    assert len(plans) == 2 and plans[0].trajectory.xy[0, 0] == pytest.approx(3.0)
    ens.reset()
    assert [m.resets for m in members] == [1, 1, 1]
    with pytest.raises(ValueError, match="ensemble: got 1 member"):
        EnsemblePlanner(members[:1])
    with pytest.raises(NotImplementedError):
        ens.explain(object())


def test_drive_refuses_an_ensemble_of_one(tmp_path):
    from drive_vla.cli.main import main

    with pytest.raises(ValueError, match="--ensemble: got 1 --policy, expected at least 2"):
        main(["drive", "--policy", str(tmp_path), "--ensemble", "--suite", "smoke", "--out", str(tmp_path / "o")])

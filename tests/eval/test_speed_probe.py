"""The speed probe: planned against expert speed changes, with real and black cameras."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drive_vla.eval.speed_probe import end_speed_change, probe
from drive_vla.types import STEP_DT_S, Plan, Trajectory


def test_end_speed_change_reads_the_last_second():
    xy = np.stack([np.arange(1, 7) * 5.0 * STEP_DT_S * 2, np.zeros(6)], axis=1)  # 10 m/s
    assert end_speed_change(xy, 10.0) == pytest.approx(0.0)
    assert end_speed_change(xy, 12.0) == pytest.approx(-2.0)


class _Blindish:
    """Plans a speed change of +1 m/s with any camera content above black, -1 m/s with black cameras."""

    def reset(self):
        pass

    def predict(self, obs):
        seen = any(im.any() for im in obs.images.values())
        v = obs.ego.speed_mps + (1.0 if seen else -1.0)
        xy = np.stack([np.arange(1, 7) * v * STEP_DT_S, np.zeros(6)], axis=1)
        return Plan(trajectory=Trajectory(xy=xy.astype(np.float32)))


def test_probe_separates_what_comes_from_the_cameras(sample_factory):
    samples = []
    for i, v in enumerate((4.0, 8.0, 12.0)):
        s = sample_factory(f"s{i}", speed_mps=v)  # the expert keeps its speed
        lit = {c: np.full_like(im, 90) for c, im in s.observation.images.items()}
        samples.append(dataclasses.replace(s, observation=dataclasses.replace(s.observation, images=lit)))
    rows = probe(_Blindish(), samples)
    assert rows["samples"] == 3 and rows["expert_p50"] == pytest.approx(0.0, abs=1e-4)
    assert rows["images_p50"] == pytest.approx(1.0, abs=1e-4) and rows["black_p50"] == pytest.approx(-1.0, abs=1e-4)
    assert rows["images_vs_black_mps"] == pytest.approx(2.0, abs=1e-4)

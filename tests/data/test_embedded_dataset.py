"""A tiny embedded-world dataset (drive_vla.sim.dataset.make_embedded) loads in nuscenes-devkit and the reader."""

from __future__ import annotations

import numpy as np
import pytest
from nuscenes.can_bus.can_bus_api import NuScenesCanBus
from nuscenes.nuscenes import NuScenes

from drive_vla.data.reader import NuScenesReader
from drive_vla.data.splits import available_splits
from drive_vla.types import FUTURE_STEPS


@pytest.mark.slow
def test_make_embedded_loads_in_devkit_and_reader(tmp_path):
    dataset = pytest.importorskip(
        "drive_vla.sim.dataset", reason="the embedded world's dataset writer is not built yet"
    )
    root, version = tmp_path / "embedded", "v1.0-embedded"
    dataset.make_embedded(root, 2, 0, version=version, image_wh=(64, 36), workers=1)
    nusc = NuScenes(version, str(root), verbose=False)
    assert len(nusc.scene) == 2 and len(nusc.sample) >= 2 * (FUTURE_STEPS + 1)
    splits = available_splits(root, version)
    assert sorted(s for names in splits.values() for s in names) == sorted(s["name"] for s in nusc.scene)
    reader = NuScenesReader(root, version)
    assert len(reader) == len(nusc.sample)
    sample = reader[0]
    assert sample.observation.image_hw == (36, 64)
    assert sample.targets.trajectory.mask.all() and len(sample.targets.future_boxes) == FUTURE_STEPS
    assert np.all(np.isfinite(sample.targets.trajectory.xy))
    # the expert never reverses and covers at most 3 s at highway speed
    assert -0.5 <= sample.targets.trajectory.xy[-1, 0] < 120.0
    if reader.has_can:
        assert sample.observation.ego.source == "can"
        assert NuScenesCanBus(dataroot=str(root)).get_messages(nusc.scene[0]["name"], "vehicle_monitor")
    last = reader[reader.index.scene_start[1] - 1]
    assert not last.targets.trajectory.mask.any()  # the scene's last keyframe has no future

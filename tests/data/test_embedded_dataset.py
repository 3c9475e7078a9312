"""A tiny embedded-world dataset (drive_vla.sim.dataset.make_embedded) loads in nuscenes-devkit and the reader."""

from __future__ import annotations

import numpy as np
import pytest
from nuscenes.can_bus.can_bus_api import NuScenesCanBus
from nuscenes.nuscenes import NuScenes

from drive_vla.data.reader import NuScenesReader
from drive_vla.data.splits import available_splits
from drive_vla.types import FUTURE_STEPS

KEYFRAMES = FUTURE_STEPS + 2


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    dataset = pytest.importorskip(
        "drive_vla.sim.dataset", reason="the embedded world's dataset writer is not built yet"
    )
    from drive_vla.sim.config import DatasetConfig

    root, version = tmp_path_factory.mktemp("embedded") / "nuscenes", "v1.0-embedded"
    cfg = DatasetConfig(keyframes_per_scene=KEYFRAMES)
    summary = dataset.make_embedded(root, 2, 0, version=version, image_wh=(64, 36), workers=1, config=cfg)
    return root, version, summary


def test_embedded_dataset_loads_in_the_devkit(embedded):
    root, version, summary = embedded
    nusc = NuScenes(version, str(root), verbose=False)
    assert len(nusc.scene) == 2 and len(nusc.sample) == 2 * KEYFRAMES == summary["samples"]
    splits = available_splits(root, version)
    assert sorted(s for names in splits.values() for s in names) == sorted(s["name"] for s in nusc.scene)
    monitor = NuScenesCanBus(dataroot=str(root)).get_messages(nusc.scene[0]["name"], "vehicle_monitor")
    assert len(monitor) == KEYFRAMES and monitor[0]["vehicle_speed"] >= 0


def test_embedded_dataset_reads_as_samples(embedded):
    root, version, _ = embedded
    reader = NuScenesReader(root, version)
    assert len(reader) == 2 * KEYFRAMES and reader.has_can and reader.has_labels
    sample = reader[0]
    obs = sample.observation
    assert obs.image_hw == (36, 64) and obs.ego.source == "can"
    traj = sample.targets.trajectory
    assert traj.mask.all() and len(sample.targets.future_boxes) == FUTURE_STEPS
    # the expert never reverses and covers at most 3 s at highway speed
    assert np.all(np.isfinite(traj.xy)) and -0.5 <= traj.xy[-1, 0] < 120.0
    assert sample.targets.control is not None and sample.targets.qa and obs.instruction
    assert not reader[KEYFRAMES - 1].targets.trajectory.mask.any()  # the scene's last keyframe has no future
    # the speed the CAN bus reports matches the distance driven to the next keyframe within 2 m/s
    assert abs(np.linalg.norm(traj.xy[0]) / traj.dt_s - obs.ego.speed_mps) < 2.0

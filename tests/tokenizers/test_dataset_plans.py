"""Tokenizers on plans read back from nuScenes-format datasets (NuScenesWriter -> NuScenesReader).

Two sources share one test body: "written" writes a tiny dataset whose ego motion follows kinematic
driving rollouts; "embedded" is a tiny dataset rolled out by the embedded world's expert (drive_vla.sim.dataset.make_embedded).
"""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.geometry import rig_calibration, yaw_to_quat
from drive_vla.tokenizers import FASTTokenizer, UniformBinTokenizer, round_trip_errors_m, tokens_per_plan
from drive_vla.types import CAMERA_NAMES

SLACK_M = 1e-5
KEYFRAMES = 16  # 8 s per scene at 2 Hz: 10 samples with complete 3 s plans


def _scene_poses(v0_mps: float, accel_mps2: float, yaw_rate_rps: float) -> np.ndarray:
    """(KEYFRAMES, 3) global [x, y, yaw] of a unicycle at 2 Hz (integrated at 20 Hz)."""
    x = y = yaw = 0.0
    v = v0_mps
    out = []
    for i in range(KEYFRAMES * 10):
        if i % 10 == 0:
            out.append((x, y, yaw))
        v = max(0.0, v + accel_mps2 * 0.05)
        yaw += yaw_rate_rps * 0.05
        x, y = x + v * np.cos(yaw) * 0.05, y + v * np.sin(yaw) * 0.05
    return np.array(out)


def write_tiny_dataset(root) -> tuple[str, str]:
    from drive_vla.data.nuscenes_writer import KeyframeRecord, NuScenesWriter, SceneRecord

    intr, extr = rig_calibration(16, 9)
    images = {c: np.zeros((9, 16, 3), dtype=np.uint8) for c in CAMERA_NAMES}
    writer = NuScenesWriter(root, "v1.0-embedded")
    motions = [(12.0, 0.0, 0.0), (4.0, 1.0, 0.0), (8.0, 0.0, 0.25), (9.0, -2.5, 0.0), (6.0, 0.5, -0.3)]
    names = []
    for s, motion in enumerate(motions):
        keyframes = [
            KeyframeRecord(
                timestamp_us=1_000_000 + 500_000 * k,
                ego_translation=[x, y, 0.0],
                ego_rotation=yaw_to_quat(yaw).tolist(),
                images=images,
            )
            for k, (x, y, yaw) in enumerate(_scene_poses(*motion))
        ]
        names.append(f"scene-{s:04d}")
        writer.add_scene(SceneRecord(names[-1], "tiny", keyframes, intr, extr))
    writer.finish({"train": names})
    return str(root), "v1.0-embedded"


def embedded_dataset(root) -> tuple[str, str]:
    """A tiny dataset rolled out by the embedded world's expert (4 short scenes, tiny images)."""
    from drive_vla.sim.dataset import make_embedded

    make_embedded(root, scenes=4, seed=0, image_wh=(32, 18))
    return str(root), "v1.0-embedded"


@pytest.mark.parametrize("source", ["written", "embedded"])
def test_tokenizers_on_dataset_plans(source, tmp_path, train_plans):
    pytest.importorskip("drive_vla.data.reader", reason="drive_vla.data.reader not available")
    pytest.importorskip("drive_vla.data.nuscenes_writer", reason="drive_vla.data.nuscenes_writer not available")

    dataroot, version = (write_tiny_dataset if source == "written" else embedded_dataset)(tmp_path / "data")
    from drive_vla.data.expert_plans import PlanLabelledReader

    # as training reads them: a noisy embedded scene's labels are the expert's plans, not its recorded future
    plans = [t for t in PlanLabelledReader(dataroot, version).trajectories() if t.is_complete]
    assert len(plans) >= 10
    uniform = UniformBinTokenizer().fit(train_plans)
    fast = FASTTokenizer().fit(train_plans)
    for tok in (uniform, fast):
        in_range = [t for t in plans if tok.in_range(t)]
        assert len(in_range) >= 0.9 * len(plans)
        assert round_trip_errors_m(tok, in_range).max() <= tok.round_trip_bound_m + SLACK_M
    n_uniform, n_fast = tokens_per_plan(uniform, plans), tokens_per_plan(fast, plans)
    assert n_uniform == 12.0
    assert n_fast < n_uniform, (n_fast, n_uniform)

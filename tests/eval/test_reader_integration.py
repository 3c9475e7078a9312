"""Open-loop evaluation through the real NuScenesReader on tiny written datasets (hand-checked numbers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from drive_vla.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
nuscenes_factory = pytest.importorskip("nuscenes_factory")


def test_cli_on_a_synthetic_dataset_gives_the_hand_computed_l2(tmp_path, capsys):
    # The synthetic ego accelerates at 1 m/s^2 in a straight line and its CAN speed is exact, so the
    # constant-velocity plan lags by 0.5 t^2: 0.125, 0.5, 1.125, 2, 3.125, 4.5 m at 0.5 .. 3 s.
    root = tmp_path / "ns"
    nuscenes_factory.write_synthetic_dataset(root, scenes=2, n_keyframes=10)
    out = tmp_path / "out"
    args = ["eval", "open-loop", "--baseline", "constant_velocity", "--dataroot", str(root)]
    args += ["--version", "v1.0-synthetic", "--split", "val", "--out", str(out), "--image-size", "32x18"]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())["models"]["baseline:constant_velocity"]
    lag = 0.5 * (0.5 * np.arange(1, 7)) ** 2
    # ST-P3: the 2 of 10 val samples with 2 past and 6 future keyframes (i = 2, 3), mean over steps
    assert m["stp3"]["num_samples"] == 2
    assert m["stp3"]["l2_m"]["1s"] == pytest.approx(lag[:2].mean(), abs=1e-4)
    assert m["stp3"]["l2_m"]["3s"] == pytest.approx(lag.mean(), abs=1e-4)
    # UniAD: all 10 samples in the denominator; sample i is valid at step k when i + k < 10
    assert m["uniad"]["num_samples"] == 10
    assert m["uniad"]["l2_m"]["1s"] == pytest.approx(8 * lag[1] / 10, abs=1e-4)
    assert m["uniad"]["l2_m"]["2s"] == pytest.approx(6 * lag[3] / 10, abs=1e-4)
    assert m["uniad"]["l2_m"]["3s"] == pytest.approx(4 * lag[5] / 10, abs=1e-4)
    # the lead car stays >= 15 m ahead: no vehicle collision
    assert m["uniad"]["collision_pct"]["avg"] == 0.0  # vehicles only; the walker counts for ST-P3 alone
    assert "| ST-P3 " in capsys.readouterr().out


def test_real_keyframe_boxes_come_back_in_the_lidar_frame(keyframe_dir, tmp_path):
    from drive_vla.baselines import make_baseline
    from drive_vla.data.reader import NuScenesReader
    from drive_vla.eval.openloop import run_openloop

    ds = nuscenes_factory.write_keyframe_dataset(keyframe_dir, tmp_path / "ns", n_keyframes=7)
    reader = NuScenesReader(ds.dataroot, ds.version, split="train", image_hw=(18, 32))
    run = run_openloop({"cv": make_baseline("constant_velocity")}, reader, max_samples=1)
    boxes = run.gt.boxes[0]
    first = boxes.step == 0  # the static agents one step later, in the first sample's frame
    ref = np.array(
        [b["box"] for b in ds.keyframe["lidar_boxes"] if b["category"] in nuscenes_factory.DETECTION_TO_CATEGORY]
    )
    assert first.sum() == len(ref)
    dist = np.linalg.norm(boxes.xy[first][None] - ref[None, :, :2].transpose(1, 0, 2), axis=-1)  # (ref, mine)
    j = dist.argmin(1)
    # nominal vs real LiDAR mount: a 0.15 deg yaw difference, < 0.2 m at 60 m, a few cm nearby
    near = np.hypot(ref[:, 0], ref[:, 1]) < 15
    assert dist.min(1).max() < 0.2 and dist.min(1)[near].max() < 0.05
    assert boxes.length_m[first][j] == pytest.approx(ref[:, 3], abs=1e-3)
    assert np.abs(np.angle(np.exp(1j * (boxes.yaw_rad[first][j] - ref[:, 6])))).max() < 0.01
    # the known path: 4 m/s straight ahead for 2 s, seen through the keyframe's own LiDAR calibration
    # (yawed 0.12 deg from the nominal mount, so the path drifts 4 mm right per 2 m)
    l2e = reader.lidar2ego(0)
    expected = (np.stack([[2.0, 4, 6, 8], np.zeros(4), np.zeros(4)], 1) - l2e[:3, 3] + l2e[:3, 3]) @ l2e[:3, :3]
    assert run.gt.xy[0][:4] == pytest.approx(expected[:, :2], abs=1e-5)


def test_cli_evaluates_a_policy_beside_its_int8_copy(tmp_path, capsys):
    import torch

    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig
    from drive_vla.policy import DrivingPolicy

    root = tmp_path / "ns"
    nuscenes_factory.write_synthetic_dataset(root, scenes=2, n_keyframes=10)
    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(
        ModelConfig,
        repo / "configs/model/tiny.yaml",
        ["lm.text_tokenizer=byte", "lm.hidden_size=32", "lm.intermediate_size=64", "vision.image_hw=[18, 32]"]
        + ["vision.backbone=lcnet_035", "vision.dim=32", "vision.num_queries=2", "output_mode=head"],
    )
    torch.manual_seed(0)
    DrivingPolicy.build(cfg).save_pretrained(tmp_path / "p")
    out = tmp_path / "out"
    args = ["eval", "open-loop", "--policy", str(tmp_path / "p"), "--quantize", "int8", "--dataroot", str(root)]
    args += ["--version", "v1.0-synthetic", "--split", "val", "--out", str(out), "--image-size", "32x18"]
    assert main(args) == 0
    models = json.loads((out / "metrics.json").read_text())["models"]
    assert set(models) == {"policy:p", "policy:p+int8"}
    a, b = (models[k]["stp3"]["l2_m"]["avg"] for k in ("policy:p", "policy:p+int8"))
    assert np.isfinite(b) and abs(a - b) < 0.05 * max(1.0, a)
    assert main([a if a != "int8" else "int3" for a in args]) == 2
    assert "--quantize: got 'int3'" in capsys.readouterr().err

"""`drive-vla data inspect` counts and picture; `make-embedded` argument handling."""

from __future__ import annotations

import argparse

import cv2
import pytest

from drive_vla.cli.args import parse_image_wh
from drive_vla.cli.main import main


def test_inspect_prints_counts_and_writes_a_picture(synthetic_dataset, tmp_path, capsys):
    root, version, tokens = synthetic_dataset
    out = tmp_path / "sample.png"
    assert (
        main(
            [
                "data",
                "inspect",
                "--dataroot",
                str(root),
                "--version",
                version,
                "--sample",
                tokens[1][2],
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "scenes               2" in text and "samples              16" in text
    assert "annotations          32" in text and "can_bus              present (16 samples)" in text
    assert "labels               present" in text and "split train" in text
    assert tokens[1][2] in text
    picture = cv2.imread(str(out))
    assert picture.shape == (2 * 270, 3 * 480 + 2 * 270, 3)  # 2x3 cameras of 480x270 and a square BEV panel


def test_inspect_reports_bad_input(synthetic_dataset, tmp_path, capsys):
    root, version, _ = synthetic_dataset
    assert main(["data", "inspect", "--dataroot", str(tmp_path / "none"), "--version", version]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "inspect",
                "--dataroot",
                str(root),
                "--version",
                version,
                "--sample",
                "nope",
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
        == 2
    )
    assert "nope" in capsys.readouterr().err


def test_image_size_argument():
    assert parse_image_wh("256x144") == (256, 144)
    for bad in ("256", "0x10", "axb"):
        with pytest.raises(argparse.ArgumentTypeError, match="WIDTHxHEIGHT"):
            parse_image_wh(bad)


def test_make_embedded_then_inspect(tmp_path, capsys):
    pytest.importorskip("drive_vla.sim.dataset", reason="the embedded world's dataset writer is not built yet")
    out = tmp_path / "embedded"
    args = ["data", "make-embedded", "--out", str(out), "--scenes", "1", "--seed", "3", "--keyframes", "7"]
    assert main([*args, "--image-size", "64x36", "--version", "v1.0-tiny"]) == 0
    assert "1 scenes, 7 samples (v1.0-tiny" in capsys.readouterr().out
    assert main([*args, "--version", "v1.0-tiny"]) == 2  # never clobbers silently
    assert "already holds dataset version" in capsys.readouterr().err
    assert (
        main(["data", "inspect", "--dataroot", str(out), "--version", "v1.0-tiny", "--out", str(tmp_path / "s.png")])
        == 0
    )
    text = capsys.readouterr().out
    assert "samples              7" in text and "can_bus              present (7 samples)" in text
    assert cv2.imread(str(tmp_path / "s.png")).shape[0] == 2 * 270


def test_make_embedded_obstacle_scenes_flag(tmp_path, capsys):
    pytest.importorskip("drive_vla.sim.dataset", reason="the embedded world's dataset writer is not built yet")
    args = ["data", "make-embedded", "--scenes", "2", "--seed", "3", "--keyframes", "2", "--image-size", "32x18"]
    assert main([*args, "--out", str(tmp_path / "a"), "--obstacle-scenes", "1"]) == 0
    assert "3 scenes, 1 of them with a standing car ahead, 6 samples" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "b"), "--obstacle-scenes", "2"]) == 2
    assert "dataset.obstacle_scene_fraction: got 2.0, expected a fraction in [0, 1]" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "c"), "--obstacle-scenes", "1", "--val-fraction", "0"]) == 0
    out = capsys.readouterr().out
    assert "4 scenes, 2 of them with a standing car ahead, 8 samples" in out and "splits: train 4, val 0" in out


def test_make_embedded_obstacle_gap_flag(tmp_path, capsys):
    pytest.importorskip("drive_vla.sim.dataset", reason="the embedded world's dataset writer is not built yet")
    args = ["data", "make-embedded", "--scenes", "2", "--seed", "3", "--keyframes", "2", "--image-size", "32x18"]
    args += ["--obstacle-scenes", "1"]
    assert main([*args, "--out", str(tmp_path / "a"), "--obstacle-gap", "4", "20"]) == 0
    assert "1 of them with a standing car ahead" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "b"), "--obstacle-gap", "20", "4"]) == 2
    err = capsys.readouterr().err
    assert "dataset.obstacle_gap_m: got (20.0, 4.0), expected [low, high] metres with 0 < low <= high" in err


@pytest.fixture
def recording_config(monkeypatch) -> dict:
    """make_embedded replaced by a fake that keeps the DatasetConfig it was given (under "config")."""
    import drive_vla.sim.dataset as dataset

    seen: dict = {}

    def fake_make(out, scenes, seed, **kw):
        seen["config"] = kw["config"]
        return {"scenes": scenes, "samples": 0, "splits": {}}

    monkeypatch.setattr(dataset, "make_embedded", fake_make)
    return seen


def test_make_embedded_obstacle_yaw_flag(tmp_path, capsys, recording_config):
    seen = recording_config
    args = ["data", "make-embedded", "--out", str(tmp_path / "a"), "--scenes", "2", "--obstacle-scenes", "1"]
    assert main([*args, "--obstacle-yaw", "90"]) == 0
    assert seen["config"].obstacle_yaw_deg == 90.0 and seen["config"].obstacle_scene_fraction == 1.0
    assert main([*args, "--obstacle-yaw", "200"]) == 2
    assert "dataset.obstacle_yaw_deg: got 200.0, expected degrees in [0, 180]" in capsys.readouterr().err
    assert seen["config"].obstacle_stopping_floor  # the default keeps the expert's stopping gap
    assert main([*args, "--obstacle-gap", "1", "35", "--obstacle-no-floor"]) == 0
    assert not seen["config"].obstacle_stopping_floor and seen["config"].obstacle_gap_m == (1.0, 35.0)


def test_make_embedded_set_reaches_the_recording_config(tmp_path, capsys, recording_config):
    seen = recording_config
    args = ["data", "make-embedded", "--out", str(tmp_path / "a"), "--scenes", "2", "--keyframes", "3"]
    assert main([*args, "--set", "world.expert.max_cruise_mps=20", "--set", "keyframes_per_scene=9"]) == 0
    cfg = seen["config"]
    assert cfg.world.expert.max_cruise_mps == 20.0 and cfg.keyframes_per_scene == 3  # the flag wins
    assert cfg.world.expert.perception_range_m == 50.0  # the rest of the teacher's world is kept
    assert main([*args, "--set", "world.expert.max_cruse_mps=20"]) == 2
    assert "max_cruse_mps" in capsys.readouterr().err
    assert main([*args, "--set", "world.expert.max_cruise_mps=-1"]) == 2
    assert "expert.max_cruise_mps: got -1" in capsys.readouterr().err

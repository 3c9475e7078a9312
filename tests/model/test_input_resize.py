"""Camera images reach the model resized once, as uint8 with an area filter, before normalisation."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest
import torch

import drive_vla.data.images as images_mod
from drive_vla.data.images import resize_area
from drive_vla.model import bench
from drive_vla.policy import DrivingPolicy
from drive_vla.types import CAMERA_NAMES, Batch


def _observation(hw: tuple[int, int]):
    return bench.synthetic_observation(np.random.default_rng(0), hw)


def test_predict_resizes_each_camera_once(tiny_config, monkeypatch):
    policy = DrivingPolicy.build(tiny_config("output_mode=head"), fit_texts=[])
    obs = _observation((360, 640))  # 10x the test model's 36x64
    calls = []

    def counting(rgb, dst_wh):
        calls.append((rgb.shape, tuple(dst_wh)))
        return resize_area(rgb, dst_wh)

    monkeypatch.setattr(images_mod, "resize_area", counting)
    seen = []
    vision = policy.model.vision
    real_preprocess = vision.preprocess
    monkeypatch.setattr(
        vision, "preprocess", lambda images: seen.append(tuple(images.shape)) or real_preprocess(images)
    )
    plan = policy.predict(obs)
    assert plan.trajectory.xy.shape == (6, 2)
    assert calls == [((360, 640, 3), (64, 36))] * len(CAMERA_NAMES)  # once per camera, in Batch.from_observations
    assert seen == [(1, len(CAMERA_NAMES), 3, 36, 64)]  # the model gets the model's size: no second resize


def test_batch_images_are_area_resized(tiny_config):
    obs = _observation((360, 640))
    batch = Batch.from_observations([obs], image_hw=(36, 64))
    assert batch.images.shape == (1, len(CAMERA_NAMES), 3, 36, 64) and batch.images.dtype == torch.uint8
    for c, cam in enumerate(CAMERA_NAMES):
        ref = cv2.resize(obs.images[cam], (64, 36), interpolation=cv2.INTER_AREA).astype(np.int16)
        got = batch.images[0, c].permute(1, 2, 0).numpy().astype(np.int16)
        assert np.abs(got - ref).mean() < 1.0  # noise images: the hardest case for the 2x2 pre-reduction
    same = Batch.from_observations([obs])
    assert same.images.shape[-2:] == (360, 640)


def test_preprocess_resizes_other_sizes_with_the_same_filter(tiny_config):
    policy = DrivingPolicy.build(tiny_config(), fit_texts=[])
    vision = policy.model.vision
    obs = _observation((360, 640))
    big = Batch.from_observations([obs]).images
    small = Batch.from_observations([obs], image_hw=(36, 64)).images
    torch.testing.assert_close(vision.preprocess(big), vision.preprocess(small))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser


def test_input_size_parsing():
    assert _parser().parse_args(["--input-size", "1600x900"]).input_size == (1600, 900)
    assert _parser().parse_args(["--input-size", " 128X72 "]).input_size == (128, 72)
    assert _parser().parse_args([]).input_size is None


@pytest.mark.parametrize("bad", ["1600", "16x", "x9", "0x900", "-5x9", "axb", "1600x900x3", "16.5x9"])
def test_input_size_errors_name_the_flag(bad, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args([f"--input-size={bad}"])
    err = capsys.readouterr().err
    assert "--input-size" in err and repr(bad) in err and "WIDTHxHEIGHT" in err


def test_bench_times_both_sizes(tiny_yaml_and_overrides):
    yaml_path, overrides = tiny_yaml_and_overrides
    args = _parser().parse_args(
        ["--config", str(yaml_path), "--modes", "head", "--repeats", "2", "--warmup", "0", "--input-size", "160x90"]
        + [a for o in overrides for a in ("--override", o)]
    )
    rows = bench.run(args)
    assert [(r["mode"], r["input_size"]) for r in rows] == [("head", "64x36"), ("head", "160x90")]
    assert rows[0]["p50_vs_model_size"] == 1.0
    assert rows[1]["p50_vs_model_size"] == pytest.approx(rows[1]["p50_ms"] / rows[0]["p50_ms"])

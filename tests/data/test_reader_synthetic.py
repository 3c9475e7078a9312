"""NuScenesReader on a synthetic dataset (no real data): CAN bus, labels, QA join, splits, resizing."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from nuscenes_factory import synthetic_scene, write_synthetic_dataset

from drive_vla import geometry as g
from drive_vla.data.can_bus import scene_name
from drive_vla.data.nuscenes_writer import NuScenesWriter
from drive_vla.data.reader import NuScenesReader
from drive_vla.data.splits import SplitError
from drive_vla.types import Batch, Command


def test_ego_state_from_can_bus(synthetic_dataset):
    root, version, _ = synthetic_dataset
    reader = NuScenesReader(root, version)
    assert len(reader) == 16 and reader.has_can and reader.has_labels
    for i in (0, 3, 7):
        ego = reader[i].observation.ego
        assert ego.source == "can"
        assert ego.speed_mps == pytest.approx(5.0 + 0.5 * i)
        np.testing.assert_allclose(ego.accel_mps2, [1.0, 0.0])
        assert ego.steer == pytest.approx(0.1 * ((i % 3) - 1))
    control = reader[3].targets.control  # from vehicle_monitor: -78 deg steering, throttle 300, brake 0 bar
    assert (control.steer, control.throttle, control.brake) == pytest.approx((-0.1, 0.3, 0.0))
    assert reader[4].targets.control.brake == pytest.approx(round(0.25 * 126) / 126)


def test_without_can_bus_ego_comes_from_poses(tmp_path):
    write_synthetic_dataset(tmp_path, scenes=1, n_keyframes=5, with_can=False, with_labels=False)
    reader = NuScenesReader(tmp_path, "v1.0-synthetic")
    assert not reader.has_can and not reader.has_labels
    ego = reader[3].observation.ego
    assert ego.source == "poses"
    assert ego.speed_mps == pytest.approx((6.0 + 6.5) / 2, abs=1e-6)  # mean speed over the last 0.5 s
    np.testing.assert_allclose(ego.accel_mps2, [1.0, 0.0], atol=1e-6)
    assert reader[3].targets.control is None
    # one future step left (6.75 m/s) vs 6.25 m/s now: within the 1 m/s margin of the meta-action rule
    assert reader[3].targets.meta_action == "keep speed, straight"


def test_labels_file_fields_reach_the_sample(synthetic_dataset):
    root, version, tokens = synthetic_dataset
    reader = NuScenesReader(root, version)
    labelled = reader.get(tokens[0][0])
    assert labelled.observation.instruction == "follow the lead car"
    assert labelled.targets.meta_action == "accelerate, straight"
    assert labelled.targets.explanation == "the road ahead is clear"
    assert labelled.targets.control.throttle == 0.5  # the label wins over the CAN bus
    assert labelled.targets.qa == (("What should the ego do?", "Keep accelerating."),)
    other = reader.get(tokens[0][1])
    assert other.observation.instruction == "keep following the road" and other.targets.explanation is None
    assert other.targets.meta_action.endswith("straight")
    assert other.observation.command == Command.STRAIGHT


def test_texts_match_the_samples_without_reading_images(synthetic_dataset, monkeypatch):
    from drive_vla.data.datamodule import SampleDataset

    root, version, tokens = synthetic_dataset
    reader = NuScenesReader(root, version)
    first = reader.position(tokens[0][0])
    expected = [
        "follow the lead car",
        "the road ahead is clear",
        "What should the ego do?",
        "Keep accelerating.",
        "keep following the road",
    ]
    from_samples = SampleDataset([reader[first], reader[first + 1]]).texts()  # a plain list: from the Samples
    monkeypatch.setattr(reader, "images", lambda i: pytest.fail("texts() read an image"))
    assert reader.texts(first) + reader.texts(first + 1) == expected
    assert SampleDataset(reader).texts([first, first + 1]) == expected
    assert from_samples == expected


def test_qa_file_is_joined_by_sample_token(synthetic_dataset, tmp_path):
    root, version, tokens = synthetic_dataset
    scene_of = {s["token"]: s["scene_token"] for s in json.loads((root / version / "sample.json").read_text())}
    qa = {
        scene_of[tokens[1][2]]: {
            "scene_description": "x",
            "key_frames": {
                tokens[1][2]: {
                    "QA": {
                        "perception": [{"Q": "What is ahead?", "A": "A car.", "C": None}],
                        "behavior": [{"Q": "Why?", "A": "Clear road."}],
                    }
                }
            },
        }
    }
    qa_file = tmp_path / "drivelm.json"
    qa_file.write_text(json.dumps(qa))
    reader = NuScenesReader(root, version, qa_file=qa_file)
    assert reader.get(tokens[1][2]).targets.qa == (("What is ahead?", "A car."), ("Why?", "Clear road."))
    assert reader.get(tokens[1][3]).targets.qa == ()
    assert reader.get(tokens[1][2]).targets.explanation == "Clear road."  # the behavior answer
    with pytest.raises(ValueError, match="missing.json"):
        NuScenesReader(root, version, qa_file=tmp_path / "missing.json")


def test_splits_from_splits_json_and_unknown_split(synthetic_dataset):
    root, version, tokens = synthetic_dataset
    train = NuScenesReader(root, version, split="train")
    val = NuScenesReader(root, version, split="val")
    assert train.scenes == [scene_name(0)] and val.scenes == [scene_name(1)]
    assert train.tokens == tokens[0] and val.tokens == tokens[1]
    with pytest.raises(SplitError, match=r"'test'.*\['train', 'val'\]"):
        NuScenesReader(root, version, split="test")


def test_resized_images_scale_intrinsics_and_batch(synthetic_dataset):
    root, version, _ = synthetic_dataset
    reader = NuScenesReader(root, version, image_hw=(18, 32))
    obs = reader[1].observation
    assert obs.image_hw == (18, 32)
    full = NuScenesReader(root, version)[1].observation
    np.testing.assert_allclose(
        obs.intrinsics["CAM_FRONT"],
        g.scale_intrinsics(full.intrinsics["CAM_FRONT"], 32, 18, src_wh=(64, 36)),
        rtol=1e-6,
    )
    # the lead car (box centre 17 m ahead) projects to the same relative image position at both sizes
    box = reader.boxes(1).xyz[:1]
    uv_small, _, _ = g.project_points(box, obs.extrinsics["CAM_FRONT"], obs.intrinsics["CAM_FRONT"])
    uv_full, _, _ = g.project_points(box, full.extrinsics["CAM_FRONT"], full.intrinsics["CAM_FRONT"])
    np.testing.assert_allclose((uv_small + 0.5) * 2, uv_full + 0.5, atol=1e-4)
    batch = Batch.from_samples([reader[0], reader[1]])
    assert tuple(batch.images.shape) == (2, 6, 3, 18, 32)
    with pytest.raises(ValueError, match="image_hw"):
        NuScenesReader(root, version, image_hw=(0, 32))


def test_official_versions_use_the_devkit_splits(tmp_path):
    """A dataset named v1.0-mini takes its splits from nuscenes-devkit (scene-0061 is mini_train, 0103 mini_val)."""
    rng = np.random.default_rng(0)
    scenes = [
        dataclasses.replace(synthetic_scene(i, 2, (32, 18), False, rng), name=n)
        for i, n in enumerate(("scene-0061", "scene-0103"))
    ]
    with NuScenesWriter(tmp_path, "v1.0-mini") as writer:
        for scene in scenes:
            writer.add_scene(scene)
        writer.finish({"everything": [s.name for s in scenes]})
    assert NuScenesReader(tmp_path, "v1.0-mini", split="mini_train").scenes == ["scene-0061"]
    assert NuScenesReader(tmp_path, "v1.0-mini", split="val").scenes == ["scene-0103"]
    with pytest.raises(SplitError, match=r"'everything'.*mini_train.*nuscenes-devkit"):
        NuScenesReader(tmp_path, "v1.0-mini", split="everything")
    with pytest.raises(SplitError, match="none of its 150 scenes"):
        NuScenesReader(tmp_path, "v1.0-mini", split="test")


def test_without_cameras_no_image_is_read_and_the_rest_is_unchanged(synthetic_dataset, monkeypatch):
    """cameras=False (models that read no camera): black images of image_hw, everything else as with them."""
    root, version, _ = synthetic_dataset
    with_cams = NuScenesReader(root, version, image_hw=(18, 32))[1]
    import drive_vla.data.reader as reader_module

    def no_file(*a, **k):
        raise AssertionError("a camera file was read")

    monkeypatch.setattr(reader_module, "load_camera_image", no_file)
    for hw, want in (((18, 32), (18, 32)), (None, (36, 64))):
        sample = NuScenesReader(root, version, image_hw=hw, cameras=False)[1]
        assert all(img.shape == (*want, 3) and not img.any() for img in sample.observation.images.values())
    blind = NuScenesReader(root, version, image_hw=(18, 32), cameras=False)[1]
    np.testing.assert_array_equal(blind.targets.trajectory.poses, with_cams.targets.trajectory.poses)
    np.testing.assert_array_equal(blind.observation.ego.as_vector(), with_cams.observation.ego.as_vector())
    for cam in with_cams.observation.intrinsics:
        np.testing.assert_array_equal(blind.observation.intrinsics[cam], with_cams.observation.intrinsics[cam])

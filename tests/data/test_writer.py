"""NuScenesWriter: the output loads in nuscenes-devkit unchanged, links are consistent, bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from nuscenes.can_bus.can_bus_api import NuScenesCanBus
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes_factory import synthetic_scene, write_synthetic_dataset

from drive_vla.data.can_bus import scene_name
from drive_vla.data.nuscenes_writer import AnnotationRecord, NuScenesWriter
from drive_vla.types import CAMERA_NAMES


@pytest.fixture(scope="module")
def nusc(synthetic_dataset):
    root, version, _ = synthetic_dataset
    return NuScenes(version, str(root), verbose=False)


def test_devkit_loads_all_tables_with_consistent_links(nusc, synthetic_dataset):
    _, _, tokens = synthetic_dataset
    assert len(nusc.scene) == 2 and len(nusc.sample) == 16
    assert len(nusc.sample_data) == 16 * 7 and len(nusc.ego_pose) == 16 * 7
    for scene, scene_tokens in zip(nusc.scene, tokens):
        assert scene["nbr_samples"] == 8
        assert scene["first_sample_token"] == scene_tokens[0] and scene["last_sample_token"] == scene_tokens[-1]
        chain, token = [], scene["first_sample_token"]
        while token:
            chain.append(token)
            token = nusc.get("sample", token)["next"]
        assert chain == scene_tokens
        first = nusc.get("sample", scene_tokens[0])
        assert set(first["data"]) == {*CAMERA_NAMES, "LIDAR_TOP"}
        # sample_data per channel chains through the scene's keyframes at 2 Hz
        sd = nusc.get("sample_data", first["data"]["CAM_FRONT"])
        times = [sd["timestamp"]]
        while sd["next"]:
            sd = nusc.get("sample_data", sd["next"])
            times.append(sd["timestamp"])
        assert np.allclose(np.diff(times), 500_000)
    for inst in nusc.instance:
        chain, token = [], inst["first_annotation_token"]
        while token:
            chain.append(token)
            token = nusc.get("sample_annotation", token)["next"]
        assert len(chain) == inst["nbr_annotations"] == 8 and chain[-1] == inst["last_annotation_token"]


def test_devkit_functions_read_boxes_images_and_lidar(nusc, synthetic_dataset):
    root, _, tokens = synthetic_dataset
    sample = nusc.get("sample", tokens[0][1])
    path, boxes, k = nusc.get_sample_data(sample["data"]["CAM_FRONT"])
    assert path.endswith(".jpg") and (root / nusc.get("sample_data", sample["data"]["CAM_FRONT"])["filename"]).is_file()
    assert k.shape == (3, 3) and k[0, 0] > 0
    assert any(b.name == "vehicle.car" for b in boxes)  # the lead car 17 m ahead is in the front camera
    pc = LidarPointCloud.from_file(nusc.get_sample_data_path(sample["data"]["LIDAR_TOP"]))
    assert pc.points.shape[0] == 4 and pc.points.shape[1] > 0
    lead = next(a for a in sample["anns"] if nusc.get("sample_annotation", a)["category_name"] == "vehicle.car")
    ann = nusc.get("sample_annotation", lead)
    assert ann["num_lidar_pts"] > 0 and ann["visibility_token"] == "4"
    # global velocity from the track: ego moved 2.625 + 2.875 m and the car 4 m more over 1 s
    np.testing.assert_allclose(nusc.box_velocity(lead)[:2], [9.5, 0.0], atol=1e-6)
    assert nusc.get("attribute", ann["attribute_tokens"][0])["name"] == "vehicle.moving"
    log = nusc.get("log", nusc.scene[0]["log_token"])
    assert nusc.get("map", log["map_token"])["mask"].mask().shape == (64, 64)


def test_can_bus_messages_have_real_fields_and_units(synthetic_dataset):
    root, _, _ = synthetic_dataset
    can = NuScenesCanBus(dataroot=str(root))
    poses = can.get_messages(scene_name(0), "pose")
    monitor = can.get_messages(scene_name(0), "vehicle_monitor")
    assert len(poses) == len(monitor) == 8
    assert set(poses[0]) == {"utime", "pos", "orientation", "vel", "accel", "rotation_rate"}
    assert poses[2]["vel"][0] == pytest.approx(6.0) and monitor[2]["vehicle_speed"] == pytest.approx(6.0 * 3.6)
    assert monitor[0]["steering"] == pytest.approx(-78.0)  # steer -0.1 -> -78 deg of the 780 deg full scale
    assert monitor[0]["throttle"] == 300 and monitor[0]["brake"] == round(0.25 * 126) and monitor[1]["brake"] == 0


def test_labels_file_has_drivelm_structure(synthetic_dataset):
    root, version, tokens = synthetic_dataset
    labels = json.loads((root / version / "drive_vla_labels.json").read_text())
    nusc_scene = json.loads((root / version / "scene.json").read_text())[0]
    frame = labels[nusc_scene["token"]]["key_frames"][tokens[0][0]]
    assert frame["QA"]["planning"][0] == {"Q": "What should the ego do?", "A": "Keep accelerating."}
    assert frame["command"] == "STRAIGHT" and frame["control"]["throttle"] == 0.5
    assert json.loads((root / version / "splits.json").read_text()) == {
        "train": [scene_name(0)],
        "val": [scene_name(1)],
    }


def test_refuses_to_clobber_an_existing_dataset(synthetic_dataset, tmp_path):
    root, version, _ = synthetic_dataset
    with pytest.raises(ValueError, match="different|already holds"):
        NuScenesWriter(root, "v1.0-other")
    with pytest.raises(ValueError, match="already holds dataset version"):
        NuScenesWriter(root, version)
    out = tmp_path / "ds"
    write_synthetic_dataset(out, scenes=1, n_keyframes=2, version="v1.0-a")
    writer = NuScenesWriter(out, "v1.0-a", overwrite=True)
    writer.add_scene(synthetic_scene(0, 3, (32, 18), False, np.random.default_rng(0)))
    writer.finish({"train": [scene_name(0)]})
    assert len(json.loads((out / "v1.0-a" / "sample.json").read_text())) == 3
    assert not (out / "can_bus").exists()  # the replaced dataset's CAN files went with it
    assert not any(p.name.startswith(".") for p in out.iterdir())


def test_interrupted_writer_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), NuScenesWriter(tmp_path, "v1.0-x") as writer:
        writer.add_scene(synthetic_scene(0, 2, (32, 18), True, np.random.default_rng(0)))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_bad_records_are_refused_with_the_field_named(tmp_path):
    rng = np.random.default_rng(0)
    writer = NuScenesWriter(tmp_path, "v1.0-x")
    scene = synthetic_scene(0, 2, (32, 18), True, rng)
    with pytest.raises(ValueError, match="scene-NNNN"):
        writer.add_scene(type(scene)("my scene", "", scene.keyframes, scene.intrinsics, scene.extrinsics))
    with pytest.raises(ValueError, match="refuses"):
        writer.add_scene(type(scene)("scene-0161", "", scene.keyframes, scene.intrinsics, scene.extrinsics))
    bad = AnnotationRecord("x", "car", (0, 0, 0), (1, 1, 1), (1, 0, 0, 0))
    kf = scene.keyframes[0]
    with pytest.raises(ValueError, match=r"annotations\[0\]\.category"):
        writer.add_scene(
            type(scene)(
                scene_name(0),
                "",
                [type(kf)(kf.timestamp_us, kf.ego_translation, kf.ego_rotation, kf.images, [bad])],
                scene.intrinsics,
                scene.extrinsics,
            )
        )
    with pytest.raises(ValueError, match="2 Hz"):
        writer.add_scene(type(scene)(scene_name(0), "", [kf, kf], scene.intrinsics, scene.extrinsics))
    tokens = writer.add_scene(scene)
    with pytest.raises(ValueError, match="command"):
        writer.set_labels(tokens[0], {"command": "UTURN"})
    with pytest.raises(ValueError, match="unknown scenes"):
        writer.finish({"train": ["scene-9999"]})
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_refused_scene_leaves_no_rows_behind(tmp_path):
    rng = np.random.default_rng(0)
    good = synthetic_scene(0, 3, (32, 18), True, rng)
    small = synthetic_scene(1, 3, (16, 8), True, rng)
    mixed = [
        good.keyframes[0],
        type(good.keyframes[1])(**{**good.keyframes[1].__dict__, "images": small.keyframes[1].images}),
    ]
    with NuScenesWriter(tmp_path, "v1.0-x") as writer:
        with pytest.raises(ValueError, match=r"keyframes\[1\]\.images\[CAM_FRONT\].*16x8.*32x18"):
            writer.add_scene(type(good)(good.name, "", mixed, good.intrinsics, good.extrinsics))
        writer.add_scene(good)
        writer.finish({"train": [good.name]})
    nusc = NuScenes("v1.0-x", str(tmp_path), verbose=False)
    assert len(nusc.scene) == 1 and len(nusc.sample) == 3 and len(nusc.sample_data) == 21


def test_labels_with_a_bad_route_target_are_refused_naming_the_field():
    from drive_vla.data.drivelm import check_label, route_target

    assert route_target({}) is None
    np.testing.assert_allclose(route_target({"route_target": [[10, 0], [20, 1]]}), [[10, 0], [20, 1]])
    for bad, why in (
        ([[10, 0]], "shape"),
        ([[float("nan"), 0], [1, 1]], "NaN"),
        ("ahead", "points"),
        ([[1e5, 0], [1, 1]], "within"),
    ):
        with pytest.raises(ValueError, match=rf"labels\[t\]\.route_target: .*{why}"):
            check_label({"route_target": bad}, "labels[t]")

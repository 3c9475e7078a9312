"""Core types: construction, validation errors that name the field, batching."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.types import (
    CAMERA_NAMES,
    Batch,
    Boxes,
    Command,
    Control,
    EgoState,
    Observation,
    Plan,
    Sample,
    SampleMeta,
    Targets,
    Trajectory,
)


def make_obs(h: int = 9, w: int = 16, **kw) -> Observation:
    images = {c: np.zeros((h, w, 3), dtype=np.uint8) for c in CAMERA_NAMES}
    intr = {c: np.eye(3, dtype=np.float32) for c in CAMERA_NAMES}
    extr = {c: np.eye(4, dtype=np.float32) for c in CAMERA_NAMES}
    args = dict(images=images, intrinsics=intr, extrinsics=extr, ego=EgoState(speed_mps=5.0))
    args.update(kw)
    return Observation(**args)


def test_observation_valid_and_image_hw():
    obs = make_obs()
    assert obs.image_hw == (9, 16)
    assert obs.command is Command.STRAIGHT


def test_missing_camera_is_named():
    images = {c: np.zeros((9, 16, 3), dtype=np.uint8) for c in CAMERA_NAMES[:-1]}
    with pytest.raises(ValueError, match=r"observation.images.*CAM_BACK_RIGHT"):
        make_obs(images=images)


def test_unknown_camera_is_named():
    images = {c: np.zeros((9, 16, 3), dtype=np.uint8) for c in CAMERA_NAMES}
    images["CAM_TOP"] = images["CAM_FRONT"]
    with pytest.raises(ValueError, match="CAM_TOP"):
        make_obs(images=images)


def test_wrong_image_shape_and_dtype():
    images = {c: np.zeros((9, 16, 3), dtype=np.uint8) for c in CAMERA_NAMES}
    images["CAM_BACK"] = np.zeros((9, 17, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"images\[CAM_BACK\].*shape"):
        make_obs(images=images)
    images["CAM_BACK"] = np.zeros((9, 16, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="uint8"):
        make_obs(images=images)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(speed_mps=float("nan")), "ego.speed_mps"),
        (dict(speed_mps=1.0, steer=1.5), "ego.steer"),
        (dict(speed_mps=1.0, accel_mps2=np.zeros(3)), "ego.accel_mps2"),
        (dict(speed_mps=1.0, source="radar"), "ego.source"),
        (dict(speed_mps="fast"), "ego.speed_mps"),
    ],
)
def test_ego_state_errors(kwargs, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        EgoState(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(steer=-1.2), "control.steer"),
        (dict(throttle=1.01), "control.throttle"),
        (dict(brake=float("inf")), "control.brake"),
    ],
)
def test_control_out_of_range(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Control(**kwargs)


def test_trajectory_defaults_and_errors():
    t = Trajectory(np.arange(12, dtype=np.float32).reshape(6, 2))
    assert t.mask.all() and t.yaw_rad.shape == (6,) and t.poses.shape == (6, 3)
    with pytest.raises(ValueError, match=r"trajectory.xy.*shape"):
        Trajectory(np.zeros((6, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="trajectory.xy.*finite"):
        Trajectory(np.full((6, 2), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="trajectory.mask"):
        Trajectory(np.zeros((6, 2), dtype=np.float32), mask=np.ones(5, dtype=bool))


def test_boxes_errors():
    assert len(Boxes.empty()) == 0
    with pytest.raises(ValueError, match="boxes.lwh"):
        Boxes(np.zeros((2, 3)), np.zeros((3, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="boxes.category"):
        Boxes(np.zeros((2, 3)), np.ones((2, 3)), np.zeros(2), category=("car",))


def test_command_parse():
    assert Command.parse("left") is Command.LEFT
    assert Command.parse(0) is Command.RIGHT
    with pytest.raises(ValueError, match="command"):
        Command.parse("up")


def test_targets_future_boxes_length_checked():
    traj = Trajectory(np.zeros((6, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="targets.future_boxes"):
        Targets(traj, future_boxes=(Boxes.empty(),) * 5)


def test_plan_to_dict_is_json_ready():
    import json

    plan = Plan(Trajectory(np.ones((6, 2), dtype=np.float32)), controls=Control(0.1, 0.5, 0.0), text="ok")
    d = json.loads(json.dumps(plan.to_dict()))
    assert d["controls"]["throttle"] == 0.5 and len(d["trajectory"]["xy"]) == 6


def test_batch_from_samples_shapes():
    traj = Trajectory(np.ones((6, 2), dtype=np.float32), mask=np.array([1, 1, 1, 1, 0, 0], dtype=bool))
    samples = [
        Sample(make_obs(), Targets(traj, control=Control(0.0, 0.3, 0.0)), SampleMeta("a")),
        Sample(make_obs(command="left"), Targets(traj), SampleMeta("b")),
    ]
    batch = Batch.from_samples(samples)
    assert tuple(batch.images.shape) == (2, 6, 3, 9, 16)
    assert tuple(batch.ego.shape) == (2, 6) and tuple(batch.traj.shape) == (2, 6, 3)
    assert batch.command.tolist() == [int(Command.STRAIGHT), int(Command.LEFT)]
    assert batch.control_mask.tolist() == [True, False]
    assert batch.traj_mask[0].tolist() == [True] * 4 + [False] * 2
    with pytest.raises(ValueError, match="observations"):
        Batch.from_observations([])


def test_an_unknown_ego_state_carries_no_numbers():
    from drive_vla.types import EgoState

    ego = EgoState.unknown()
    assert not ego.known and ego.as_vector().tolist() == [0.0] * 6
    with pytest.raises(ValueError, match="source is 'unknown'"):
        EgoState(speed_mps=5.0, source="unknown")
    with pytest.raises(ValueError, match="ego.source"):
        EgoState(speed_mps=5.0, source="guess")

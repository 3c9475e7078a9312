"""Speed-change classes beside the path regression: labels, expectation, re-timing, loss and config errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drive_vla.model.config import PlannerHeadConfig
from drive_vla.model.planner_head import PlannerHead, retime
from drive_vla.model.target_speed import TargetSpeedHead, label_speed, two_hot
from drive_vla.types import FUTURE_STEPS, STEP_DT_S

CLASSES = [-8.0, -4.0, -2.0, 0.0, 1.0, 3.0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-8.0, 3.0), min_size=1, max_size=8))
def test_two_hot_expectation_is_the_value(values):
    classes = torch.tensor(CLASSES)
    w = two_hot(torch.tensor(values), classes)
    assert torch.allclose(w.sum(-1), torch.ones(len(values)))
    assert (w >= 0).all() and ((w > 0).sum(-1) <= 2).all()
    assert torch.allclose(w @ classes, torch.tensor(values), atol=1e-4)


def test_two_hot_clamps_out_of_range_speeds():
    w = two_hot(torch.tensor([-30.0, 40.0]), torch.tensor(CLASSES))
    assert w[0, 0] == 1.0 and w[1, -1] == 1.0


def test_label_is_the_speed_around_one_second_and_needs_both_waypoints():
    t = STEP_DT_S * torch.arange(1, FUTURE_STEPS + 1)
    poses = torch.zeros(2, FUTURE_STEPS, 3)
    poses[:, :, 0] = 6.0 * t  # 6 m/s straight
    mask = torch.ones(2, FUTURE_STEPS, dtype=torch.bool)
    mask[1, 2] = False
    speed, ok = label_speed(poses, mask)
    assert speed[0].item() == pytest.approx(6.0) and ok.tolist() == [True, False]


def test_expected_speed_and_brake_threshold():
    head = TargetSpeedHead(4, CLASSES)
    p = torch.tensor([[0.6, 0.0, 0.0, 0.0, 0.0, 0.4], [0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    logits, speed = torch.log(p + 1e-9), torch.tensor([10.0, 10.0, 1.0])
    # the current speed plus the expected change, never below 0
    assert head.target_speed(logits, speed).tolist() == pytest.approx([6.4, 8.0, 4.0], abs=1e-3)
    assert head.target_speed(logits, speed, brake_threshold=0.5).tolist() == pytest.approx([0.0, 8.0, 4.0], abs=1e-3)
    assert head.target_speed(logits[1:2], torch.tensor([1.0])).item() == pytest.approx(0.0)


def test_retime_follows_the_path_at_the_new_speeds():
    t = STEP_DT_S * torch.arange(1, FUTURE_STEPS + 1)
    straight = torch.zeros(1, FUTURE_STEPS, 3)
    straight[0, :, 0] = 10.0 * t
    same = retime(straight, torch.tensor([10.0]), torch.tensor([10.0]), ramp_s=1.0)
    assert torch.allclose(same, straight, atol=1e-5)
    stop = retime(straight, torch.tensor([10.0]), torch.tensor([0.0]), ramp_s=1.0)
    assert stop[0, -1, 0].item() == pytest.approx(5.0, abs=1e-4)  # 10 m/s braking to 0 over 1 s: 5 m
    assert (stop[0, 1:, 0] - stop[0, :-1, 0] >= -1e-6).all()
    # a path turning left: the re-timed waypoints stay on it and point along it
    arc = 5.0 * t
    turn = torch.stack([20.0 * torch.sin(arc / 20.0), 20.0 * (1 - torch.cos(arc / 20.0)), arc / 20.0], -1)[None]
    fast = retime(turn, torch.tensor([5.0]), torch.tensor([8.0]), ramp_s=1.0)
    radius = torch.hypot(fast[0, :4, 0], fast[0, :4, 1] - 20.0)  # inside the given polyline's range
    assert torch.allclose(radius, torch.full_like(radius, 20.0), atol=0.3)
    assert (fast[0, :, 2] > 0).all()


def test_head_retimes_only_outside_training_and_trains_the_classes():
    cfg = PlannerHeadConfig(hidden=16, residual_to_constant_velocity=True, target_speed_classes=CLASSES)
    head = PlannerHead(cfg, lm_hidden=8)
    hidden, speed = torch.randn(3, 8), torch.full((3,), 6.0)
    gt = torch.zeros(3, FUTURE_STEPS, 3)
    gt[:, :, 0] = 2.0 * STEP_DT_S * torch.arange(1, FUTURE_STEPS + 1)  # the expert slows to 2 m/s
    mask = torch.ones(3, FUTURE_STEPS, dtype=torch.bool)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        out = head(hidden, gt, mask, speed_mps=speed)
        loss = head.speed.loss(out.speed_logits, gt, mask, speed) + (out.poses - gt).abs().mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    assert head.speed.loss(out.speed_logits, gt, mask, speed).item() < 0.5
    head.eval()
    with torch.no_grad():
        out = head(hidden, speed_mps=speed)
    target = head.speed.target_speed(out.speed_logits, speed)
    assert torch.allclose(target, torch.full((3,), 2.0), atol=0.3)
    # after the 1 s ramp from 6 m/s the waypoints are 2 m/s apart in time
    step_speed = (out.poses[:, -1, :2] - out.poses[:, -2, :2]).norm(dim=-1) / STEP_DT_S
    assert torch.allclose(step_speed, target, atol=0.05)
    assert math.isfinite(float(out.poses.sum()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_speed_classes": [1.0, 2.0]}, "planner_head.target_speed_classes: got"),
        ({"target_speed_classes": [-1.0, 4.0, 2.0]}, "strictly ascending"),
        ({"target_speed_classes": [0.0]}, "at least two"),
        ({"brake_threshold": 1.5}, "planner_head.brake_threshold: got 1.5"),
        ({"speed_ramp_s": 0.0}, "planner_head.speed_ramp_s: got 0.0"),
    ],
)
def test_bad_target_speed_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PlannerHeadConfig(**kwargs)


def test_policy_in_head_mode_drives_the_retimed_plan(tiny_config, observation):
    from drive_vla.policy import DrivingPolicy

    cfg = tiny_config("output_mode=head", "planner_head.target_speed_classes=[-4,-2,0,2]")
    policy = DrivingPolicy.build(cfg)
    plan = policy.predict(observation)
    xy = plan.trajectory.xy
    assert xy.shape == (FUTURE_STEPS, 2) and torch.isfinite(torch.as_tensor(xy)).all()
    # an untrained classifier's expected change lies within the classes: the first 0.5 s covers at most
    # (v + 2 m/s ramped over 1 s) x 0.5 s and at least (v - 4 m/s ramped) x 0.5 s
    v = max(observation.ego.speed_mps, 0.0)
    step = float(torch.as_tensor(xy[0]).norm())
    assert max(0.0, v - 1.0) * 0.5 - 1e-3 <= step <= (v + 0.5) * 0.5 + 1e-3

"""The free-distance head: its label along the route, its loss, and the speed cap it puts on the head's plan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from drive_vla.model.free_space import FreeSpaceConfig, free_distance, route_polyline
from drive_vla.policy import DrivingPolicy
from drive_vla.types import Batch, Boxes

STRAIGHT = np.array([[10.0, 0.0], [20.0, 0.0]])


def _cars(*rows: tuple[float, float]) -> Boxes:
    a = np.array(rows, np.float32).reshape(-1, 2)
    xyz = np.concatenate([a, np.full((len(a), 1), 0.8, np.float32)], axis=1)
    return Boxes(
        xyz=xyz, lwh=np.tile(np.array([[4.5, 1.8, 1.6]], np.float32), (len(a), 1)), yaw_rad=np.zeros(len(a), np.float32)
    )


def test_the_polyline_runs_through_the_route_points_and_on():
    xy, s = route_polyline(np.array([[0.0, 10.0], [10.0, 10.0]]), 30.0)
    assert s[-1] == pytest.approx(30.0)
    at = {float(k): v for k, v in zip(s, xy)}
    np.testing.assert_allclose(at[10.0], [0.0, 10.0])
    np.testing.assert_allclose(at[20.0], [10.0, 10.0])
    np.testing.assert_allclose(at[30.0], [20.0, 10.0])  # extended along the last segment


def test_the_label_is_the_distance_to_the_first_box_in_the_corridor():
    # a car centred 20 m ahead: its rear at 17.75 m, the widened box from 16.45 m
    assert free_distance(_cars((20.0, 0.0)), STRAIGHT, 1.3, 50.0) == pytest.approx(16.5)
    assert free_distance(_cars((20.0, 3.5)), STRAIGHT, 1.3, 50.0) == 50.0  # the next lane: clear
    assert free_distance(_cars((30.0, 0.0), (12.0, 0.5)), STRAIGHT, 1.3, 50.0) == pytest.approx(8.5)
    assert free_distance(None, STRAIGHT, 1.3, 50.0) == 50.0
    # on a left bend the car on the bend is in the corridor, a car straight on is not
    bend = np.array([[10.0, 0.0], [17.0, 7.0]])
    assert free_distance(_cars((24.0, 14.0)), bend, 1.3, 50.0) < 50.0
    assert free_distance(_cars((30.0, 0.0)), bend, 1.3, 50.0) == 50.0


def _with_boxes_and_route(samples, boxes):
    out = []
    for s in samples:
        obs = dataclasses.replace(s.observation, route_target=STRAIGHT.astype(np.float32))
        out.append(dataclasses.replace(s, observation=obs, targets=dataclasses.replace(s.targets, boxes=boxes)))
    return out


@pytest.mark.parametrize("source", ["hidden", "camera", "own"])
def test_the_head_learns_the_label_and_caps_the_plan(tiny_config, samples, fit_one_loss, source):
    torch.manual_seed(0)
    cfg = tiny_config("output_mode=head", "route_target=true", "free_space.enabled=true", f"free_space.source={source}")
    model = DrivingPolicy.build(cfg).model.train()
    assert "free_l1" not in model.losses(Batch.from_samples(samples))  # no boxes, no route: no term
    batch = Batch.from_samples(_with_boxes_and_route(samples, _cars((10.0, 0.0))))
    first, last = fit_one_loss(model, batch, "free_l1", 60)
    assert last < 0.3 * first
    model.eval()
    free = model.plan(batch)
    assert model.last_speed_cap == []  # cap_speed off: the plan is the head's
    model.cfg = dataclasses.replace(model.cfg, free_space=dataclasses.replace(model.cfg.free_space, cap_speed=True))
    capped = model.plan(batch)
    # the head learnt about 6.5 m of free road: below the 7 m standstill distance the cap is 0
    assert all(c == pytest.approx(0.0, abs=0.5) for c in model.last_speed_cap)

    def arc(xy, k):  # path length from the ego to waypoint k
        pts = np.concatenate([np.zeros((1, 2)), xy[: k + 1]])
        return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())

    slowed = 0
    for a, b, cap in zip(free, capped, model.last_speed_cap):
        if np.linalg.norm(a.trajectory.xy[1]) > cap + 0.5:  # faster than the cap allows: at the cap after 1 s
            slowed += 1
            assert arc(b.trajectory.xy, 1) <= arc(a.trajectory.xy, 1) + 1e-4
            assert np.linalg.norm(b.trajectory.xy[-1] - b.trajectory.xy[1]) <= 2.0 * cap + 1e-3
        else:
            np.testing.assert_array_equal(a.trajectory.xy, b.trajectory.xy)
    assert slowed


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("corridor_m", 0.0),
        ("max_m", -1.0),
        ("standstill_m", 60.0),
        ("source", "lidar"),
        ("junction_approach_mps", -1.0),
        ("junction_approach_m", 0.0),
        ("junction_approach_decel_mps2", 0.0),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"free_space.{field}"):
        FreeSpaceConfig(**{field: value})


def test_the_cap_never_takes_a_waypoint_past_the_plans_own_stop():
    """A plan braking to a stop at 10 m by 2 s, capped at 5 m/s: the re-timed path may not run on past 10 m."""
    from types import SimpleNamespace

    from drive_vla.model.generate import cap_to_free_space, path_length

    t = np.arange(1, 7) * 0.5
    along = np.minimum(10.0 * t - 2.5 * t**2, 10.0)  # 10 m/s, braking at 5 m/s^2: stands at 10 m from 2 s
    poses = torch.tensor(np.stack([along, np.zeros(6), np.zeros(6)], axis=1)[None], dtype=torch.float32)
    free_head = SimpleNamespace(speed_cap=lambda h: torch.tensor([5.0]))
    model = SimpleNamespace(free_head=free_head)
    capped = cap_to_free_space(model, None, poses, torch.tensor([10.0]), torch.tensor([True]))
    assert model.last_speed_cap == [5.0]
    assert torch.all(path_length(capped) <= path_length(poses) + 1e-5)
    assert float(capped[0, 0, 0]) < float(poses[0, 0, 0])  # the first steps are slowed to the cap


def test_the_junction_approach_caps_the_speed_before_the_yield_line():
    """sqrt(5^2 + 2 x 3 x d) within 25 m of the line; nothing farther away, where the distance is unknown or the
    option is off; and through cap_to_free_space a clear lane's plan is slowed to it only near the line."""
    from types import SimpleNamespace

    from drive_vla.model.free_space import junction_approach_cap
    from drive_vla.model.generate import cap_to_free_space

    cfg = FreeSpaceConfig(junction_approach_mps=5.0)
    dist = torch.tensor([0.0, 10.0, 30.0, 10.0])
    cap = junction_approach_cap(cfg, dist, torch.tensor([True, True, True, False]))
    assert cap[:2].tolist() == pytest.approx([5.0, (25.0 + 60.0) ** 0.5])
    assert torch.isinf(cap[2:]).all()
    assert torch.isinf(junction_approach_cap(FreeSpaceConfig(), dist, torch.ones(4, dtype=torch.bool))).all()

    poses = torch.tensor([[[6.0 * k, 0.0, 0.0] for k in range(1, 7)]] * 2)  # 12 m/s
    model = SimpleNamespace(free_head=SimpleNamespace(speed_cap=lambda h: torch.tensor([30.0, 30.0])))
    model.cfg = SimpleNamespace(free_space=cfg)
    junction = (torch.tensor([5.0, 40.0]), torch.tensor([True, True]))
    capped = cap_to_free_space(model, None, poses, torch.tensor([12.0, 12.0]), torch.tensor([True, True]), junction)
    assert model.last_speed_cap == pytest.approx([(25.0 + 30.0) ** 0.5, 30.0])
    assert float(capped[0, 1, 0]) < float(poses[0, 1, 0])  # near the line: slowed
    assert torch.equal(capped[1], poses[1])  # 40 m away: the clear lane's plan as it was


def test_the_own_backbone_holds_no_block_it_never_runs():
    """timm's LCNet feature extractor keeps every block; the head's backbone is cut after the level it reads."""
    from drive_vla.model.free_space import FreeSpaceHead

    head = FreeSpaceHead(FreeSpaceConfig(enabled=True, source="own"), hidden_size=8)
    out = head((torch.randn(2, 3, 72, 128), torch.tensor([[[10.0, 0.0], [20.0, 0.0]]] * 2)))
    out.sum().backward()
    unused = [n for n, p in head.backbone.named_parameters() if p.grad is None]
    assert not unused, unused[:5]

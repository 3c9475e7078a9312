"""Pure pieces: parameter groups with lr multipliers, the warmup + cosine schedule, open-loop L2 by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from torch import nn

from drive_vla.training.config import OptimConfig
from drive_vla.training.metrics import OpenLoopL2
from drive_vla.training.optim import build_optimizer, lr_factor, param_groups
from drive_vla.types import Plan, Trajectory


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.vision = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.vision_extra = nn.Linear(4, 2)  # shares a name prefix with "vision" but is not under it
        self.lm = nn.Linear(4, 4)


def test_param_groups_lr_multipliers_and_no_decay():
    net = Net()
    cfg = OptimConfig(lr=1e-3, weight_decay=0.1, lr_mult={"vision": 0.5, "vision.0": 0.1, "lm": 0.0})
    groups = {g["name"]: g for g in param_groups(net, cfg)}
    assert groups["vision.0"]["lr"] == pytest.approx(1e-4)  # longest prefix wins
    assert groups["vision.0"]["weight_decay"] == 0.1 and groups["vision.0.no_decay"]["weight_decay"] == 0.0
    assert groups["vision.no_decay"]["lr"] == pytest.approx(5e-4)  # the LayerNorm
    assert groups["default"]["params"][0] is net.vision_extra.weight  # "vision_extra" is not under "vision"
    assert not any(p is net.lm.weight for g in groups.values() for p in g["params"])  # factor 0: not optimised
    assert sum(len(g["params"]) for g in groups.values()) == 6
    assert isinstance(build_optimizer(net, cfg).param_groups[0]["lr"], float)


def test_param_groups_errors():
    with pytest.raises(ValueError, match=r"optim.lr_mult: prefixes \['visoin'\] match no parameter"):
        param_groups(Net(), OptimConfig(lr_mult={"visoin": 0.1}))
    net = Net()
    for p in net.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        param_groups(net, OptimConfig())


def test_warmup_cosine_schedule():
    cfg = OptimConfig(warmup_steps=10, min_lr_ratio=0.1, schedule="cosine")
    assert lr_factor(0, 110, cfg) == pytest.approx(0.1)
    assert lr_factor(9, 110, cfg) == pytest.approx(1.0)
    assert lr_factor(10, 110, cfg) == pytest.approx(1.0)
    assert lr_factor(60, 110, cfg) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert lr_factor(110, 110, cfg) == pytest.approx(0.1)
    assert lr_factor(500, 110, cfg) == pytest.approx(0.1)
    const = OptimConfig(warmup_steps=0, schedule="constant")
    assert lr_factor(0, 10, const) == lr_factor(9, 10, const) == 1.0
    assert math.isclose(lr_factor(5, 10, OptimConfig(warmup_steps=0, min_lr_ratio=0.0)), 0.5)


def _plan(xy) -> Plan:
    return Plan(trajectory=Trajectory(xy=np.asarray(xy, dtype=np.float32)))


def test_open_loop_l2_by_hand():
    gt = np.zeros((2, 6, 2))
    gt[:, :, 0] = np.arange(1, 7)  # straight ahead, 1 m per step
    pred0 = gt[0].copy()
    pred0[:, 1] = 1.0  # 1 m lateral error everywhere
    pred1 = gt[1].copy()
    pred1[5, 1] = 3.0  # 3 m error at 3.0 s only, but that step is masked out
    mask = np.ones((2, 6), dtype=bool)
    mask[1, 5] = False
    m = OpenLoopL2()
    m.update([_plan(pred0), _plan(pred1)], gt, mask)
    out = m.compute()
    assert out["l2_1s_m"] == pytest.approx(0.5)  # steps 1..2: sample 0 has 1 m, sample 1 has 0
    assert out["l2_3s_m"] == pytest.approx(6 / 11)  # 11 valid steps, 6 m in total
    assert out["l2_avg_m"] == pytest.approx((0.5 + 0.5 + 6 / 11) / 3)
    m.reset()
    assert math.isnan(m.compute()["l2_avg_m"])
    with pytest.raises(ValueError, match="plans: got 1, expected 2"):
        m.update([_plan(pred0)], gt, mask)

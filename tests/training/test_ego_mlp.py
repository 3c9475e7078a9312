"""The ego-MLP baseline: trains through the Lightning pipeline, saves/loads with safetensors + JSON, plans."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from drive_vla.baselines.ego_mlp import EgoMLPConfig, EgoMLPPlanner, load_ego_mlp
from drive_vla.training.config import load_train_config
from drive_vla.training.plots import read_csv_metrics
from drive_vla.training.run import train
from drive_vla.types import Batch, Planner


def test_ego_mlp_shapes_and_planner_contract(tiny_samples):
    model = EgoMLPPlanner(EgoMLPConfig(hidden=16, layers=2))
    batch = Batch.from_samples(tiny_samples[:5])
    assert model(batch.ego, batch.history, batch.command).shape == (5, 6, 3)
    losses = model.losses(batch)
    assert set(losses) == {"head_l1"} and losses["head_l1"].ndim == 0
    plans = model.predict_batch([s.observation for s in tiny_samples[:3]])
    assert isinstance(model, Planner) and len(plans) == 3
    assert plans[0].trajectory.xy.shape == (6, 2) and plans[0].trajectory.is_complete
    model.reset()


def test_ego_mlp_masked_loss_ignores_invalid_steps(sample_factory):
    model = EgoMLPPlanner(EgoMLPConfig(hidden=8, layers=1))
    samples = sample_factory(2, seed=5, mask_tail=True)
    batch = Batch.from_samples(samples)
    base = model.losses(batch)["head_l1"].item()
    batch.traj[:, -2:, :] += 1000.0  # masked steps: must not change the loss
    assert model.losses(batch)["head_l1"].item() == pytest.approx(base, rel=1e-6)


def test_ego_mlp_save_load_round_trip(tmp_path, tiny_samples):
    model = EgoMLPPlanner(EgoMLPConfig(hidden=16, layers=2))
    model.save_pretrained(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "ego_mlp_config.json").read_text())["hidden"] == 16
    loaded = load_ego_mlp(tmp_path / "p")
    obs = [s.observation for s in tiny_samples[:4]]
    a = np.stack([p.trajectory.xy for p in model.predict_batch(obs)])
    b = np.stack([p.trajectory.xy for p in loaded.predict_batch(obs)])
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="ego_mlp_config.json"):
        load_ego_mlp(tmp_path)


def test_ego_mlp_recipe_trains_and_loss_decreases(tmp_path, sample_factory, train_configs):
    train_s, val_s = sample_factory(64, seed=10), sample_factory(16, seed=11)
    cfg = load_train_config(
        train_configs / "ego_mlp.yaml",
        [
            "model.overrides.hidden=64",
            "data.batch_size=8",
            "trainer.max_epochs=12",
            "optim.lr=3e-3",
            "optim.warmup_steps=2",
            "logging.every_n_steps=1",
            "logging.progress_bar=false",
            "logging.tensorboard=false",
        ],
    )
    torch.manual_seed(0)
    result = train(cfg, tmp_path / "run", train_samples=train_s, val_samples=val_s)
    curve = [v for _, v in read_csv_metrics(tmp_path / "run" / "logs" / "csv")["train/head_l1"]]
    assert len(curve) >= 20
    assert np.mean(curve[-4:]) < 0.5 * np.mean(curve[:4])
    assert (tmp_path / "run" / "loss_curves.png").stat().st_size > 1000
    policy = load_ego_mlp(result.policy_dir)
    plans = policy.predict_batch([s.observation for s in val_s])
    err = np.mean(
        [np.linalg.norm(p.trajectory.xy - s.targets.trajectory.xy, axis=1).mean() for p, s in zip(plans, val_s)]
    )
    assert err < 3.0  # metres, on arcs of 2..12 m/s after a few hundred samples
    assert 0 < result.metrics["val/l2_avg_m"] < 5.0

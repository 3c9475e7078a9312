"""A finished run: exported policy (loads and predicts, same weights), resolved config, logs and loss curves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from drive_vla.config import to_dict
from drive_vla.policy import DrivingPolicy
from drive_vla.training.config import load_train_config
from drive_vla.training.run import train


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, train_configs, tiny_samples, tiny_val_samples, tiny_overrides, tiny_model_overrides):
    cfg = load_train_config(
        train_configs / "embedded_tiny.yaml",
        tiny_overrides
        + tiny_model_overrides
        + ["trainer.max_steps=4", "logging.plot=true", "logging.tensorboard=true", "logging.every_n_steps=1"],
    )
    out = tmp_path_factory.mktemp("run") / "run"
    return cfg, train(cfg, out, train_samples=tiny_samples[:8], val_samples=tiny_val_samples[:4])


def test_exported_policy_loads_and_predicts(finished_run, tiny_val_samples):
    _, result = finished_run
    loaded = DrivingPolicy.from_pretrained(result.policy_dir)
    trained = result.policy.model.state_dict()
    for k, v in loaded.model.state_dict().items():
        torch.testing.assert_close(v, trained[k], msg=f"exported weight {k} differs from the trained one")
    obs = [s.observation for s in tiny_val_samples[:3]]
    plans = loaded.predict_batch(obs)
    assert len(plans) == 3 and all(np.isfinite(p.trajectory.xy).all() for p in plans)
    again = DrivingPolicy.from_pretrained(result.policy_dir).predict_batch(obs)
    np.testing.assert_allclose(plans[0].trajectory.xy, again[0].trajectory.xy)


def test_exported_text_tokenizer_is_fitted_to_the_training_texts(finished_run, tiny_samples):
    cfg, result = finished_run
    loaded = DrivingPolicy.from_pretrained(result.policy_dir)
    assert loaded.config.lm.text_tokenizer == "corpus"
    tok = loaded.model.text_tokenizer
    assert tok.get_vocab() == result.policy.model.text_tokenizer.get_vocab()
    text = tiny_samples[0].targets.explanation
    assert len(tok.encode(text, add_special_tokens=False)) < len(text.encode()) / 3  # words, not bytes


def test_best_checkpoint_is_what_was_exported(finished_run):
    _, result = finished_run
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert result.best_checkpoint is not None and result.best_checkpoint.name == "best.ckpt"
    assert summary["exported"] == "best" and summary["global_step"] == 4
    best = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    exported = DrivingPolicy.from_pretrained(result.policy_dir).model.state_dict()
    for k, v in exported.items():
        torch.testing.assert_close(v, best[f"model.{k}"])


def test_resolved_config_is_saved_and_reloads(finished_run):
    cfg, result = finished_run
    saved = load_train_config(result.run_dir / "config.yaml")
    assert saved.model.path == "" and saved.model.overrides == to_dict(result.policy.config)
    assert saved.trainer == cfg.trainer and saved.loss == cfg.loss and saved.data == cfg.data


def test_logs_and_loss_curves(finished_run):
    _, result = finished_run
    png = result.run_dir / "loss_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    csv_text = (result.run_dir / "logs" / "csv" / "version_0" / "metrics.csv").read_text()
    for key in ("train/loss", "train/waypoint_ce", "val/l2_avg_m", "val/l2_1s_m", "lr-AdamW"):
        assert key in csv_text.splitlines()[0]
    assert list((result.run_dir / "logs" / "tensorboard").rglob("events.out.tfevents.*"))
    for key in ("val/l2_1s_m", "val/l2_2s_m", "val/l2_3s_m", "val/l2_avg_m"):
        assert 0.0 <= result.metrics[key] < 100.0
    l2 = [result.metrics[f"val/l2_{h}s_m"] for h in (1, 2, 3)]
    assert result.metrics["val/l2_avg_m"] == pytest.approx(np.mean(l2), rel=1e-5)

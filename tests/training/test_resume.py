"""Exact resume: a run killed mid-epoch and resumed reaches the weights of an uninterrupted run."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from drive_vla.training.checkpoint import IncompatibleCheckpointError, read_checkpoint_meta
from drive_vla.training.config import load_train_config
from drive_vla.training.run import TrainSetupError, train


class Killed(RuntimeError):
    """Stands in for the process being killed."""


class KillAfterStep(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if trainer.global_step >= self.step:
            raise Killed(f"killed after step {trainer.global_step}")


def _cfg(train_configs, tiny_overrides, tiny_model_overrides, *extra):
    return load_train_config(
        train_configs / "embedded_tiny.yaml",
        tiny_overrides
        + tiny_model_overrides
        + [
            "trainer.max_steps=7",
            "checkpoint.every_n_steps=2",
            "checkpoint.export=last",
            "checkpoint.monitor=''",
            "logging.csv=false",
            *extra,
        ],
    )


def _state(policy) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.model.state_dict().items()}


@pytest.mark.slow
def test_killed_mid_epoch_then_resumed_matches_uninterrupted(
    tmp_path, train_configs, tiny_samples, tiny_val_samples, tiny_overrides, tiny_model_overrides
):
    # 12 samples, batch 4: 3 batches per epoch; the kill after step 4 is inside the second epoch.
    train_s, val_s = tiny_samples[:12], tiny_val_samples[:4]
    cfg = _cfg(train_configs, tiny_overrides, tiny_model_overrides)
    full = train(cfg, tmp_path / "full", train_samples=train_s, val_samples=val_s)

    with pytest.raises(Killed):
        train(cfg, tmp_path / "killed", train_samples=train_s, val_samples=val_s, callbacks=[KillAfterStep(4)])
    ckpt = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4
    resumed = train(cfg, tmp_path / "killed", resume=True, train_samples=train_s, val_samples=val_s)

    a, b = _state(full.policy), _state(resumed.policy)
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < 1e-5, f"resumed weights differ from the uninterrupted run by {worst}"
    # and the run actually moved the weights (so the comparison is meaningful)
    fresh = torch.load(tmp_path / "killed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert fresh["global_step"] == 7


def test_resume_refuses_a_different_model(tmp_path, train_configs, tiny_samples, tiny_overrides, tiny_model_overrides):
    cfg = _cfg(train_configs, tiny_overrides, tiny_model_overrides, "trainer.max_steps=2")
    train(cfg, tmp_path / "run", train_samples=tiny_samples[:8])
    assert read_checkpoint_meta(tmp_path / "run" / "checkpoints" / "last.ckpt")["model_kind"] == "vla"
    other = _cfg(
        train_configs, tiny_overrides, tiny_model_overrides, "trainer.max_steps=4", "model.overrides.lm.num_layers=3"
    )
    mtime = (tmp_path / "run" / "config.yaml").stat().st_mtime_ns
    with pytest.raises(TrainSetupError, match=r"different model.*lm\.num_layers: checkpoint 2 vs config 3") as err:
        train(other, tmp_path / "run", resume=True, train_samples=tiny_samples[:8])
    assert isinstance(err.value.__cause__, IncompatibleCheckpointError)
    assert (tmp_path / "run" / "config.yaml").stat().st_mtime_ns == mtime  # nothing was written


def test_resume_and_out_folder_errors(tmp_path, train_configs, tiny_samples, tiny_overrides, tiny_model_overrides):
    cfg = _cfg(train_configs, tiny_overrides, tiny_model_overrides, "trainer.max_steps=1")
    with pytest.raises(TrainSetupError, match="last.ckpt does not exist"):
        train(cfg, tmp_path / "nothing", resume=True, train_samples=tiny_samples[:4])
    train(cfg, tmp_path / "run", train_samples=tiny_samples[:4])
    with pytest.raises(TrainSetupError, match="pass --resume"):
        train(cfg, tmp_path / "run", train_samples=tiny_samples[:4])

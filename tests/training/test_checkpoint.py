"""Checkpoints are written atomically: a crash during a write leaves the previous checkpoint loadable."""

from __future__ import annotations

import pytest
import torch

import drive_vla.training.checkpoint as ckpt_mod
from drive_vla.training.checkpoint import atomic_torch_save, remove_stale_tmp
from drive_vla.training.config import load_train_config
from drive_vla.training.run import train


class Crash(RuntimeError):
    pass


def _crashing_save(real_save):
    """torch.save that writes half of the bytes, then dies (as a kill mid-write would)."""

    def save(obj, fh, *args, **kwargs):
        import io

        buf = io.BytesIO()
        real_save(obj, buf)
        data = buf.getvalue()
        fh.write(data[: len(data) // 2])
        fh.flush()
        raise Crash("killed mid-write")

    return save


def test_crash_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": torch.tensor(1)}, path)
    monkeypatch.setattr(ckpt_mod.torch, "save", _crashing_save(torch.save))
    with pytest.raises(Crash):
        atomic_torch_save({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"].item() == 1
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "last.ckpt.tmp").write_bytes(b"half a checkpoint")  # what a SIGKILL leaves behind
    assert remove_stale_tmp(tmp_path) == [tmp_path / "last.ckpt.tmp"]


def test_training_crash_during_checkpoint_write_then_resume(
    tmp_path, monkeypatch, train_configs, tiny_samples, tiny_overrides, tiny_model_overrides
):
    cfg = load_train_config(
        train_configs / "embedded_tiny.yaml",
        tiny_overrides
        + tiny_model_overrides
        + ["trainer.max_steps=4", "checkpoint.every_n_steps=1", "checkpoint.monitor=''", "trainer.val_every_n_steps=0"],
    )
    real_save, calls = torch.save, {"n": 0}

    def save_then_crash_on_third(obj, fh, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            return _crashing_save(real_save)(obj, fh)
        return real_save(obj, fh, *args, **kwargs)

    monkeypatch.setattr(ckpt_mod.torch, "save", save_then_crash_on_third)
    with pytest.raises(Crash):
        train(cfg, tmp_path / "run", train_samples=tiny_samples[:8])
    monkeypatch.undo()
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2
    result = train(cfg, tmp_path / "run", resume=True, train_samples=tiny_samples[:8])
    assert torch.load(result.last_checkpoint, map_location="cpu", weights_only=True)["global_step"] == 4


def test_a_full_disk_gives_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": torch.tensor(1)}, path)

    def full_disk(obj, fh, *args, **kwargs):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", full_disk)
    with pytest.raises(
        OSError, match=r"checkpoint .*last\.ckpt: no space left .*the previous last\.ckpt is intact"
    ) as err:
        atomic_torch_save({"step": torch.tensor(2)}, path)
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"].item() == 1 and not list(tmp_path.glob("*.tmp"))

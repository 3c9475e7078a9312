"""Checkpoints: atomic writes, the periodic/last checkpoint callback, the resume compatibility check, and
loading a checkpoint's network weights."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

TMP_SUFFIX = ".tmp"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``<path>.tmp``, fsync, then ``os.replace``: a crash mid-write keeps the old file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            kept = f"the previous {p.name} is intact" if p.exists() else f"no earlier {p.name} existed"
            raise OSError(
                errno.ENOSPC,
                f"checkpoint {p}: no space left on the device while writing it; {kept}; free space "
                "and resume the run with --resume",
            ) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return p


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO whose every save (last, periodic, best) is atomic and every load is weights-only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"storage_options: got {storage_options!r}, expected None for AtomicCheckpointIO")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        """Load with ``torch.load(weights_only=True)`` always: a checkpoint never unpickles arbitrary objects."""
        if weights_only is False:
            raise ValueError(
                f"weights_only: got False for {path}, expected True (checkpoints are read without unpickling objects)"
            )
        if map_location is None:  # Lightning's default: tensors stay where they were saved
            return super().load_checkpoint(path, weights_only=True)
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


def remove_stale_tmp(folder: str | Path) -> list[Path]:
    """Delete ``*.tmp`` leftovers of writes that were killed; returns what was removed."""
    gone = []
    for p in Path(folder).glob(f"*{TMP_SUFFIX}"):
        p.unlink(missing_ok=True)
        gone.append(p)
    return gone


class StepCheckpoint(L.Callback):
    """Writes ``<dir>/last.ckpt`` every ``every_n_steps`` optimiser steps and when training ends.

    Saving happens at the end of a training batch (never at an epoch end that max_steps cut short), so a
    restart continues mid-epoch exactly where the checkpoint was taken. With ``keep_steps`` a copy
    ``step-NNNNNN.ckpt`` is kept too.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int, keep_steps: bool = False) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.keep_steps = keep_steps
        self._saved_step = -1

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.global_step == self._saved_step or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.last_path, weights_only=False)
        if self.keep_steps and trainer.is_global_zero:
            shutil.copyfile(self.last_path, self.dirpath / f"step-{trainer.global_step:06d}.ckpt")
        self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step == 0 or step == self._saved_step:
            return  # nothing stepped yet, or still accumulating towards the next optimiser step
        if step % self.every_n_steps == 0 or (trainer.max_steps > 0 and step >= trainer.max_steps):
            self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step > 0:
            self._save(trainer)


def load_model_state(net: torch.nn.Module, state: dict[str, Any]) -> None:
    """The network weights of a LightningModule state dict (its ``model.``-prefixed keys) into ``net``."""
    net.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})


class IncompatibleCheckpointError(ValueError):
    """Resuming would load a checkpoint into a different model."""


def _diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{where}.{k}" if where else str(k))
        return out
    a = list(a) if isinstance(a, tuple) else a
    b = list(b) if isinstance(b, tuple) else b
    return [] if a == b else [f"{where}: checkpoint {a!r} vs config {b!r}"]


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The "drive_vla" entry of a Lightning checkpoint (loaded with ``weights_only=True``, memory-mapped)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"resume: checkpoint {p} does not exist, expected a run folder with checkpoints/last.ckpt")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"resume: checkpoint {p} cannot be read ({type(exc).__name__}: {exc})") from exc
    meta = ckpt.get("drive_vla")
    if not isinstance(meta, dict):
        raise IncompatibleCheckpointError(
            f"resume: checkpoint {p} has no drive_vla entry, expected one written by drive-vla train"
        )
    return {k: v for k, v in meta.items() if k not in ("torch_rng", "cuda_rng")}


def check_compatible(path: str | Path, expected: dict[str, Any]) -> None:
    """Raise IncompatibleCheckpointError unless the checkpoint's model identity equals ``expected``.

    ``expected`` holds "model_kind", "model_config" and "lora" as plain data (what changes the weights'
    shapes and names).
    """
    meta = read_checkpoint_meta(path)
    diffs = []
    for key in ("model_kind", "model_config", "lora"):
        diffs += _diff(meta.get(key, "<missing>"), expected.get(key, "<missing>"), key)
    if diffs:
        shown = "; ".join(diffs[:8]) + (f"; ... ({len(diffs) - 8} more)" if len(diffs) > 8 else "")
        raise IncompatibleCheckpointError(
            f"resume: checkpoint {path} was trained with a different model ({shown}); start a new run folder "
            "or resume with the original config"
        )

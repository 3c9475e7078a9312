"""One training run end to end: checks, data, model, Lightning Trainer, checkpoints, export, plots."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch

from drive_vla.config import ConfigError, save_config, to_dict
from drive_vla.data.datamodule import DriveDataModule, evenly_spaced
from drive_vla.training.adapt import apply_lora, enable_gradient_checkpointing, freeze_modules, merge_lora
from drive_vla.training.checkpoint import (
    AtomicCheckpointIO,
    StepCheckpoint,
    check_compatible,
    load_model_state,
    remove_stale_tmp,
)
from drive_vla.training.config import TrainConfig, check_precision_for_device, resolve_path
from drive_vla.training.labels import check_required_labels
from drive_vla.training.models import ResolvedModel, build_policy, network_of, resolve_model
from drive_vla.training.module import DrivingModule
from drive_vla.training.optim import param_groups
from drive_vla.training.plots import plot_loss_curves
from drive_vla.types import Sample


class TrainSetupError(ValueError):
    """The run cannot start: bad config, missing data or labels, incompatible resume (found before training)."""


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        run_dir: the run folder.
        policy_dir: the exported policy (``<run>/policy``), loadable with ``from_pretrained``.
        last_checkpoint: Lightning checkpoint for exact resume.
        best_checkpoint: best checkpoint by ``checkpoint.monitor``, if validation ran.
        metrics: final logged metrics (floats).
        policy: the trained policy object (exported weights).
    """

    run_dir: Path
    policy_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    metrics: dict[str, float] = field(default_factory=dict)
    policy: Any = None


def _identity(cfg: TrainConfig, resolved: ResolvedModel) -> dict[str, Any]:
    """What must match for a checkpoint to load into this run's model."""
    return {
        "model_kind": resolved.kind,
        "model_config": resolved.config_dict,
        "lora": to_dict(cfg.lora) if cfg.lora.enabled else None,
        "stage": cfg.stage,
    }


def datamodule_from_config(
    cfg: TrainConfig, train: Sequence[Sample] | None, val: Sequence[Sample] | None
) -> DriveDataModule:
    """The DataModule of ``cfg.data`` (main split, ``extra_train`` sources, validation split), or over the given
    Samples; missing dataset folders raise ConfigError naming the field."""
    d = cfg.data
    dataroot = ""
    if train is None:
        root = resolve_path(d.dataroot)
        if not (root / d.version).is_dir():
            raise ConfigError(
                f"data.dataroot/version: {root}/{d.version} does not exist, expected a nuScenes-format dataset "
                "(see datasets/README.md; `drive-vla data make-embedded` writes one)"
            )
        dataroot = str(root)
        if d.qa_file and not resolve_path(d.qa_file).is_file():
            raise ConfigError(
                f"data.qa_file: {d.qa_file} does not exist, expected a DriveLM-style QA JSON (or data.qa_file='' "
                "for a stage that needs no QA)"
            )
    extra = []
    for i, src in enumerate(d.extra_train):
        root = resolve_path(src.dataroot)
        if not (root / src.version).is_dir():
            raise ConfigError(
                f"data.extra_train[{i}]: {root}/{src.version} does not exist, expected a nuScenes-format dataset"
            )
        extra.append((str(root), src.version, src.split))
    return DriveDataModule(
        dataroot=dataroot,
        version=d.version,
        train_split=d.train_split,
        val_split=d.val_split,
        image_hw=tuple(d.image_hw),
        cameras=d.cameras,
        cache_dir=str(resolve_path(d.cache_dir)) if d.cache_dir else "",
        qa_file=str(resolve_path(d.qa_file)) if d.qa_file else "",
        batch_size=d.batch_size,
        num_workers=d.num_workers,
        seed=cfg.seed,
        shuffle=d.shuffle,
        max_train_samples=d.max_train_samples,
        max_val_samples=d.max_val_samples,
        train=train,
        val=val,
        extra_train=extra,
        qa_items=d.qa_items,
        qa_ratio=d.qa_ratio,
    )


def _strategy(cfg: TrainConfig, net: torch.nn.Module) -> Any:
    name = cfg.trainer.strategy
    if name == "ddp":
        # Tasks whose labels a batch lacks leave parts of the model without gradients on that step.
        return "ddp_find_unused_parameters_true"
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        layers = {type(m) for m in getattr(net, "lm", net).modules() if type(m).__name__.endswith("DecoderLayer")}
        return FSDPStrategy(
            auto_wrap_policy=layers or None,
            activation_checkpointing_policy=layers if cfg.trainer.gradient_checkpointing and layers else None,
            state_dict_type="full",
            use_orig_params=True,
        )
    return "auto"


def _loggers(cfg: TrainConfig, run_dir: Path) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    out: list[Any] = []
    if cfg.logging.csv:
        out.append(CSVLogger(save_dir=str(run_dir / "logs"), name="csv"))
    if cfg.logging.tensorboard:
        out.append(TensorBoardLogger(save_dir=str(run_dir / "logs"), name="tensorboard", default_hp_metric=False))
    return out


def _float_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    train_samples: Sequence[Sample] | None = None,
    val_samples: Sequence[Sample] | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> TrainResult:
    """Run one training stage and export the policy to ``<out_dir>/policy``.

    Everything that can be wrong with the inputs (config, folders, resume compatibility, missing labels)
    is checked before the model is trained.

    Args:
        cfg: the resolved TrainConfig.
        out_dir: the run folder (``config.yaml``, ``checkpoints/``, ``logs/``, ``policy/``, ``loss_curves.png``).
        resume: continue from ``<out_dir>/checkpoints/last.ckpt`` (exact: weights, optimiser, schedule,
            data position and RNG).
        train_samples: train on these Samples instead of ``cfg.data`` (tests, in-memory data).
        val_samples: validate on these Samples.
        callbacks: extra Lightning callbacks.
    """
    if cfg.stage == "perception":  # not a Lightning stage: it trains one head on front-camera frames
        raise TrainSetupError(
            "stage: got 'perception', expected a Lightning stage here; run it with `drive-vla train` "
            "(drive_vla.training.perception.run_perception)"
        )
    t0 = time.perf_counter()
    run_dir = Path(out_dir)
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if resume and not last.is_file():
        raise TrainSetupError(f"resume: {last} does not exist, expected a run folder written by drive-vla train")
    if not resume and last.is_file():
        raise TrainSetupError(
            f"out: {run_dir} already holds {last}; pass --resume to continue it or choose a new --out"
        )
    cuda = torch.cuda.is_available() and cfg.trainer.accelerator != "cpu"
    if cfg.trainer.accelerator in ("gpu", "cuda") and not cuda:
        raise TrainSetupError(
            f"trainer.accelerator: got {cfg.trainer.accelerator!r} but no CUDA device is visible; expected 'cpu' or "
            "'auto' here (--set trainer.accelerator=cpu trainer.strategy=auto trainer.devices=1)"
        )
    try:
        precision = check_precision_for_device(cfg.trainer.precision, cuda)
    except ValueError as exc:
        raise TrainSetupError(str(exc)) from exc

    try:
        resolved = resolve_model(cfg)
        identity = _identity(cfg, resolved)
        if resume:
            check_compatible(last, identity)
            remove_stale_tmp(ckpt_dir)
        dm = datamodule_from_config(cfg, train_samples, val_samples)
        dm.setup("fit")
        assert dm.train_set is not None
        where = f"train split {cfg.data.train_split!r}"
        check_required_labels(dm.train_set, cfg.data.require_labels, cfg.stage, where, cfg.data.label_probe)
    except ValueError as exc:
        raise TrainSetupError(str(exc)) from exc

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    fit_trajs = fit_texts = None
    if resolved.policy is None and resolved.kind == "vla":
        idx = evenly_spaced(len(dm.train_set), cfg.data.fit_samples)
        fit_trajs, fit_texts = dm.train_set.trajectories(idx), dm.train_set.texts(idx)
    policy = build_policy(resolved, fit_trajs, fit_texts)
    net = network_of(policy)
    try:
        frozen = freeze_modules(net, cfg.freeze)
        if cfg.lora.enabled:
            apply_lora(net, cfg.lora)
        if cfg.trainer.gradient_checkpointing:
            enable_gradient_checkpointing(net)
        param_groups(net, cfg.optim)  # optim.lr_mult prefixes must name parameters
    except ValueError as exc:  # names in freeze / lora / lr_mult that the model does not have
        raise TrainSetupError(str(exc)) from exc

    run_dir.mkdir(parents=True, exist_ok=True)
    saved = cfg if cfg.init_from else replace(cfg, model=replace(cfg.model, path="", overrides=resolved.config_dict))
    save_config(saved, run_dir / "config.yaml")

    module = DrivingModule(net, cfg.loss, cfg.optim, frozen, extra_checkpoint=identity)
    module.train()  # policies load in eval mode; Lightning keeps whatever mode it is given
    step_ckpt = StepCheckpoint(ckpt_dir, cfg.checkpoint.every_n_steps, cfg.checkpoint.keep_steps)
    cbs: list[L.Callback] = [step_ckpt, *callbacks]
    best_cb = None
    if dm.val_set is not None and cfg.checkpoint.monitor:
        from lightning.pytorch.callbacks import ModelCheckpoint

        best_cb = ModelCheckpoint(
            dirpath=str(ckpt_dir),
            filename="best",
            monitor=cfg.checkpoint.monitor,
            mode="min",
            save_top_k=1,
            save_weights_only=True,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )
        cbs.append(best_cb)
    loggers = _loggers(cfg, run_dir)
    if loggers:
        from lightning.pytorch.callbacks import LearningRateMonitor

        cbs.append(LearningRateMonitor(logging_interval="step"))
    tc = cfg.trainer
    trainer = L.Trainer(
        accelerator="cpu" if not cuda else tc.accelerator,
        devices=tc.devices,
        num_nodes=tc.num_nodes,
        strategy=_strategy(cfg, net),
        precision=precision,
        max_steps=tc.max_steps,
        max_epochs=tc.max_epochs,
        gradient_clip_val=cfg.optim.grad_clip or None,
        accumulate_grad_batches=cfg.optim.accumulate,
        log_every_n_steps=cfg.logging.every_n_steps,
        check_val_every_n_epoch=tc.val_every_n_epochs if not tc.val_every_n_steps else None,
        val_check_interval=tc.val_every_n_steps or None,
        limit_val_batches=tc.limit_val_batches if dm.val_set is not None else 0,
        num_sanity_val_steps=0,
        enable_progress_bar=cfg.logging.progress_bar,
        enable_model_summary=False,
        logger=loggers or False,
        callbacks=cbs,
        plugins=[AtomicCheckpointIO()],
        enable_checkpointing=best_cb is not None,
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,
        deterministic=tc.deterministic,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the frozen parts
        warnings.filterwarnings("ignore", message=".*overridden `transfer_batch_to_device`.*")
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None, weights_only=True)

    metrics = _float_metrics(trainer.callback_metrics)
    best = Path(best_cb.best_model_path) if best_cb is not None and best_cb.best_model_path else None
    policy_dir = run_dir / "policy"
    from lightning.pytorch.strategies import FSDPStrategy

    sharded = isinstance(trainer.strategy, FSDPStrategy)
    # FSDP wraps submodules in place: gather the full weights (a collective call on every rank) and
    # export them through a freshly built, unwrapped copy of the network.
    full_state = trainer.strategy.lightning_module_state_dict() if sharded else None
    if trainer.is_global_zero:
        state = full_state
        if cfg.checkpoint.export == "best" and best is not None and best.is_file():
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        if sharded:
            policy = build_policy(resolve_model(cfg), fit_trajs, fit_texts)
            net = network_of(policy)
            if cfg.lora.enabled:
                apply_lora(net, cfg.lora)
        if state is not None:
            load_model_state(net, state)
        merge_lora(net)
        net.to("cpu")
        selection = None
        if cfg.checkpoint.export == "closed_loop":  # TrainConfig refuses it with LoRA or FSDP
            from drive_vla.training.select import select_by_driving

            selection = select_by_driving(net, policy, ckpt_dir, run_dir, cfg.checkpoint)
        policy.save_pretrained(policy_dir)
        if cfg.logging.plot and cfg.logging.csv:
            plot_loss_curves(run_dir / "logs" / "csv", run_dir / "loss_curves.png")
        summary = {
            "stage": cfg.stage,
            "global_step": trainer.global_step,
            "epochs": trainer.current_epoch,
            "wall_s": round(time.perf_counter() - t0, 2),
            "exported": cfg.checkpoint.export if best is not None or selection else "last",
            "selection": selection,
            "best_checkpoint": str(best) if best else None,
            "best_score": float(best_cb.best_model_score)
            if best_cb is not None and best_cb.best_model_score is not None
            else None,
            "metrics": metrics,
        }
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return TrainResult(run_dir, policy_dir, last, best, metrics, policy)

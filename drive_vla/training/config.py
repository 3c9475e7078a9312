"""TrainConfig: the typed training recipe (data, model, stage, losses, optimiser, schedule, scale-out, logging)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from drive_vla.config import ConfigError, load_config
from drive_vla.training.dagger_config import DaggerConfig
from drive_vla.training.perception_config import PerceptionConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
LOSS_KEYS: tuple[str, ...] = (
    "waypoint_ce",
    "control_ce",
    "text_ce",
    "head_l1",
    "head_kl",
    "bev_bce",
    "speed_ce",
    "cam_aux",
    "free_l1",
)
LABEL_KINDS: tuple[str, ...] = ("qa", "explanation", "control", "meta_action")
STAGES: tuple[str, ...] = ("align", "instruct", "plan", "baseline", "perception")


@dataclass
class DataSource:
    """One more nuScenes-format training source (read with the main one's image size, cache and QA file).

    Attributes:
        dataroot: data root (relative paths resolve like ``data.dataroot``).
        version: dataset version folder.
        split: split whose scenes are used ("" = every scene).
    """

    dataroot: str = ""
    version: str = "v1.0-embedded"
    split: str = "train"

    def __post_init__(self) -> None:
        if not self.dataroot:
            raise ValueError("data.extra_train[].dataroot: got '', expected a dataset folder")
        if not self.version:
            raise ValueError(f"data.extra_train[].version: got '' for {self.dataroot!r}, expected a version folder")


@dataclass
class DataConfig:
    """Where the samples come from and how they are batched.

    Attributes:
        dataroot: nuScenes-format data root (relative paths resolve from the working directory, then the repo).
        version: dataset version folder, e.g. "v1.0-mini", "v1.0-trainval", "v1.0-embedded".
        train_split: split name of the training scenes.
        val_split: split name of the validation scenes ("" = no validation).
        image_hw: (height, width) the reader resizes camera images to.
        cameras: read the camera images; false gives black images of ``image_hw`` without reading a file,
            for models that read no camera (the ego MLP).
        cache_dir: reader cache folder ("" = none).
        qa_file: DriveLM-style QA JSON for real nuScenes ("" = the dataset's own labels, if any).
        batch_size: samples per step per device.
        num_workers: DataLoader worker processes.
        shuffle: shuffle training samples (seeded per epoch, so the order is reproducible).
        max_train_samples: use only this many training samples, evenly spaced (0 = all).
        max_val_samples: use only this many validation samples, evenly spaced (0 = all).
        fit_samples: training samples whose trajectories fit the action tokenizer (evenly spaced).
        require_labels: labels the stage needs ("qa", "explanation", "control", "meta_action"); checked
            before any work.
        label_probe: samples probed per split for ``require_labels``.
        extra_train: more training sources, read after the main train split (e.g. DAgger rounds' scenes).
        qa_items: one epoch item per QA pair (the pair alone, no planning labels) beside one planning item
            per sample, in a seeded order, so every pair is seen once per epoch and validation scores every
            pair; off = one item per sample with a random text target.
        qa_ratio: with ``qa_items``, the share of QA items in a training epoch (0 = every pair and every
            sample once; e.g. 0.5 = as many planning items as QA items).
    """

    dataroot: str = "datasets/embedded"
    version: str = "v1.0-embedded"
    train_split: str = "train"
    val_split: str = "val"
    image_hw: tuple[int, int] = (36, 64)
    cameras: bool = True
    cache_dir: str = ""
    qa_file: str = ""
    batch_size: int = 4
    num_workers: int = 0
    shuffle: bool = True
    max_train_samples: int = 0
    max_val_samples: int = 0
    fit_samples: int = 2048
    require_labels: list[str] = field(default_factory=list)
    label_probe: int = 32
    extra_train: list[DataSource] = field(default_factory=list)
    qa_items: bool = False
    qa_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.qa_ratio <= 1.0:
            raise ValueError(f"data.qa_ratio: got {self.qa_ratio}, expected a share in [0, 1] (0 = natural mix)")
        unknown = [x for x in self.require_labels if x not in LABEL_KINDS]
        if unknown:
            raise ValueError(f"data.require_labels: got {unknown}, expected labels among {list(LABEL_KINDS)}")
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size: got {self.batch_size}, expected >= 1")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers: got {self.num_workers}, expected >= 0")
        if min(self.image_hw) < 16:
            raise ValueError(f"data.image_hw: got {self.image_hw}, expected both sides >= 16 pixels")


@dataclass
class ModelRef:
    """Which model is trained.

    Attributes:
        kind: "vla" (DrivingPolicy / DriveVLA) or "ego_mlp" (the ego-state MLP baseline).
        path: YAML of the model config (``ModelConfig`` or ``EgoMLPConfig``); "" = defaults.
        overrides: inline config fields merged over the file (nested mappings).
    """

    kind: Literal["vla", "ego_mlp"] = "vla"
    path: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossWeights:
    """Weight of each task loss returned by ``DriveVLA.losses`` (0 = not trained, still logged)."""

    waypoint_ce: float = 1.0
    control_ce: float = 0.5
    text_ce: float = 0.5
    head_l1: float = 1.0
    head_kl: float = 1.0
    bev_bce: float = 1.0  # the auxiliary occupancy task, where the model has it (ModelConfig.bev_aux)
    cam_aux: float = 1.0  # the auxiliary camera-space task, where the model has it (ModelConfig.camera_aux)
    free_l1: float = 1.0  # the free-distance head, where the model has it (ModelConfig.free_space)
    speed_ce: float = 1.0  # the planner head's target-speed classes, where it has them (target_speed_classes)

    def __post_init__(self) -> None:
        for key in LOSS_KEYS:
            if getattr(self, key) < 0:
                raise ValueError(f"loss.{key}: got {getattr(self, key)}, expected a weight >= 0")


@dataclass
class OptimConfig:
    """AdamW with per-module learning-rate multipliers, warmup + cosine schedule.

    Attributes:
        lr: peak learning rate.
        weight_decay: AdamW decay on matrices (biases and norms are not decayed).
        betas: AdamW betas.
        lr_mult: module name prefix (as in ``model.named_parameters()``, e.g. "vision.backbone") -> factor
            on ``lr``; the longest matching prefix wins.
        schedule: "cosine" (linear warmup, cosine to ``min_lr_ratio * lr``) or "constant" (after warmup).
        warmup_steps: optimiser steps of linear warmup from 0.
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        grad_clip: gradient-norm clip (0 = off).
        accumulate: batches accumulated per optimiser step.
    """

    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    lr_mult: dict[str, float] = field(default_factory=dict)
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    accumulate: int = 1

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"optim.lr: got {self.lr}, expected > 0")
        if self.accumulate < 1:
            raise ValueError(f"optim.accumulate: got {self.accumulate}, expected >= 1")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"optim.min_lr_ratio: got {self.min_lr_ratio}, expected a value in [0, 1]")
        bad = {k: v for k, v in self.lr_mult.items() if v < 0}
        if bad:
            raise ValueError(f"optim.lr_mult: got {bad}, expected factors >= 0")


@dataclass
class LoraConfig:
    """LoRA adapters on ``model.lm`` (peft); the LM's own weights stay fixed.

    Attributes:
        enabled: wrap the LM with LoRA adapters.
        r: adapter rank.
        alpha: LoRA scaling numerator (scale = alpha / r).
        dropout: dropout on the adapter input.
        target_modules: names of the LM's linear layers that get adapters.
        modules_to_save: LM modules trained in full beside the adapters (e.g. "embed_tokens"); [] = adapters only.
        train_new_tokens: also train the embedding rows (and tied output rows) of the tokens the VLA adds
            to the LM (special, waypoint and control tokens), as peft trainable tokens; a pretrained LM
            never saw them, so without this their embeddings stay random.
    """

    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    modules_to_save: list[str] = field(default_factory=list)
    train_new_tokens: bool = True


@dataclass
class TrainerConfig:
    """Length, devices and numerics, passed to the Lightning Trainer.

    Attributes:
        max_steps: optimiser steps (-1 = bounded by max_epochs).
        max_epochs: epochs (-1 = bounded by max_steps).
        precision: Lightning precision; "auto" = "bf16-mixed" on a bf16-capable GPU, else "32-true".
        accelerator: "auto", "cpu" or "gpu".
        strategy: "auto", "ddp" or "fsdp".
        devices: number of devices or "auto".
        num_nodes: machines.
        val_every_n_epochs: validation period in epochs.
        val_every_n_steps: validate every N training batches as well (0 = only at epoch ends).
        limit_val_batches: validation batches per run (int) or fraction (float).
        gradient_checkpointing: recompute the LM's activations in backward (less memory).
        deterministic: ask torch for deterministic kernels.
    """

    max_steps: int = -1
    max_epochs: int = 10
    precision: str = "auto"
    accelerator: str = "auto"
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    val_every_n_epochs: int = 1
    val_every_n_steps: int = 0
    limit_val_batches: int | float = 1.0
    gradient_checkpointing: bool = False
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.max_steps < 1 and self.max_epochs < 1:
            raise ValueError(
                f"trainer.max_steps/max_epochs: got {self.max_steps}/{self.max_epochs}, expected at least one >= 1"
            )
        ok = ("auto", "32-true", "32", "bf16-mixed", "bf16-true", "16-mixed")
        if self.precision not in ok:
            raise ValueError(f"trainer.precision: got {self.precision!r}, expected one of {list(ok)}")


@dataclass
class CheckpointConfig:
    """Checkpoints and the exported policy.

    Attributes:
        every_n_steps: write ``checkpoints/last.ckpt`` every N optimiser steps (and at the end).
        keep_steps: also keep ``checkpoints/step-NNNNNN.ckpt`` copies of the periodic checkpoints.
        monitor: validation metric of the best checkpoint (lower is better); "" = no best checkpoint.
        export: which weights go to ``<run>/policy``: "best" (falls back to last without validation), "last",
            or "closed_loop": each kept step checkpoint from ``select_from_step`` on is driven over
            ``select_suite`` and the one with the highest driving score is exported (``training/select.py``;
            needs ``keep_steps``).
        select_suite: the suite of "closed_loop" (a training-range suite; never the held-out ones).
        select_from_step: earliest step checkpoint "closed_loop" considers.
        select_max_routes: drive only the suite's first N routes (0 = all).
    """

    every_n_steps: int = 100
    keep_steps: bool = False
    monitor: str = "val/l2_avg_m"
    export: Literal["best", "last", "closed_loop"] = "best"
    select_suite: str = "select"
    select_from_step: int = 0
    select_max_routes: int = 0

    def __post_init__(self) -> None:
        if self.every_n_steps < 1:
            raise ValueError(f"checkpoint.every_n_steps: got {self.every_n_steps}, expected >= 1")
        if self.export not in ("best", "last", "closed_loop"):
            raise ValueError(f"checkpoint.export: got {self.export!r}, expected 'best', 'last' or 'closed_loop'")
        if self.export == "closed_loop" and not self.keep_steps:
            raise ValueError(
                "checkpoint.export: got 'closed_loop' with checkpoint.keep_steps false, expected keep_steps: true "
                "(the candidates are the kept step checkpoints)"
            )
        if self.select_from_step < 0 or self.select_max_routes < 0:
            raise ValueError(
                f"checkpoint.select_from_step / select_max_routes: got {self.select_from_step} / "
                f"{self.select_max_routes}, expected integers >= 0"
            )
        if self.export == "closed_loop":
            from drive_vla.suites import load_suite

            try:
                suite = load_suite(self.select_suite)
            except (ValueError, OSError) as exc:
                raise ValueError(f"checkpoint.select_suite: {exc}") from None
            if suite.held_out:
                raise ValueError(
                    f"checkpoint.select_suite: got {self.select_suite!r}, a held-out suite; expected a "
                    "training-range suite such as 'select'"
                )


@dataclass
class LoggingConfig:
    """Loggers and progress output.

    Attributes:
        every_n_steps: how often training metrics are logged.
        csv: write ``<run>/logs/csv/metrics.csv``.
        tensorboard: write TensorBoard events under ``<run>/logs/tensorboard``.
        progress_bar: Lightning's progress bar.
        plot: write ``<run>/loss_curves.png`` at the end of the run.
    """

    every_n_steps: int = 10
    csv: bool = True
    tensorboard: bool = True
    progress_bar: bool = True
    plot: bool = True


@dataclass
class TrainConfig:
    """One training run (one stage of the recipe).

    Attributes:
        stage: "align" (vision/projectors learn from text, LM frozen), "instruct" (QA + explanations),
            "plan" (trajectory + controls + language), "baseline" (a baseline model) or "perception" (a
            free-distance head with its own backbone added to the ``init_from`` policy and trained alone,
            ``drive_vla.training.perception``; it reads ``data``, ``optim.lr``, ``optim.weight_decay``,
            ``trainer.max_epochs``, ``seed`` and ``perception``).
        seed: seeds model init, data order and dropout.
        init_from: a previous stage's exported policy directory ("" = fresh model from ``model``).
        data: see DataConfig.
        model: see ModelRef; must stay empty when ``init_from`` is set (the model comes from that policy).
        loss: per-task loss weights.
        optim: optimiser and schedule.
        freeze: submodules of the model kept fixed (e.g. "lm", "vision.backbone").
        lora: LoRA on the LM.
        trainer: length, devices, precision, strategy.
        checkpoint: checkpoints and export.
        logging: loggers.
        dagger: on-policy rounds after this stage (``drive-vla train`` runs them when ``dagger.rounds`` > 0).
        perception: the head of the "perception" stage.
    """

    stage: Literal["align", "instruct", "plan", "baseline", "perception"] = "plan"
    seed: int = 0
    init_from: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelRef = field(default_factory=ModelRef)
    loss: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)
    freeze: list[str] = field(default_factory=list)
    lora: LoraConfig = field(default_factory=LoraConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    dagger: DaggerConfig = field(default_factory=DaggerConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)

    def __post_init__(self) -> None:
        if self.stage == "perception":
            if not self.init_from or self.dagger.rounds:
                raise ValueError(
                    f"stage: got 'perception' with init_from={self.init_from!r} and dagger.rounds={self.dagger.rounds}, "
                    "expected the exported driving policy to add the head to in init_from, and no DAgger rounds"
                )
            return
        if self.init_from and (self.model.path or self.model.overrides):
            raise ValueError(
                f"model: got path={self.model.path!r} overrides={self.model.overrides!r} with "
                f"init_from={self.init_from!r}, expected an empty model section (the model comes from init_from)"
            )
        if self.checkpoint.export == "closed_loop" and (self.lora.enabled or self.trainer.strategy == "fsdp"):
            raise ValueError(
                f"checkpoint.export: got 'closed_loop' with lora.enabled={self.lora.enabled} and "
                f"trainer.strategy={self.trainer.strategy!r}, expected neither LoRA nor FSDP (the kept checkpoints "
                "are loaded into the exported network)"
            )
        if self.lora.enabled and self.model.kind != "vla":
            raise ValueError(f"lora.enabled: got true for model.kind={self.model.kind!r}, expected model.kind='vla'")
        tasks = [
            k for k in LOSS_KEYS if k not in ("bev_bce", "speed_ce", "cam_aux", "free_l1")
        ]  # auxiliary terms never train alone
        if not any(getattr(self.loss, k) > 0 for k in tasks):
            raise ValueError(f"loss: got all weights 0 ({[f'{k}=0' for k in tasks]}), expected one > 0")


def resolve_path(path: str | Path) -> Path:
    """A user path: absolute as is; relative from the working directory, else from the repository root."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = REPO_ROOT / p
    return candidate if candidate.exists() else p


def load_train_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Load a recipe YAML with ``a.b=value`` overrides; unknown keys and bad values raise ConfigError."""
    return load_config(TrainConfig, resolve_path(path) if path is not None else None, list(overrides))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge, ``over`` wins (copies; inputs are not modified)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def check_precision_for_device(precision: str, cuda: bool) -> str:
    """Resolve "auto" and refuse GPU-only precisions without a GPU."""
    if precision == "auto":
        import torch

        return "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "32-true"
    if precision in ("16-mixed",) and not cuda:
        raise ConfigError(f"trainer.precision: got {precision!r} without a CUDA device, expected '32-true' or 'auto'")
    return precision

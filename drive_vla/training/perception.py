"""The perception stage: add a free-distance head with a backbone of its own to a driving policy, and train
that head alone on front-camera frames (``stage: perception``, ``drive-vla train``).

The driving policy's weights are not touched, so it plans exactly as before; with ``free_space.cap_speed`` its
plans are then slowed to what the head says the lane ahead allows (``model.generate.cap_to_free_space``).
Only the front camera, the route points and the annotated boxes of each frame are read, so the stage trains
on far more frames than the driving recipe at the same cost: it is meant for datasets recorded with
obstacle scenes (``make-embedded --obstacle-scenes``), where the same road is seen with and without a car
standing in the lane and only the car explains the label.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drive_vla.model.free_space import FreeSpaceConfig, FreeSpaceHead, free_distance
from drive_vla.types import CAMERA_NAMES, Sample

METRICS_FILE = "perception_metrics.json"
NEAR_M = 20.0  # a car this close in the lane must read as near ...
NEAR_READ_M = 30.0  # ... that is, below this
FALSE_NEAR_M = 20.0  # a clear lane read below this is a false alarm


@dataclass
class FrontFrames:
    """Labelled front-camera frames: (N, 3, H, W) uint8 images, (N, P, 2) route points, (N,) free distances."""

    images: torch.Tensor
    route: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return int(self.label.shape[0])


def front_frames(samples: Sequence[Sample], cfg: FreeSpaceConfig, desc: str = "") -> FrontFrames:
    """The frames of ``samples`` that have route points and annotated boxes, with their free-distance labels."""
    from tqdm.auto import tqdm

    images, routes, labels = [], [], []
    for i in tqdm(range(len(samples)), desc=desc or None, unit="sample", disable=not desc, leave=False):
        sample = samples[i]
        obs = sample.observation
        if obs.route_target is None or sample.targets.boxes is None:
            continue
        route = np.asarray(obs.route_target, dtype=np.float32)
        images.append(torch.from_numpy(np.ascontiguousarray(obs.images[CAMERA_NAMES[0]])).permute(2, 0, 1))
        routes.append(torch.from_numpy(route))
        labels.append(free_distance(sample.targets.boxes, route, cfg.corridor_m, cfg.max_m))
    if not labels:
        return FrontFrames(torch.zeros(0, 3, 1, 1, dtype=torch.uint8), torch.zeros(0, 1, 2), torch.zeros(0))
    return FrontFrames(torch.stack(images), torch.stack(routes), torch.tensor(labels, dtype=torch.float32))


def attach_free_head(policy: Any, cfg: FreeSpaceConfig) -> FreeSpaceHead:
    """Give ``policy`` (a DrivingPolicy) a new free-distance head of config ``cfg``; returns the head."""
    config = dataclasses.replace(policy.config, free_space=cfg)
    model = policy.model
    head = FreeSpaceHead(cfg, int(model.lm.config.hidden_size), config.vision.dim).to(model.device)
    policy.config = model.cfg = config
    model.free_head = head
    return head


def head_inputs(policy: Any, frames: FrontFrames, rows: torch.Tensor, flip: bool = False, rng=None):
    """The head's input for ``rows`` of ``frames``: normalised images and route points (mirrored at random)."""
    images = frames.images[rows]
    route = frames.route[rows].clone()
    if flip:
        mirror = torch.rand(len(rows), generator=rng) < 0.5
        images = torch.where(mirror[:, None, None, None], images.flip(-1), images)
        route[mirror, :, 1] *= -1.0
    x = policy.model.vision.preprocess(images[:, None])  # (B, 3, h, w) at the policy's image size
    return x, route.to(x.device)


def predict(policy: Any, frames: FrontFrames, batch_size: int = 256) -> np.ndarray:
    """(N,) predicted free distances of ``frames`` (eval mode, no gradients)."""
    head = policy.model.free_head
    was = head.training
    head.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(frames), batch_size):
            rows = torch.arange(start, min(start + batch_size, len(frames)))
            out.append(head(head_inputs(policy, frames, rows)).clamp(0.0, head.cfg.max_m).cpu())
    head.train(was)
    return torch.cat(out).numpy() if out else np.zeros(0)


def free_space_metrics(pred: np.ndarray, label: np.ndarray, max_m: float) -> dict[str, float | int | None]:
    """Mean absolute error (all frames and frames with a car within ``NEAR_M``), the share of those near frames
    read below ``NEAR_READ_M``, and the share of clear frames read below ``FALSE_NEAR_M`` (false alarms); None
    where there is no such frame."""
    err = np.abs(pred - label)
    near, clear = label < NEAR_M, label >= max_m

    def mean(x: np.ndarray) -> float | None:
        return float(x.mean()) if len(x) else None

    return {
        "frames": int(len(label)),
        "mae_m": mean(err),
        "near_frames": int(near.sum()),
        "near_mae_m": mean(err[near]),
        "near_read_pct": None if not near.any() else 100.0 * mean(pred[near] < NEAR_READ_M),
        "false_near_pct": None if not clear.any() else 100.0 * mean(pred[clear] < FALSE_NEAR_M),
    }


def describe(val: dict[str, Any]) -> str:
    """One line of ``free_space_metrics``."""
    pct = lambda v: "n/a" if v is None else f"{v:.1f} %"  # noqa: E731
    mae = "n/a" if val["mae_m"] is None else f"{val['mae_m']:.2f} m"
    return (
        f"free distance MAE {mae}; cars within {NEAR_M:.0f} m read as near in {pct(val['near_read_pct'])} of "
        f"{val['near_frames']} frames; clear lanes read as near in {pct(val['false_near_pct'])}"
    )


def fit_free_head(
    policy: Any,
    train: FrontFrames,
    val: FrontFrames | None,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    flip: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train ``policy.model.free_head`` alone (AdamW, one-cycle schedule) on ``train``; per-epoch metrics."""
    from tqdm.auto import tqdm

    head = policy.model.free_head
    policy.model.eval()
    head.train()
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    steps_per_epoch = (len(train) + batch_size - 1) // batch_size
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, epochs * steps_per_epoch))
    history = []
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=rng)
        total = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"perception epoch {epoch}", unit="step", disable=not progress)
        for step in bar:
            rows = order[step * batch_size : (step + 1) * batch_size]
            loss = head.label_loss(head(head_inputs(policy, train, rows, flip, rng)), train.label[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            value = loss.item()
            total += value * len(rows)
            bar.set_postfix(loss=f"{value:.4f}")
        record: dict[str, Any] = {"epoch": epoch, "train_loss": total / max(1, len(train))}
        if val is not None and len(val):
            record["val"] = free_space_metrics(predict(policy, val), val.label.numpy(), head.cfg.max_m)
        history.append(record)
        print(_epoch_line(record), flush=True)
    head.eval()
    return history


def _epoch_line(record: dict[str, Any]) -> str:
    line = f"perception epoch {record['epoch']}: train loss {record['train_loss']:.4f}"
    return line + (f"; val {describe(record['val'])}" if record.get("val") else "")


def write_metrics(out: Path, history: list[dict[str, Any]], counts: dict[str, int]) -> Path:
    path = Path(out) / METRICS_FILE
    path.write_text(json.dumps({"frames": counts, "epochs": history}, indent=2) + "\n")
    return path


@dataclass
class PerceptionResult:
    """What the perception stage wrote: the exported policy and its per-epoch metrics."""

    policy_dir: Path
    metrics_file: Path
    history: list[dict[str, Any]]


def run_perception(cfg: Any, out: Path, progress: bool = True) -> PerceptionResult:
    """The "perception" stage of ``cfg`` (a TrainConfig): load ``init_from``, add and train the head, export.

    Raises:
        TrainSetupError: the policy cannot carry the cap (no planner head or no route input), or no training
            frame has route points and boxes.
    """
    from drive_vla.policy import DrivingPolicy
    from drive_vla.training.config import resolve_path
    from drive_vla.training.run import TrainSetupError, datamodule_from_config

    out = Path(out)
    try:
        policy = DrivingPolicy.from_pretrained(resolve_path(cfg.init_from))
    except (FileNotFoundError, ValueError) as exc:
        raise TrainSetupError(f"init_from: {cfg.init_from!r} is not a loadable exported policy ({exc})") from exc
    if policy.config.output_mode != "head" or not policy.config.route_target:
        raise TrainSetupError(
            f"init_from: got a policy with output_mode={policy.config.output_mode!r} and "
            f"route_target={policy.config.route_target}, expected 'head' and true (the head caps the planner head's "
            "plan along the route)"
        )
    head_cfg = cfg.perception.free_space
    torch.manual_seed(cfg.seed)
    try:  # before the data is read: a bad backbone name stops the run at once
        attach_free_head(policy, head_cfg)
    except ValueError as exc:
        raise TrainSetupError(f"perception.{exc}") from exc
    image_hw = tuple(int(v) for v in policy.config.vision.image_hw)  # the reader resizes to the policy's input
    data = dataclasses.replace(cfg.data, image_hw=image_hw)
    try:
        dm = datamodule_from_config(dataclasses.replace(cfg, data=data), None, None)
        dm.setup()
    except (ValueError, FileNotFoundError) as exc:
        raise TrainSetupError(str(exc)) from exc
    train = front_frames(dm.train_set, head_cfg, desc="reading the training frames" if progress else "")
    val = None
    if dm.val_set is not None:
        val = front_frames(dm.val_set, head_cfg, desc="reading the validation frames" if progress else "")
    if not len(train):
        roots = [data.dataroot, *(e.dataroot for e in data.extra_train)]
        raise TrainSetupError(
            f"data: got no training frame with route points and annotated boxes in {roots}, "
            "expected embedded-world data (make-embedded, ideally with --obstacle-scenes)"
        )
    history = fit_free_head(
        policy,
        train,
        val,
        epochs=cfg.trainer.max_epochs,
        batch_size=data.batch_size,
        lr=cfg.optim.lr,
        weight_decay=cfg.optim.weight_decay,
        seed=cfg.seed,
        flip=cfg.perception.flip,
        progress=progress,
    )
    out.mkdir(parents=True, exist_ok=True)
    policy_dir = policy.save_pretrained(out / "policy")
    counts = {"train": len(train), "val": 0 if val is None else len(val)}
    return PerceptionResult(Path(policy_dir), write_metrics(out, history, counts), history)

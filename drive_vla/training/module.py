"""The LightningModule: weighted multi-task loss from ``model.losses``, per-task logging, open-loop L2 validation."""

from __future__ import annotations

import inspect
from typing import Any

import lightning as L
import torch
from torch import nn

from drive_vla.data.datamodule import move_batch
from drive_vla.training.config import LOSS_KEYS, LossWeights, OptimConfig
from drive_vla.training.metrics import OpenLoopL2
from drive_vla.training.optim import build_optimizer, build_scheduler
from drive_vla.types import Batch


def labelled_counts(batch: Batch) -> dict[str, int]:
    """Samples of ``batch`` that carry the label of each loss term (at least 1, for logging weights)."""
    n_traj = int(batch.traj_mask.any(dim=1).sum()) if batch.traj_mask is not None else len(batch)
    n_ctrl = int(batch.control_mask.sum()) if batch.control_mask is not None else 0
    n_text = sum(bool(s.targets.explanation) or bool(s.targets.qa) for s in batch.samples or ())
    n_boxes = sum(s.targets.boxes is not None or bool(s.targets.future_boxes) for s in batch.samples or ())
    counts = {"waypoint_ce": n_traj, "head_l1": n_traj, "head_kl": n_traj, "control_ce": n_ctrl, "text_ce": n_text}
    counts["bev_bce"] = n_boxes
    counts["cam_aux"] = sum(s.targets.boxes is not None for s in batch.samples or ())
    routes = batch.route_target_mask.tolist() if batch.route_target_mask is not None else [False] * len(batch)
    counts["free_l1"] = sum(s.targets.boxes is not None and r for s, r in zip(batch.samples or (), routes))
    counts["speed_ce"] = n_traj
    return {k: max(1, v) for k, v in counts.items()}


class DrivingModule(L.LightningModule):
    """Trains any model with ``losses(batch) -> dict[str, Tensor]`` and ``plan(batch) -> list[Plan]``.

    That contract covers ``DriveVLA`` (the VLA) and ``EgoMLPPlanner`` (the baseline). The training loss
    is ``sum(weight[k] * losses[k])`` over the keys the batch supports; every task loss is logged as
    ``train/<key>`` and ``val/<key>``; validation also plans each batch and logs ``val/l2_{1,2,3}s_m``
    and ``val/l2_avg_m``.

    Partially labelled data: the model averages each term over the samples that carry its label (their
    tokens or valid values); a batch without a label type returns no such term, adds 0 and never raises.
    Logged epoch means weight each batch by its number of labelled samples (``labelled_counts``).

    Args:
        model: the network (its ``state_dict`` is what checkpoints hold, under ``model.``).
        loss_weights: weight per task loss.
        optim: optimiser and schedule.
        frozen: submodules kept in eval mode while training (see ``adapt.freeze_modules``).
        extra_checkpoint: plain data stored in every checkpoint under "drive_vla" (the resolved configs),
            read back to refuse resuming with an incompatible model.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_weights: LossWeights,
        optim: OptimConfig,
        frozen: list[nn.Module] | None = None,
        extra_checkpoint: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss_weights = loss_weights
        self.optim_cfg = optim
        self._frozen = list(frozen or [])
        self.extra_checkpoint = dict(extra_checkpoint or {})
        self.val_l2 = OpenLoopL2()
        # validation batches are unrelated samples: plan without the temporal memory where a model has one
        self._plan_kwargs = {"memory": "off"} if "memory" in inspect.signature(model.plan).parameters else {}

    # ---- modes -------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> DrivingModule:
        super().train(mode)
        for m in self._frozen:  # frozen parts keep dropout off and batch-norm statistics fixed
            m.eval()
        return self

    # ---- steps -------------------------------------------------------------------------------------
    def weighted_loss(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """sum(weight * loss) over the returned tasks; unknown keys raise ValueError."""
        unknown = [k for k in losses if k not in LOSS_KEYS]
        if unknown:
            raise ValueError(f"model.losses: returned keys {unknown}, expected keys among {list(LOSS_KEYS)}")
        terms = [getattr(self.loss_weights, k) * v for k, v in losses.items() if getattr(self.loss_weights, k) > 0]
        if not terms:
            # a batch without any label this stage trains on (e.g. no QA sample in `align`) adds 0; the
            # product keeps the graph so every rank runs the same backward under DDP
            if losses:
                return torch.stack([v.float().sum() for v in losses.values()]).sum() * 0.0
            return torch.zeros((), device=self.device, requires_grad=True)
        return torch.stack(terms).sum()

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        losses = self.model.losses(batch)
        total = self.weighted_loss(losses)
        bs = len(batch)
        counts = labelled_counts(batch)
        for k, v in losses.items():
            self.log(f"train/{k}", v.detach(), batch_size=counts.get(k, bs))
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=bs)
        return total

    def on_validation_epoch_start(self) -> None:
        self.val_l2.reset()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        losses = self.model.losses(batch)
        bs = len(batch)
        counts = labelled_counts(batch)
        for k, v in losses.items():
            self.log(f"val/{k}", v.detach(), batch_size=counts.get(k, bs), sync_dist=True)
        self.log("val/loss", self.weighted_loss(losses).detach(), batch_size=bs, sync_dist=True)
        plans = self.model.plan(batch, **self._plan_kwargs)
        self.val_l2.update(plans, batch.traj[..., :2].float().cpu().numpy(), batch.traj_mask.cpu().numpy())

    def on_validation_epoch_end(self) -> None:
        sums = torch.tensor(self.val_l2.sum_m, dtype=torch.float64, device=self.device)
        counts = torch.tensor(self.val_l2.count, dtype=torch.float64, device=self.device)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
            counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        self.val_l2.sum_m, self.val_l2.count = sums.cpu().numpy(), counts.cpu().numpy()
        if counts.sum() == 0:
            return
        for k, v in self.val_l2.compute().items():
            self.log(f"val/{k}", v, prog_bar=k == "l2_avg_m")

    # ---- plumbing ----------------------------------------------------------------------------------
    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, Batch):
            return move_batch(batch, device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.optim_cfg)
        total = int(self.trainer.estimated_stepping_batches) if self.trainer is not None else 1
        scheduler = build_scheduler(optimizer, max(1, total), self.optim_cfg)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state: dict[str, Any] = dict(self.extra_checkpoint)
        state["torch_rng"] = torch.get_rng_state()
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        checkpoint["drive_vla"] = state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("drive_vla", {})
        if "torch_rng" in state:  # dropout continues exactly where the interrupted run stopped
            torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

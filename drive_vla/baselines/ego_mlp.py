"""Ego-state MLP planner (AD-MLP-like): ego state, past poses and command -> 6 waypoints; no cameras."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from drive_vla.config import ConfigError, from_dict
from drive_vla.types import FUTURE_STEPS, HISTORY_STEPS, STEP_DT_S, Batch, Command, Observation, Plan, Trajectory

CONFIG_FILE = "ego_mlp_config.json"
WEIGHTS_FILE = "model.safetensors"
EGO_DIM = 6  # EgoState.as_vector
IN_DIM = EGO_DIM + HISTORY_STEPS * 3 + len(Command)


@dataclass
class EgoMLPConfig:
    """Shape and input scaling of the ego MLP.

    Attributes:
        hidden: width of the hidden layers.
        layers: hidden layers.
        dropout: dropout after each hidden layer.
        pos_scale_m: positions are divided by this before entering the net and the output is multiplied by it.
        speed_scale_mps: speed (and acceleration) scale of the inputs.
        yaw_weight: weight of the heading term in the L1 loss (positions weigh 1).
    """

    hidden: int = 256
    layers: int = 3
    dropout: float = 0.0
    pos_scale_m: float = 10.0
    speed_scale_mps: float = 10.0
    yaw_weight: float = 0.1

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1:
            raise ValueError(f"hidden/layers: got {self.hidden}/{self.layers}, expected both >= 1")
        if self.pos_scale_m <= 0 or self.speed_scale_mps <= 0:
            raise ValueError(
                f"pos_scale_m/speed_scale_mps: got {self.pos_scale_m}/{self.speed_scale_mps}, expected > 0"
            )


class EgoMLPPlanner(nn.Module):
    """AD-MLP-style planner: no perception, only the ego's own state, history and command.

    It is a ``Planner`` (``predict_batch``/``reset``) and a trainable module for the training pipeline
    (``losses(batch)`` -> {"head_l1": ...}, ``plan(batch)`` -> list[Plan]).
    """

    def __init__(self, config: EgoMLPConfig | None = None) -> None:
        super().__init__()
        self.config = config or EgoMLPConfig()
        c = self.config
        dims = [IN_DIM] + [c.hidden] * c.layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            blocks += [nn.Linear(a, b), nn.GELU(), nn.Dropout(c.dropout)]
        self.mlp = nn.Sequential(*blocks, nn.Linear(dims[-1], FUTURE_STEPS * 3))

    # ---- tensors -----------------------------------------------------------------------------------
    def features(self, ego: torch.Tensor, history: torch.Tensor, command: torch.Tensor) -> torch.Tensor:
        """(B, 6) ego vector, (B, HISTORY_STEPS, 3) past poses, (B,) command -> (B, IN_DIM) scaled inputs."""
        c = self.config
        scale = ego.new_tensor([c.speed_scale_mps, c.speed_scale_mps, c.speed_scale_mps, 1.0, 1.0, 1.0])
        hist = history.clone()  # (B, H, 3)
        hist[..., :2] = hist[..., :2] / c.pos_scale_m
        onehot = nn.functional.one_hot(command.long(), len(Command)).to(ego.dtype)  # (B, 3)
        return torch.cat([ego / scale, hist.flatten(1), onehot], dim=1)

    def forward(self, ego: torch.Tensor, history: torch.Tensor, command: torch.Tensor) -> torch.Tensor:
        """-> (B, FUTURE_STEPS, 3) future poses [x, y, yaw] in the ego frame (metres, radians)."""
        out = self.mlp(self.features(ego, history, command)).view(-1, FUTURE_STEPS, 3)
        xy = out[..., :2] * self.config.pos_scale_m
        return torch.cat([xy, out[..., 2:]], dim=-1)

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Masked L1 on the future waypoints ("head_l1"), positions in metres plus weighted yaw."""
        if batch.traj is None or batch.traj_mask is None:
            raise ValueError("batch.traj: got None, expected target trajectories to train the ego MLP")
        pred = self(batch.ego, batch.history, batch.command)  # (B, T, 3)
        mask = batch.traj_mask.to(pred.dtype)  # (B, T)
        err = (pred - batch.traj.to(pred.dtype)).abs()  # (B, T, 3)
        per_step = err[..., :2].sum(-1) + self.config.yaw_weight * err[..., 2]  # (B, T)
        return {"head_l1": (per_step * mask).sum() / mask.sum().clamp(min=1.0)}

    @torch.no_grad()
    def plan(self, batch: Batch) -> list[Plan]:
        """One Plan per batch element (trajectory only)."""
        poses = self(batch.ego, batch.history, batch.command).float().cpu().numpy()  # (B, T, 3)
        return [Plan(trajectory=Trajectory(xy=p[:, :2].copy(), yaw_rad=p[:, 2].copy(), dt_s=STEP_DT_S)) for p in poses]

    # ---- Planner -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_batch(self, observations: Sequence[Observation]) -> list[Plan]:
        """Plans for a list of observations (cameras are ignored)."""
        if not observations:
            return []
        dev = next(self.parameters()).device
        ego = torch.from_numpy(np.stack([o.ego.as_vector() for o in observations])).to(dev)
        hist = torch.from_numpy(np.stack([o.history for o in observations]).astype(np.float32)).to(dev)
        cmd = torch.tensor([int(o.command) for o in observations], dtype=torch.long, device=dev)
        was_training = self.training
        self.eval()
        poses = self(ego, hist, cmd).float().cpu().numpy()
        self.train(was_training)
        return [Plan(trajectory=Trajectory(xy=p[:, :2].copy(), yaw_rad=p[:, 2].copy())) for p in poses]

    def predict(self, observation: Observation) -> Plan:
        return self.predict_batch([observation])[0]

    def reset(self) -> None:
        """Stateless: nothing to clear."""

    # ---- persistence -------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``model.safetensors`` and ``ego_mlp_config.json`` into ``path``."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt", "model": "ego_mlp"})
        meta = {"model": "ego_mlp", **asdict(self.config), "weights_sha256": _sha256(out / WEIGHTS_FILE)}
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path) -> EgoMLPPlanner:
        return load_ego_mlp(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_config_file(path: str | Path) -> tuple[Path, dict]:
    cfg_file = Path(path) / CONFIG_FILE
    if not cfg_file.is_file():
        raise ValueError(f"ego_mlp path: got {str(path)!r}, expected a directory holding {CONFIG_FILE}")
    try:
        data = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"ego_mlp config: {cfg_file}: not valid JSON ({exc}), expected an EgoMLPConfig") from None
    if not isinstance(data, dict) or data.pop("model", None) != "ego_mlp":
        raise ValueError(f"ego_mlp config: {cfg_file}: model: expected 'ego_mlp'")
    return cfg_file, data


def read_ego_mlp_config(path: str | Path) -> EgoMLPConfig:
    """The EgoMLPConfig saved in an exported ego-MLP directory."""
    cfg_file, data = _read_config_file(path)
    data.pop("weights_sha256", None)
    try:
        return from_dict(EgoMLPConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{cfg_file}: {exc}") from None


def load_ego_mlp(path: str | Path) -> EgoMLPPlanner:
    """Load an ego MLP saved by ``EgoMLPPlanner.save_pretrained`` (safetensors + JSON), in eval mode.

    Raises:
        ValueError: a missing, truncated or modified file (checked against the sha256 the config records),
            naming the file and what was expected.
    """
    from safetensors import SafetensorError

    model = EgoMLPPlanner(read_ego_mlp_config(path))
    weights = Path(path) / WEIGHTS_FILE
    if not weights.is_file():
        raise ValueError(f"ego_mlp path: got {str(path)!r}, expected {WEIGHTS_FILE} inside")
    expected = _read_config_file(path)[1].get("weights_sha256")
    if expected is not None:  # exports written before the checksum was recorded have none
        digest = _sha256(weights)
        if digest != expected:
            raise ValueError(
                f"ego_mlp weights: {weights}: got sha256 {digest[:12]}..., expected {str(expected)[:12]}... as "
                f"recorded in {CONFIG_FILE} (the file is truncated, corrupt or was modified)"
            )
    try:
        model.load_state_dict(load_file(str(weights)))
    except (SafetensorError, RuntimeError) as exc:
        raise ValueError(
            f"ego_mlp weights: {weights}: {type(exc).__name__}: {exc}; expected a complete safetensors file "
            f"matching {CONFIG_FILE}"
        ) from exc
    return model.eval()

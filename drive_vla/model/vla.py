"""DriveVLA: vision tokenizer + state encoder + causal LM (fed inputs_embeds) + planner head; losses and plan()."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drive_vla.data.labels import META_ACTIONS, meta_action_sentence
from drive_vla.model.bev_aux import BEVAuxHead
from drive_vla.model.camera_aux import CameraAuxHead
from drive_vla.model.config import DEFAULT_EXPLAIN_QUESTION, ModelConfig
from drive_vla.model.free_space import FreeSpaceHead
from drive_vla.model.lm import build_lm
from drive_vla.model.planner_head import PlannerHead
from drive_vla.model.prompt import PromptLayout, Seg
from drive_vla.model.state import (
    SPEED_ONLY_EGO,
    StateEncoder,
    ego_status_features,
    route_target_inputs,
    scalar_inputs,
)
from drive_vla.model.vision import VisionTokenizer
from drive_vla.types import STEP_DT_S, Batch, Control, Plan, Sample, Trajectory


def decel_weights(gt: torch.Tensor, mask: torch.Tensor, speed_mps: torch.Tensor, per_mps: float) -> torch.Tensor:
    """(B,) head_l1 sample weights 1 + per_mps * max(0, current speed - the expert's speed over the last
    second of the horizon), from (B, T, 3) target poses; samples without the whole future weigh 1."""
    steps_per_s = round(1.0 / STEP_DT_S)
    end = gt[:, -1, :2] - gt[:, -1 - steps_per_s, :2]  # the distance driven in the last second
    slowdown = (speed_mps.to(gt.dtype) - end.norm(dim=-1)).clamp(min=0.0)
    return torch.where(mask.all(dim=1), 1.0 + per_mps * slowdown, torch.ones_like(slowdown))


LOSS_SEGMENTS = ((Seg.ACTION, "waypoint_ce"), (Seg.CONTROL, "control_ce"), (Seg.TEXT, "text_ce"))


def fill_incomplete(poses: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(T, 3) poses with masked steps replaced by the last valid pose (the origin if none), so a plan with
    missing waypoints still has tokens to teacher-force; those tokens get no loss."""
    out = poses.astype(np.float64).copy()
    last = np.zeros(3)
    for k in range(len(out)):
        if mask[k]:
            last = out[k]
        else:
            out[k] = last
    return out


class DriveVLA(nn.Module):
    """The VLA model.

    Submodules: ``vision`` (VisionTokenizer), ``state_encoder`` (StateEncoder), ``lm`` (the Hugging Face
    causal LM, so peft can wrap it), ``planner_head`` (PlannerHead), ``bev_head`` (BEVAuxHead, training only;
    None without ``bev_aux``). Plain attributes: ``layout``
    (PromptLayout), ``action_tokenizer``, ``control_tokenizer`` (None without control tokens),
    ``text_tokenizer``.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        lm: nn.Module,
        text_tokenizer: Any,
        action_tokenizer: Any,
        control_tokenizer: Any | None = None,
    ) -> None:
        super().__init__()
        if cfg.control_tokens and control_tokenizer is None:
            raise ValueError("control_tokenizer: got None, expected a ControlTokenizer (config control_tokens=true)")
        self.cfg = cfg
        hidden = int(lm.config.hidden_size)
        self.vision = VisionTokenizer(cfg.vision, hidden)
        self.state_encoder = StateEncoder(
            hidden,
            cfg.state_tokens,
            route_target=cfg.route_target,
            speed_limit=cfg.speed_limit,
            junction=cfg.junction,
            unknown_ego=cfg.ego_dropout > 0.0,
            junction_range_m=cfg.junction_range_m,
        )
        self.lm = lm
        self.planner_head = PlannerHead(
            cfg.planner_head,
            hidden,
            route_target=cfg.route_target,
            speed_limit=cfg.speed_limit,
            junction=cfg.junction,
            unknown_ego=cfg.ego_dropout > 0.0,
            junction_range_m=cfg.junction_range_m,
        )
        self.bev_head = BEVAuxHead(cfg.bev_aux, hidden) if cfg.bev_aux.enabled else None
        self.camera_head = CameraAuxHead(cfg.camera_aux, cfg.vision.dim) if cfg.camera_aux.enabled else None
        self.free_head = FreeSpaceHead(cfg.free_space, hidden, cfg.vision.dim) if cfg.free_space.enabled else None
        self.action_tokenizer = action_tokenizer
        self.control_tokenizer = control_tokenizer if cfg.control_tokens else None
        self.text_tokenizer = text_tokenizer
        self.layout = PromptLayout(
            text_tokenizer,
            action_tokenizer.vocab_size,
            self.control_tokenizer.vocab_size if self.control_tokenizer is not None else 0,
            num_visual=self.vision.num_tokens,
            num_state=cfg.state_tokens,
            system_prompt=cfg.system_prompt,
        )
        # after plan(): {"generated_tokens": per row, "forward_passes": LM calls} (for benchmarks)
        self.last_decode_stats: dict[str, Any] = {}
        self.candidate_index_cache: dict[tuple, torch.Tensor] = {}  # decoding's candidate id tensors
        self.candidate_rows_cache: dict[tuple, tuple] = {}  # the LM head's rows of each candidate set
        self.last_speed_cap: list[float] = []  # after plan() with free_space.cap_speed: each row's cap, m/s
        if lm.get_input_embeddings().num_embeddings < self.layout.vocab_size:
            lm.resize_token_embeddings(self.layout.vocab_size, mean_resizing=False)

    @classmethod
    def build(
        cls,
        cfg: ModelConfig,
        action_tokenizer: Any,
        control_tokenizer: Any | None = None,
        fit_texts: Iterable[str] | None = None,
    ) -> DriveVLA:
        """Build the LM as ``cfg.lm`` says (offline; a "corpus" text tokenizer is fitted on ``fit_texts``)
        and the rest with random weights."""
        lm, text_tokenizer = build_lm(cfg.lm, fit_texts=fit_texts)
        model = cls(cfg, lm, text_tokenizer, action_tokenizer, control_tokenizer)
        if cfg.dtype == "bfloat16":
            model.to(torch.bfloat16)
        return model

    @property
    def hidden_size(self) -> int:
        return int(self.lm.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return self.planner_head.pose_scale.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm.get_input_embeddings().weight.dtype

    def reset(self) -> None:
        """Clear the temporal memory of the vision tokenizer."""
        self.vision.reset_memory()

    # -- inputs ---------------------------------------------------------------------------------------
    def encode_observations(
        self, batch: Batch, memory: str = "off", features: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(visual tokens (B, V, H), state tokens (B, S, H)) of a batch; with a ``features`` list, the
        vision backbone's feature maps (B, N_cam, D, fh, fw) are appended to it."""
        dev = self.device
        if features is not None:
            vis, maps = self.vision(batch.images.to(dev), memory=memory, return_features=True)
            features.append(maps)
        else:
            vis = self.vision(batch.images.to(dev), memory=memory)  # (B, V, H)
        route, route_mask = route_target_inputs(batch, dev)
        ego, history = self.ego_inputs(batch)
        limit, limit_mask = scalar_inputs(batch, "speed_limit", dev)
        junction, junction_mask = scalar_inputs(batch, "junction", dev)
        state = self.state_encoder(
            ego,
            history,
            batch.command.to(dev),
            route,
            route_mask,
            limit,
            limit_mask,
            junction,
            junction_mask,
            ego_known=self.ego_known(batch),
        )
        return vis.to(self.dtype), state.to(self.dtype)

    def needs_feature_maps(self) -> bool:
        """Whether a head reads the backbone's feature maps (the camera-space task, a camera-fed free-distance head)."""
        return self.camera_head is not None or (self.free_head is not None and self.cfg.free_space.source == "camera")

    def free_space_input(self, batch: Batch, route: torch.Tensor, feature_maps: list | None, hidden: torch.Tensor):
        """What the free-distance head reads for its ``source``: the hidden state at ``<plan>``, the front camera's
        feature map (with the route points), or the front camera's normalised image (with the route points)."""
        source = self.cfg.free_space.source
        if source == "camera":
            return feature_maps[0], route
        if source == "own":
            return self.vision.preprocess(batch.images[:, :1]), route
        return hidden

    def ego_known(self, batch: Batch) -> torch.Tensor:
        """(B,) bool: where the batch's ego state is known (``EgoState.source`` not "unknown")."""
        if batch.ego_known is None:
            return torch.ones(len(batch), dtype=torch.bool, device=self.device)
        return batch.ego_known.to(self.device)

    def ego_inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 6) ego vector and (B, HISTORY_STEPS, 3) past poses as the model reads them: all of it, or with
        ``ego_inputs: speed`` only the speed (and the source flag), everything else zero; all zero where the
        ego state is unknown."""
        dev = self.device
        known = self.ego_known(batch)
        ego, history = batch.ego.to(dev), batch.history.to(dev)
        ego = torch.where(known[:, None], ego, torch.zeros_like(ego))
        history = torch.where(known[:, None, None], history, torch.zeros_like(history))
        if self.cfg.ego_inputs == "speed":
            keep = torch.zeros(ego.shape[1], dtype=ego.dtype, device=dev)
            keep[list(SPEED_ONLY_EGO)] = 1.0
            ego, history = ego * keep, torch.zeros_like(history)
        return ego, history

    def head_inputs(self, batch: Batch) -> dict[str, torch.Tensor | None]:
        """The planner head's inputs besides the hidden state: ego speed and, when the head reads them
        (``planner_head.ego_status``), the ego-status features, and with ``route_target`` the route points."""
        dev = self.device
        kind = self.cfg.planner_head.ego_status
        ego, history = self.ego_inputs(batch)  # the speed is kept in both ego_inputs kinds, 0 where unknown
        feats = None
        if kind != "none":
            feats = ego_status_features(ego, history, batch.command.to(dev), lateral=kind == "full")
        known = self.ego_known(batch)
        inputs = {"speed_mps": ego[:, 0], "ego_status": feats}
        if not bool(known.all()):
            inputs["ego_known"] = known
        if self.cfg.route_target:
            inputs["route_target"], inputs["route_mask"] = route_target_inputs(batch, dev)
        if self.cfg.speed_limit:
            inputs["speed_limit"], inputs["limit_mask"] = scalar_inputs(batch, "speed_limit", dev)
        if self.cfg.junction:
            inputs["junction"], inputs["junction_mask"] = scalar_inputs(batch, "junction", dev)
        return inputs

    def embed(self, ids: torch.Tensor, visual: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """LM input embeddings of ``ids`` (B, L) with the ``<image>``/``<state>`` placeholders replaced."""
        emb = self.lm.get_input_embeddings()(ids)  # (B, L, H)
        sp = self.layout.special
        emb = emb.masked_scatter((ids == sp["image"])[..., None], visual)
        return emb.masked_scatter((ids == sp["state"])[..., None], state)

    def prompt_batch(self, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded prompt ids (B, L) and attention mask (B, L) of the instructions."""
        rows = [self.layout.prompt_ids(text) for text in instructions]
        return self._pad(rows)

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.layout.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids.to(self.device), mask.to(self.device)

    # -- targets --------------------------------------------------------------------------------------
    def _action_target(self, poses: np.ndarray, mask: np.ndarray) -> tuple[list[int], list[bool]]:
        """Local action ids of a plan and, per id, whether it is a loss target."""
        complete = bool(mask.all())
        filled = poses if complete else fill_incomplete(poses, mask)
        traj = Trajectory(xy=filled[:, :2].astype(np.float32), yaw_rad=filled[:, 2].astype(np.float32))
        ids = self.action_tokenizer.encode(traj)
        if complete:
            return ids, [True] * len(ids)
        token_steps = getattr(self.action_tokenizer, "token_steps", None)
        if token_steps is None:  # no per-token waypoint map: an incomplete plan gets no waypoint loss
            return ids, [False] * len(ids)
        return ids, [bool(mask[k]) for k in token_steps(ids)]

    def _text_target(self, sample: Sample | None) -> tuple[str, str] | None:
        """One (question, answer) of the sample: the explanation or a QA pair (random while training).

        The explanation answer starts with the sentence of the sample's meta-action ("Slow down and turn
        left. ..."), so what the model says it does can be read back (labels.meta_action_from_text).
        """
        if sample is None:
            return None
        options = []
        if sample.targets.explanation:
            meta = sample.targets.meta_action
            known = meta in META_ACTIONS  # a labels file may carry another vocabulary: no sentence then
            answer = (
                f"{meta_action_sentence(meta)} {sample.targets.explanation}" if known else sample.targets.explanation
            )
            options.append((DEFAULT_EXPLAIN_QUESTION, answer))
        options += [qa for qa in sample.targets.qa if qa[1].strip()]
        if not options:
            return None
        pick = int(torch.randint(len(options), ()).item()) if self.training else 0
        return options[pick]

    def _control_target(self, batch: Batch, i: int) -> tuple[list[int], bool]:
        labelled = batch.control_mask is not None and bool(batch.control_mask[i])
        if not labelled:
            return self.control_tokenizer.encode(Control()), False
        steer, throttle, brake = (float(v) for v in batch.control[i])
        return self.control_tokenizer.encode(Control(steer=steer, throttle=throttle, brake=brake)), True

    # -- training -------------------------------------------------------------------------------------
    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Teacher-forced losses of a batch with targets.

        Returns:
            "waypoint_ce" (waypoint tokens and their end token; masked waypoints excluded), "control_ce"
            (where ``batch.control_mask``), "text_ce" (explanation/QA answers of ``batch.samples``),
            "head_l1" (planner head, valid steps only), "speed_ce" (its target-speed classes), "head_kl" (VAE head), "cam_aux" (the camera-space task, ``cfg.camera_aux``), "free_l1" (the free-distance head) and "bev_bce" (the occupancy
            task, ``cfg.bev_aux``) — only the keys the batch supports. Each is a mean over its tokens/values.
        """
        if batch.traj is None or batch.traj_mask is None:
            raise ValueError("batch.traj: got None, expected target trajectories (build it with Batch.from_samples)")
        if self.training and self.cfg.ego_dropout > 0.0:  # teach the learned "unknown ego" inputs
            hide = torch.rand(len(batch), device=self.device) < self.cfg.ego_dropout
            batch = dataclasses.replace(batch, ego_known=self.ego_known(batch) & ~hide)
        traj = batch.traj.detach().cpu().numpy()  # (B, T, 3)
        traj_mask = batch.traj_mask.detach().cpu().numpy().astype(bool)  # (B, T)
        rows, segs, plan_pos = [], [], []
        for i in range(len(batch)):
            prompt = self.layout.prompt_ids(batch.instructions[i])
            action_ids, weight = self._action_target(traj[i], traj_mask[i])
            ctrl_ids, ctrl_ok = self._control_target(batch, i) if self.control_tokenizer is not None else (None, False)
            answer = self.layout.answer(
                action_ids,
                ctrl_ids,
                action_weight=weight,
                control_supervised=ctrl_ok,
                qa=self._text_target(batch.samples[i] if batch.samples else None),
            )
            rows.append(prompt + answer.ids)
            segs.append([Seg.NONE] * len(prompt) + answer.segs)
            plan_pos.append(len(prompt) - 1)
        ids, attn = self._pad(rows)  # (B, L)
        seg = torch.zeros_like(ids)
        for i, s in enumerate(segs):
            seg[i, : len(s)] = torch.tensor([int(v) for v in s])
        feature_maps: list[torch.Tensor] | None = [] if self.needs_feature_maps() and batch.samples else None
        visual, state = self.encode_observations(batch, features=feature_maps)
        hidden = self.lm.get_decoder()(inputs_embeds=self.embed(ids, visual, state), attention_mask=attn)
        hidden = hidden.last_hidden_state  # (B, L, H)
        head_out = self.lm.get_output_embeddings()
        out: dict[str, torch.Tensor] = {}
        h_prev, tgt, tgt_seg = hidden[:, :-1], ids[:, 1:], seg[:, 1:]  # position t predicts token t+1
        for kind, name in LOSS_SEGMENTS:
            sel = tgt_seg == int(kind)
            if bool(sel.any()):
                out[name] = F.cross_entropy(head_out(h_prev[sel]).float(), tgt[sel])
        plan_hidden = hidden[torch.arange(len(batch), device=ids.device), torch.tensor(plan_pos, device=ids.device)]
        gt = batch.traj.to(self.device, torch.float32)
        gt_mask = batch.traj_mask.to(self.device)
        inputs = self.head_inputs(batch)
        poses, kl, speed_logits = self.planner_head(plan_hidden, gt.to(plan_hidden.dtype), gt_mask, **inputs)
        valid = gt_mask[..., None].expand_as(gt).float()  # (B, T, 3)
        if self.cfg.planner_head.decel_weight > 0.0:
            valid = (
                valid
                * decel_weights(gt, gt_mask, inputs["speed_mps"], self.cfg.planner_head.decel_weight)[:, None, None]
            )
        if bool(valid.any()):
            out["head_l1"] = ((poses.float() - gt).abs() * valid).sum() / valid.sum()
        if speed_logits is not None:
            speed_ce = self.planner_head.speed.loss(speed_logits, gt, gt_mask, inputs["speed_mps"])
            if speed_ce is not None:
                out["speed_ce"] = speed_ce
        if kl is not None:
            out["head_kl"] = self.cfg.planner_head.kl_weight * kl.float().mean()
        if self.bev_head is not None and batch.samples:
            bev = self.bev_head.loss(plan_hidden, batch.samples)
            if bev is not None:
                out["bev_bce"] = bev
        if self.free_head is not None and batch.samples:
            route, route_mask = route_target_inputs(batch, self.device)
            source = self.free_space_input(batch, route, feature_maps, plan_hidden)
            free = self.free_head.loss(source, batch.samples, route, route_mask)
            if free is not None:
                out["free_l1"] = free
        if feature_maps and self.camera_head is not None:
            image_hw = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
            cam = self.camera_head.loss(feature_maps[0], batch.samples, batch.intrinsics, batch.extrinsics, image_hw)
            if cam is not None:
                out["cam_aux"] = cam
        return out

    # -- inference ------------------------------------------------------------------------------------
    @torch.no_grad()
    def plan(self, batch: Batch, explain: bool = False, question: str | None = None, memory: str = "off") -> list[Plan]:
        """Plans of a batch (no gradients).

        Args:
            batch: observations (targets are ignored).
            explain: also generate an explanation (or the answer to ``question``) into ``Plan.text``.
            question: the question to answer; implies ``explain``; default "What are you doing and why?".
            memory: temporal memory use of the vision tokenizer: "off" (default: independent samples, as in
                validation), "update" (a drive: read the past frames, then store this one; what
                ``DrivingPolicy.predict`` uses) or "read".

        Returns:
            One Plan per row; ``text`` is None unless an explanation was asked for.
        """
        from drive_vla.model.generate import plan_batch

        return plan_batch(self, batch, explain=explain or question is not None, question=question, memory=memory)

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts per part (tied LM embeddings counted once)."""
        counts = {}
        for name in ("vision", "state_encoder", "lm", "planner_head"):
            seen = {p.data_ptr(): p.numel() for p in getattr(self, name).parameters()}
            counts[name] = int(sum(seen.values()))
        counts["vision_backbone"] = int(sum(p.numel() for p in self.vision.backbone.parameters()))
        counts["total"] = int(sum({p.data_ptr(): p.numel() for p in self.parameters()}.values()))
        return counts

"""Batched, KV-cached greedy decoding of plans: constrained waypoint and control tokens, optional free text.

Every row follows the layout of ``prompt.py``. Waypoint tokens are restricted to what the action
tokenizer's grammar (``allowed_next``) permits at each step, so an invalid trajectory cannot be produced;
control tokens likewise. Tokens that are forced (a single candidate, ``</plan>``, the question text) are
fed without a decoding step, several per forward pass. Rows advance together; a row that needs fewer
tokens in a step is padded with masked positions, so rows of different lengths share one KV cache.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from drive_vla.data.labels import meta_action_from_text
from drive_vla.model import lean_decoder
from drive_vla.model.config import DEFAULT_EXPLAIN_QUESTION
from drive_vla.model.prompt import PromptLayout
from drive_vla.model.state import route_target_inputs, scalar_inputs
from drive_vla.types import Batch, Plan, Trajectory

if TYPE_CHECKING:
    from drive_vla.model.vla import DriveVLA

TEXT = "text"  # candidates sentinel: free text under the text mask


@dataclass
class RowDecoder:
    """Decoding state of one row: which segment it is in and what it has produced."""

    layout: PromptLayout
    action_tokenizer: Any
    control_tokenizer: Any | None
    question_ids: list[int] | None  # None: stop after the plan
    max_text_tokens: int
    phase: str = "action"  # action -> control -> close -> question -> text -> done
    actions: list[int] = field(default_factory=list)
    controls: list[int] = field(default_factory=list)
    text: list[int] = field(default_factory=list)
    generated: int = 0  # tokens chosen from logits (decoding steps of this row)
    index_cache: dict[tuple, torch.Tensor] = field(default_factory=dict)  # may be shared by rows
    _q: int = 0

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def candidates(self) -> list[int] | str | None:
        """LM ids allowed next (a single one = forced), TEXT for free text, or None when finished."""
        lay = self.layout
        if self.phase == "action":
            if len(self.actions) >= self.action_tokenizer.max_tokens:  # guards the loop against a grammar bug
                return [lay.action_end_id]
            allowed, may_end = self.action_tokenizer.allowed_next(self.actions)
            return lay.action_to_lm(allowed) + ([lay.action_end_id] if may_end or not allowed else [])
        if self.phase == "control":
            allowed, _ = self.control_tokenizer.allowed_next(self.controls)
            if allowed:
                return lay.control_to_lm(allowed)
            self.phase = "close"
        if self.phase == "close":
            if self.question_ids is None:
                self.phase = "done"
                return None
            return [lay.special["plan_end"]]
        if self.phase == "question":
            if self._q < len(self.question_ids):
                return [self.question_ids[self._q]]
            self.phase = "text"
        if self.phase == "text":
            if len(self.text) >= self.max_text_tokens:
                self.phase = "done"
                return None
            return TEXT
        return None

    def accept(self, token: int) -> None:
        """Record ``token`` (an LM id among the current candidates) and move to the next segment."""
        lay = self.layout
        if self.phase == "action":
            if token == lay.action_end_id:
                self.phase = "control" if self.control_tokenizer is not None else "close"
            else:
                self.actions.append(token - lay.action_offset)
        elif self.phase == "control":
            self.controls.append(token - lay.control_offset)
        elif self.phase == "close":
            self.phase = "question"
        elif self.phase == "question":
            self._q += 1
        elif self.phase == "text":
            if token == lay.eos_id:
                self.phase = "done"
            else:
                self.text.append(token)

    def _index(self, cands: list[int], device: torch.device) -> tuple[tuple, torch.Tensor]:
        """(key, candidate ids as a tensor), cached (grammars repeat the same candidate sets)."""
        key = (str(device), *cands)
        found = self.index_cache.get(key)
        if found is None:
            if len(self.index_cache) > 4096:  # a grammar with many distinct sets: keep memory bounded
                self.index_cache.clear()
            found = self.index_cache[key] = torch.tensor(cands, device=device)
        return key, found

    def step(self, logits: RowLogits, text_mask: torch.Tensor) -> list[int]:
        """Choose the next token from ``logits`` (this row's), then take every forced token after it.

        Returns:
            The LM ids to feed next (empty once the row needs no more logits).
        """
        feed: list[int] = []
        cands = self.candidates()
        while cands is not None:
            if cands == TEXT:
                if feed:
                    break
                token = int(logits.full().masked_fill(~text_mask, float("-inf")).argmax())
                self.generated += 1
            elif len(cands) == 1:
                token = cands[0]
            elif feed:
                break  # logits are stale once a token was appended; decide after feeding
            else:
                key, index = self._index(cands, logits.device)
                token = cands[int(logits.at(index, key).argmax())]
                self.generated += 1
            self.accept(token)
            feed.append(token)
            cands = self.candidates()
        return [] if self.done else feed


class StepLogits:
    """The LM head's logits of one decoding step, computed only where they are read: a constrained step (the
    waypoint and control grammars allow a few hundred ids of a vocabulary that may hold 150k) multiplies a
    row's hidden state by those rows of the head's weight alone; free text computes the whole vocabulary,
    once for every row of the batch.

    ``weight`` is the head's (V, H) float weight, or None where it is not a plain matrix (a quantized or
    wrapped head): then the whole vocabulary is computed by ``head`` and indexed. ``rows_cache`` (a dict
    kept across steps and calls) holds the gathered rows of each candidate set, so a step reads them instead
    of copying them out of the head again; an entry is used only while the head's weight is the same tensor
    at the same version (an optimiser step or a load makes it stale).
    """

    ROWS_CACHE_SETS = 32  # gathered row sets kept at most (a few per grammar; each is len(set) x H floats)

    def __init__(
        self,
        hidden: torch.Tensor,
        head: Any,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        rows_cache: dict | None = None,
    ):
        self.hidden, self.head, self.weight, self.bias = hidden, head, weight, bias  # hidden: (B, H)
        self.rows_cache = rows_cache
        self._full: torch.Tensor | None = None

    def rows(self, index: torch.Tensor, key: tuple | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the head's weight rows of ``index``, their bias or None), from ``rows_cache`` where it holds them."""
        w, b = self.weight, self.bias
        if key is None or self.rows_cache is None:
            return w[index], None if b is None else b[index]
        b_version = None if b is None else b._version
        found = self.rows_cache.get(key)
        if found is None or found[0] is not w or found[1] != w._version or found[2] is not b or found[3] != b_version:
            if len(self.rows_cache) >= self.ROWS_CACHE_SETS:
                self.rows_cache.clear()
            rows = w.detach()[index]
            found = self.rows_cache[key] = (w, w._version, b, b_version, rows, None if b is None else b.detach()[index])
        return found[4], found[5]

    def full(self) -> torch.Tensor:
        """(B, V) logits of every row, computed on first use."""
        if self._full is None:
            self._full = self.head(self.hidden).float()
        return self._full

    def row(self, i: int) -> RowLogits:
        return RowLogits(self, i)


class RowLogits:
    """One row of a ``StepLogits``: what ``RowDecoder.step`` reads."""

    def __init__(self, step: StepLogits, i: int) -> None:
        self.step, self.i = step, i
        self.device = step.hidden.device

    def full(self) -> torch.Tensor:
        return self.step.full()[self.i]

    def at(self, index: torch.Tensor, key: tuple | None = None) -> torch.Tensor:
        """Logits of the ids in ``index``; ``key`` names the candidate set for the step's ``rows_cache``."""
        step = self.step
        if step.weight is None or step._full is not None:
            return self.full()[index]
        w, b = step.rows(index, key)
        out = w @ step.hidden[self.i]
        return (out if b is None else out + b).float()


def head_matrix(head: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(weight (V, H), bias or None) of a plain ``nn.Linear`` LM head; (None, None) for any other head."""
    if type(head) is torch.nn.Linear:
        return head.weight, head.bias
    return None, None


def plan_with_text(traj: Trajectory, controls: Any, text: str | None, timings_ms: dict[str, float]) -> Plan:
    """A decoded Plan; with generated ``text``, ``meta_action`` is the meta-action its sentence states
    (labels.meta_action_from_text, None when the text states none)."""
    meta = meta_action_from_text(text) if text is not None else None
    return Plan(trajectory=traj, controls=controls, text=text, meta_action=meta, timings_ms=dict(timings_ms))


def _lean(model: DriveVLA) -> bool:
    """Whether inference passes use ``lean_decoder`` (the config asks for it and it supports the LM)."""
    if not model.cfg.lean_decoding:
        return False
    held = model.__dict__.get("_lean_ok")
    if held is None or held[0] is not model.lm:  # checked once per LM object (a LoRA wrap is another one)
        held = model.__dict__["_lean_ok"] = (model.lm, lean_decoder.supports(model.lm))
    return held[1] and lean_decoder.weights_whole(model.lm)


def _forward(model: DriveVLA, embeds: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any) -> Any:
    if _lean(model):
        return lean_decoder.lean_forward(model.lm, embeds, mask, pos, cache)
    # Without padding (e.g. a single observation) the plain causal mask is exact and cheaper to build.
    attn = None if bool(mask.all()) else mask
    return model.lm.get_decoder()(
        inputs_embeds=embeds, attention_mask=attn, position_ids=pos, past_key_values=cache, use_cache=True
    )


def _logit_rows(head: Any) -> int:
    """Vocabulary rows of the LM head: an nn.Linear, its dynamic INT8 form (``weight()`` is a method) or a
    peft wrapper (no ``out_features``)."""
    n = getattr(head, "out_features", None)
    if n is None:
        w = head.weight
        n = (w() if callable(w) else w).shape[0]
    return int(n)


def _system_prefix(model: DriveVLA) -> Any:
    """The KV cache of the system prompt alone (batch 1), cached on the model and recomputed whenever the
    weights, device or dtype changed (an optimiser step bumps the embedding's version counter); None in
    training mode or without a system prompt."""
    sys_ids = model.layout.system_ids
    if model.training or not sys_ids:
        return None
    emb = model.lm.get_input_embeddings().weight
    # every LM parameter's version: an optimiser step on any of them (LoRA adapters too) invalidates the cache
    versions = sum(p._version for p in model.lm.parameters())
    key = (id(model.lm), emb.device, emb.dtype, versions, emb.data_ptr(), _lean(model))
    held = model.__dict__.get("_system_kv")
    if held is None or held[0] != key:
        ids = torch.tensor([sys_ids], device=emb.device)
        pos = torch.arange(len(sys_ids), device=emb.device)[None]
        with torch.no_grad():
            out = _forward(model, model.lm.get_input_embeddings()(ids), torch.ones_like(ids), pos, None)
        held = model.__dict__["_system_kv"] = (key, out.past_key_values)
    return held[1]


def path_length(poses: torch.Tensor) -> torch.Tensor:
    """(B, T, 3) poses -> (B, T) length of the path ego -> waypoint 1 -> ... -> waypoint t."""
    xy = torch.cat([torch.zeros_like(poses[:, :1, :2]), poses[..., :2]], dim=1)
    return (xy[:, 1:] - xy[:, :-1]).norm(dim=-1).cumsum(1)


def cap_to_free_space(
    model: DriveVLA,
    last: Any,
    poses: torch.Tensor,
    speed: torch.Tensor,
    has_route: torch.Tensor,
    junction: tuple[torch.Tensor, torch.Tensor] | None = None,
):
    """Re-time the rows whose planned speed exceeds the free-distance head's cap (rows where ``has_route``),
    and where ``junction`` ((B,) distances to the route's yield line and their mask) is given, the approach cap
    before that line (``free_space.junction_approach_mps``); the cap of every row goes to ``model.last_speed_cap`` (m/s, NaN where not applied)."""
    from drive_vla.model.free_space import junction_approach_cap, plan_speed
    from drive_vla.model.planner_head import retime

    cap = model.free_head.speed_cap(last).to(poses.dtype)
    if junction is not None:
        dist, known = (t.to(cap.device) for t in junction)
        cap = torch.minimum(cap, junction_approach_cap(model.cfg.free_space, dist.to(cap.dtype), known))
    planned = plan_speed(poses)
    slow = has_route & (planned > cap + 0.5)
    if bool(slow.any()):  # from the slower of the current and the planned speed
        start = torch.minimum(speed.to(poses.dtype), planned)
        timed = retime(poses[slow], start[slow], cap[slow], ramp_s=1.0)
        # the cap never takes a waypoint farther along than the plan had it (a plan that stops later keeps its stop)
        farther = path_length(timed) > path_length(poses[slow]) + 1e-6
        poses = poses.clone()
        poses[slow] = torch.where(farther[..., None], poses[slow], timed)
    model.last_speed_cap = torch.where(has_route, cap, torch.full_like(cap, float("nan"))).tolist()
    return poses


def plan_batch(
    model: DriveVLA, batch: Batch, explain: bool = False, question: str | None = None, memory: str = "off"
) -> list[Plan]:
    """Plans of a batch: one prefill, then (tokens mode or explanations) constrained greedy decoding."""
    t0 = time.perf_counter()
    cfg, lay = model.cfg, model.layout
    model.last_speed_cap = []
    b = len(batch)
    capped = cfg.output_mode == "head" and model.free_head is not None and cfg.free_space.cap_speed
    maps: list[torch.Tensor] | None = [] if capped and cfg.free_space.source == "camera" else None
    visual, state = model.encode_observations(batch, memory=memory, features=maps)
    ids, mask = model.prompt_batch(batch.instructions)  # (B, L)
    embeds = model.embed(ids, visual, state)
    t_vision = time.perf_counter()

    lengths = mask.sum(1)  # (B,)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    prefix = _system_prefix(model) if cfg.reuse_system_kv else None
    p = 0 if prefix is None else prefix.get_seq_length()
    cache = None
    if isinstance(prefix, lean_decoder.LeanCache):  # the system prompt's keys and values, computed once
        cache = prefix.expanded(b, ids.shape[1] + 64)
    elif prefix is not None:  # the same in Hugging Face's cache: only the rest of the prompt is prefilled
        cache = copy.deepcopy(prefix)
        if b > 1:
            cache.batch_repeat_interleave(b)
    out = _forward(model, embeds[:, p:], mask, pos[:, p:], cache)
    rows_idx = torch.arange(b, device=ids.device)
    last = out.last_hidden_state[rows_idx, lengths - 1 - p]  # (B, H) hidden at <plan>
    cache = out.past_key_values
    passes = 1
    t_prefill = time.perf_counter()

    head_traj = None
    if cfg.output_mode == "head":
        inputs = model.head_inputs(batch)
        poses = model.planner_head(last, **inputs).poses
        if capped:
            route, has_route = route_target_inputs(batch, last.device)
            source = model.free_space_input(batch, route, maps, last)
            approach = cfg.free_space.junction_approach_mps > 0
            junction = scalar_inputs(batch, "junction", last.device) if approach else None
            poses = cap_to_free_space(model, source, poses, inputs["speed_mps"], has_route, junction)
        head_traj = poses.float().cpu().numpy()  # (B, T, 3)
    t_head = time.perf_counter()

    rows: list[RowDecoder] = []
    if cfg.output_mode == "tokens" or explain:
        q_ids = lay.question_ids(question or DEFAULT_EXPLAIN_QUESTION) if explain else None
        cache_ids = model.candidate_index_cache  # kept on the model: candidate sets repeat across calls
        rows = [
            RowDecoder(
                lay,
                model.action_tokenizer,
                model.control_tokenizer,
                q_ids,
                cfg.max_explanation_tokens,
                index_cache=cache_ids,
            )
            for _ in range(b)
        ]
        head_w = model.lm.get_output_embeddings()
        text_mask = lay.text_logit_mask(_logit_rows(head_w), ids.device)
        weight, bias = head_matrix(head_w) if model.cfg.restrict_logits else (None, None)
        next_pos = lengths.clone()
        while True:
            logits = StepLogits(last, head_w, weight, bias, model.candidate_rows_cache)
            feeds = [row.step(logits.row(i), text_mask) if not row.done else [] for i, row in enumerate(rows)]
            width = max(len(f) for f in feeds)
            if width == 0:
                break
            step_ids = torch.full((b, width), lay.pad_id, dtype=torch.long, device=ids.device)
            step_mask = torch.zeros((b, width), dtype=torch.long, device=ids.device)
            for i, f in enumerate(feeds):
                if f:
                    step_ids[i, : len(f)] = torch.tensor(f, device=ids.device)
                    step_mask[i, : len(f)] = 1
            mask = torch.cat([mask, step_mask], dim=1)
            step_pos = next_pos[:, None] + torch.arange(width, device=ids.device)[None, :]
            out = _forward(model, model.lm.get_input_embeddings()(step_ids), mask, step_pos, cache)
            cache = out.past_key_values
            passes += 1
            fed = step_mask.sum(1)
            if width == 1:  # every row fed one token (or none, once done): its hidden state is the only one
                last = out.last_hidden_state[:, 0]
            else:
                last = out.last_hidden_state[rows_idx, (fed - 1).clamp(min=0)]
            next_pos = next_pos + fed
    t_decode = time.perf_counter()

    timings = {
        "vision": 1e3 * (t_vision - t0),
        "prefill": 1e3 * (t_prefill - t_vision),
        "head": 1e3 * (t_head - t_prefill),
        "decode": 1e3 * (t_decode - t_head),
        "total": 1e3 * (t_decode - t0),
    }
    plans = []
    for i in range(b):
        row = rows[i] if rows else None
        if head_traj is not None:
            traj = Trajectory(xy=head_traj[i, :, :2].astype(np.float32), yaw_rad=head_traj[i, :, 2].astype(np.float32))
        else:
            traj = model.action_tokenizer.decode(row.actions)
        controls = None
        if row is not None and model.control_tokenizer is not None and row.phase != "action":
            controls = model.control_tokenizer.decode(row.controls)
        text = None
        if explain and row is not None:
            text = model.text_tokenizer.decode(row.text, skip_special_tokens=True).strip()
        plan = plan_with_text(traj, controls, text, timings)
        cap = model.last_speed_cap[i] if model.last_speed_cap else float("nan")  # NaN: no cap on this row
        plans.append(plan if math.isnan(cap) else dataclasses.replace(plan, speed_cap_mps=float(cap)))
    model.last_decode_stats = {
        "generated_tokens": [row.generated for row in rows] if rows else [0] * b,
        "forward_passes": passes,
        "prompt_tokens": [int(n) for n in lengths.tolist()],  # the whole prompt (system part included)
    }
    return plans

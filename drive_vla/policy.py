"""DrivingPolicy: build, save and load a DriveVLA with its tokenizers; predict(Observation) -> Plan, explain()."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from drive_vla.config import load_config, save_config
from drive_vla.model.config import DEFAULT_EXPLAIN_QUESTION, ModelConfig
from drive_vla.model.lm import load_saved_lm, save_lm_config
from drive_vla.model.vla import DriveVLA
from drive_vla.types import Batch, Observation, Plan, Trajectory

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
LM_CONFIG_DIR = "lm"
TEXT_TOKENIZER_DIR = "text_tokenizer"
ACTION_TOKENIZER_DIR = "action_tokenizer"
CONTROL_TOKENIZER_DIR = "control_tokenizer"


def make_action_tokenizer(cfg: ModelConfig, fit_trajectories: Sequence[Trajectory] | None = None) -> Any:
    """The action tokenizer the config names, fitted on ``fit_trajectories`` when given (else default ranges)."""
    from drive_vla.tokenizers import make_action_tokenizer as make_by_name

    tok = make_by_name(cfg.action_tokenizer, **cfg.action_tokenizer_kwargs)
    if fit_trajectories is not None:
        tok.fit(list(fit_trajectories))
    return tok


def make_control_tokenizer(cfg: ModelConfig) -> Any | None:
    """The ControlTokenizer (None when the config has no control tokens)."""
    if not cfg.control_tokens:
        return None
    from drive_vla.tokenizers import ControlTokenizer

    return ControlTokenizer(**cfg.control_tokenizer_kwargs)


def fixed_texts(cfg: ModelConfig) -> list[str]:
    """Texts every policy sees whatever its data: system prompt, explain question, default instructions and
    meta-action sentences (added to the fit texts of a "corpus" text tokenizer)."""
    from drive_vla.data.labels import INSTRUCTIONS, META_ACTIONS, meta_action_sentence

    return [
        cfg.system_prompt,
        DEFAULT_EXPLAIN_QUESTION,
        *INSTRUCTIONS.values(),
        *(meta_action_sentence(m) for m in META_ACTIONS),
    ]


class DrivingPolicy:
    """A trained (or freshly built) VLA behind the Planner interface.

    Attributes:
        model: the DriveVLA (``model.lm`` is the Hugging Face causal LM).
        config: the resolved ModelConfig.
    """

    def __init__(self, model: DriveVLA, config: ModelConfig) -> None:
        self.model = model.eval()
        self.config = config

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        cfg: ModelConfig,
        fit_trajectories: Sequence[Trajectory] | None = None,
        fit_texts: Iterable[str] | None = None,
    ) -> DrivingPolicy:
        """A new policy with random weights (or the LM's pretrained ones) for ``cfg``.

        Args:
            cfg: the model config.
            fit_trajectories: training plans to fit the action tokenizer's ranges on; default ranges if None.
            fit_texts: training texts (instructions, explanations, QA) to fit a "corpus" text tokenizer
                (``lm.text_tokenizer``) on, together with ``fixed_texts(cfg)``; required for "corpus" (an
                empty list fits the fixed texts only), ignored otherwise.

        Raises:
            ValueError: ``lm.text_tokenizer`` is "corpus" and ``fit_texts`` is None.
        """
        action = make_action_tokenizer(cfg, fit_trajectories)
        texts = None if fit_texts is None else [*fixed_texts(cfg), *fit_texts]
        return cls(DriveVLA.build(cfg, action, make_control_tokenizer(cfg), fit_texts=texts), cfg)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> DrivingPolicy:
        """Load a policy written by ``save_pretrained`` (offline; no LM source file is needed)."""
        from safetensors.torch import load_model

        from drive_vla.tokenizers import ControlTokenizer, load_action_tokenizer

        d = Path(directory)
        for need in (CONFIG_FILE, WEIGHTS_FILE, LM_CONFIG_DIR, TEXT_TOKENIZER_DIR, ACTION_TOKENIZER_DIR):
            if not (d / need).exists():
                raise FileNotFoundError(f"policy directory: {d / need} is missing; expected a saved DrivingPolicy")
        cfg = load_config(ModelConfig, d / CONFIG_FILE)
        lm, text_tokenizer = load_saved_lm(d / LM_CONFIG_DIR, d / TEXT_TOKENIZER_DIR, cfg.lm.attn_implementation)
        action = load_action_tokenizer(d / ACTION_TOKENIZER_DIR)
        control = ControlTokenizer.from_pretrained(d / CONTROL_TOKENIZER_DIR) if cfg.control_tokens else None
        # The backbone's weights come from the checkpoint, not from the original weights file.
        build_cfg = dataclasses.replace(cfg, vision=dataclasses.replace(cfg.vision, weights_path=""))
        model = DriveVLA(build_cfg, lm, text_tokenizer, action, control)
        model.cfg = cfg
        if cfg.dtype == "bfloat16":
            model.to(torch.bfloat16)
        load_model(model, str(d / WEIGHTS_FILE), strict=True)
        return cls(model.to(device), cfg)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write weights (safetensors), the resolved config and all tokenizers; nothing is pickled."""
        from safetensors.torch import save_model

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_config(self.config, d / CONFIG_FILE)
        save_model(self.model, str(d / WEIGHTS_FILE))  # de-duplicates tied embeddings
        save_lm_config(self.model.lm, d / LM_CONFIG_DIR)
        self.model.text_tokenizer.save_pretrained(str(d / TEXT_TOKENIZER_DIR))
        self.model.action_tokenizer.save_pretrained(d / ACTION_TOKENIZER_DIR)
        if self.model.control_tokenizer is not None:
            self.model.control_tokenizer.save_pretrained(d / CONTROL_TOKENIZER_DIR)
        return d

    # -- use ------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.model.device

    def to(self, device: str | torch.device) -> DrivingPolicy:
        self.model.to(device)
        return self

    def _batch(self, observations: Sequence[Observation]) -> Batch:
        if isinstance(observations, Observation) or not isinstance(observations, Sequence):
            raise ValueError(f"observations: got {type(observations).__name__}, expected a list of Observation")
        for i, obs in enumerate(observations):
            if not isinstance(obs, Observation):
                raise ValueError(f"observations[{i}]: got {type(obs).__name__}, expected an Observation")
            obs.validate()  # arrays are mutable after construction: check again
            obs.ego.validate()
        return Batch.from_observations(observations)

    def predict(self, obs: Observation) -> Plan:
        """The plan for one observation (no gradients; updates the temporal memory)."""
        if not isinstance(obs, Observation):
            raise ValueError(f"obs: got {type(obs).__name__}, expected an Observation")
        return self.predict_batch([obs])[0]

    def predict_batch(self, observations: Sequence[Observation]) -> list[Plan]:
        """Plans for several observations at once (one row of temporal memory per position in the list)."""
        if self.model.training:
            self.model.eval()
        return self.model.plan(self._batch(observations), memory="update")

    def explain(self, obs: Observation, question: str | None = None) -> str:
        """The model's answer to ``question`` (default "What are you doing and why?") about ``obs``.

        Reads the temporal memory without adding this frame to it, so asking does not change driving.
        """
        if question is not None and (not isinstance(question, str) or not question.strip()):
            raise ValueError(f"question: got {question!r}, expected a non-empty string")
        if self.model.training:
            self.model.eval()
        plan = self.model.plan(
            self._batch([obs]), explain=True, question=question or DEFAULT_EXPLAIN_QUESTION, memory="read"
        )
        return plan[0].text or ""

    @property
    def plans_with_head(self) -> bool:
        """Whether ``predict`` drives on the planner head (so token decoding is a second, slower reading)."""
        return self.config.output_mode == "head"

    def second_opinion(self, obs: Observation, explain: bool = True) -> Plan:
        """The slow path for one observation: decoded waypoint tokens and, with ``explain``, an explanation.

        Reads the temporal memory without adding this frame to it, like ``explain``. A head-mode policy
        decodes its tokens here (its ``predict`` does not), so the two trajectories can be compared.
        """
        if self.model.training:
            self.model.eval()
        batch = self._batch([obs])
        cfg = self.model.cfg
        self.model.cfg = dataclasses.replace(cfg, output_mode="tokens")  # generation reads the mode from cfg
        try:
            return self.model.plan(batch, explain=explain, memory="read")[0]
        finally:
            self.model.cfg = cfg

    def reset(self) -> None:
        """Forget the temporal memory (start of a new drive)."""
        self.model.reset()

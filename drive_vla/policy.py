"""DrivingPolicy: build, save and load a DriveVLA with its tokenizers; predict(Observation) -> Plan, explain()."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from drive_vla.config import load_config, missing_keys, read_yaml, save_config
from drive_vla.model.config import DEFAULT_EXPLAIN_QUESTION, ModelConfig
from drive_vla.model.lm import load_saved_lm, save_lm_config
from drive_vla.model.quantize import check_quantize, quantize_model
from drive_vla.model.vla import DriveVLA
from drive_vla.types import Batch, Observation, Plan, Trajectory

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
LM_CONFIG_DIR = "lm"
TEXT_TOKENIZER_DIR = "text_tokenizer"
ACTION_TOKENIZER_DIR = "action_tokenizer"
CONTROL_TOKENIZER_DIR = "control_tokenizer"
CHECKSUMS_FILE = "checksums.json"  # size and sha256 of every file save_pretrained wrote

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checksums(directory: Path, files: Iterable[Path]) -> Path:
    """Write ``checksums.json`` (size and sha256 of each of ``files``, relative to ``directory``), atomically."""
    entries = {
        p.relative_to(directory).as_posix(): {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in files
    }
    path = directory / CHECKSUMS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format": 1, "files": dict(sorted(entries.items()))}, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read_checksums(directory: Path) -> dict[str, dict[str, Any]] | None:
    """The entries of ``checksums.json`` (None for a policy saved before checksums were written)."""
    path = directory / CHECKSUMS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        files = data["files"]
        if not isinstance(files, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("bytes"), int) and isinstance(e.get("sha256"), str)
            for e in files.values()
        ):
            raise ValueError("entries are not {bytes, sha256}")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"policy checksums: {path}: {exc}, expected {{'files': {{name: {{'bytes', 'sha256'}}}}}} as "
            "save_pretrained writes it"
        ) from None
    return files


def verify_checksums(directory: Path, entries: dict[str, dict[str, Any]], skip: Iterable[str] = ()) -> None:
    """Raise naming the file if one listed in ``checksums.json`` is missing, of another size or another sha256."""
    for name, entry in entries.items():
        if name in skip:
            continue
        p = directory / name
        if not p.is_file():
            raise FileNotFoundError(f"policy file: {p} is missing; expected a saved DrivingPolicy ({CHECKSUMS_FILE})")
        size = p.stat().st_size
        if size != entry["bytes"]:
            raise ValueError(
                f"policy file: {p}: got {size} bytes, expected {entry['bytes']} as recorded in {CHECKSUMS_FILE} "
                "(truncated or overwritten since save_pretrained)"
            )
        digest = file_sha256(p)
        if digest != entry["sha256"]:
            raise ValueError(
                f"policy file: {p}: got sha256 {digest[:12]}..., expected {entry['sha256'][:12]}... as recorded in "
                f"{CHECKSUMS_FILE} (the file is corrupt or was modified since save_pretrained)"
            )


def check_saved_config(path: Path, entry: dict[str, Any] | None) -> None:
    """A policy's config.yaml may be edited, but not cut short: when it differs from the saved one, every
    key must still be there (a missing key would silently take its default)."""
    if entry is None or (path.stat().st_size == entry["bytes"] and file_sha256(path) == entry["sha256"]):
        return
    missing = missing_keys(ModelConfig, read_yaml(path))
    if missing:
        shown = ", ".join(missing[:8]) + (f", ... ({len(missing) - 8} more)" if len(missing) > 8 else "")
        raise ValueError(
            f"policy config: {path}: missing keys [{shown}] and differs from the config saved with the weights; "
            f"expected the complete config save_pretrained wrote (truncated?)"
        )
    log.warning("policy config: %s differs from the config saved with the weights (edited since save)", path)


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
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu", quantize: str = "none"
    ) -> DrivingPolicy:
        """Load a policy written by ``save_pretrained`` (offline; no LM source file is needed).

        ``quantize="int8"`` replaces the linear layers by PyTorch's dynamic INT8 ones (CPU only;
        drive_vla.model.quantize); it is checked before anything is read.

        Every file is checked against ``checksums.json`` where the policy has one (``config.yaml`` may be
        edited, but must stay complete).

        Raises:
            FileNotFoundError: a file of the policy is missing (the message names it).
            ValueError: a file is truncated, corrupt or modified (``ConfigError`` for a bad config value),
                naming the file, the field where there is one, and what was expected.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_model

        from drive_vla.tokenizers import ControlTokenizer, load_action_tokenizer

        check_quantize(quantize, device)
        d = Path(directory)
        for need in (CONFIG_FILE, WEIGHTS_FILE, LM_CONFIG_DIR, TEXT_TOKENIZER_DIR, ACTION_TOKENIZER_DIR):
            if not (d / need).exists():
                raise FileNotFoundError(f"policy directory: {d / need} is missing; expected a saved DrivingPolicy")
        checksums = read_checksums(d)
        if checksums is not None:
            verify_checksums(d, checksums, skip=(CONFIG_FILE,))
            check_saved_config(d / CONFIG_FILE, checksums.get(CONFIG_FILE))
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
        try:
            load_model(model, str(d / WEIGHTS_FILE), strict=True)
        except (SafetensorError, RuntimeError, KeyError) as exc:
            raise ValueError(
                f"policy weights: {d / WEIGHTS_FILE}: {type(exc).__name__}: {exc}; expected a complete safetensors "
                f"file matching {d / CONFIG_FILE}"
            ) from exc
        return cls(quantize_model(model.to(device), quantize), cfg)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write weights (safetensors), the resolved config, all tokenizers and checksums.json; nothing is pickled."""
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
        written = [d / CONFIG_FILE, d / WEIGHTS_FILE]
        for sub in (LM_CONFIG_DIR, TEXT_TOKENIZER_DIR, ACTION_TOKENIZER_DIR, CONTROL_TOKENIZER_DIR):
            written += sorted(p for p in (d / sub).rglob("*") if p.is_file())
        write_checksums(d, written)  # last: a save killed before this leaves the old list, which then fails
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
        return Batch.from_observations(observations, image_hw=self.config.vision.image_hw)

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
        return self.explain_batch([obs], question)[0]

    def explain_batch(self, observations: Sequence[Observation], question: str | None = None) -> list[str]:
        """``explain`` for several observations in one generation (row i reads row i of the temporal memory,
        as ``predict_batch`` wrote it); greedy decoding, so each text is the one ``explain`` gives up to
        float-summation order."""
        if question is not None and (not isinstance(question, str) or not question.strip()):
            raise ValueError(f"question: got {question!r}, expected a non-empty string")
        if self.model.training:
            self.model.eval()
        plans = self.model.plan(
            self._batch(observations), explain=True, question=question or DEFAULT_EXPLAIN_QUESTION, memory="read"
        )
        return [p.text or "" for p in plans]

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

"""The one prompt/answer layout, shared by training and inference, and the LM id offsets of action/control tokens.

Sequence (LM ids)::

    [system text] [<image>] x V  [<state>] x S  [instruction text] <plan>          <- prompt
    [waypoint tokens] <ctrl> [steer throttle brake] </plan>                        <- plan answer
    [question text] [answer / explanation text] EOS                                <- optional text answer

``<image>`` and ``<state>`` are placeholders whose embeddings are replaced by the visual and state
tokens. Without control tokens the waypoints end with ``</plan>`` directly. The token that ends the
waypoints (``<ctrl>`` or ``</plan>``) is part of the waypoint target, so variable-length action
tokenizers learn where to stop. Action local id ``a`` is LM id ``action_offset + a``, control local id
``c`` is ``control_offset + c``; both ranges sit after the text tokenizer's vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import torch

SPECIAL_TOKENS: dict[str, str] = {
    "image": "<image>",
    "state": "<state>",
    "plan": "<plan>",
    "plan_end": "</plan>",
    "control": "<ctrl>",
}


class Seg(IntEnum):
    """Which loss a token incurs when it is the prediction target."""

    NONE = 0
    ACTION = 1
    CONTROL = 2
    TEXT = 3


@dataclass
class Answer:
    """Token ids after the prompt and, per id, the loss segment it is a target of."""

    ids: list[int]
    segs: list[Seg]


class PromptLayout:
    """Owns the special tokens, the prompt/answer layout and the action/control id offsets.

    Args:
        text_tokenizer: the LM's Hugging Face tokenizer; the special tokens are added to it (idempotent).
        action_vocab: local vocabulary size of the action tokenizer.
        control_vocab: local vocabulary size of the control tokenizer (0 = no control tokens).
        num_visual: visual tokens per prompt.
        num_state: state tokens per prompt.
        system_prompt: text at the start of every prompt.
    """

    def __init__(
        self,
        text_tokenizer: Any,
        action_vocab: int,
        control_vocab: int,
        num_visual: int,
        num_state: int,
        system_prompt: str,
    ) -> None:
        missing = [t for t in SPECIAL_TOKENS.values() if t not in text_tokenizer.get_vocab()]
        if missing:
            try:  # transformers >= 5
                text_tokenizer.add_special_tokens(
                    {"additional_special_tokens": missing}, replace_extra_special_tokens=False
                )
            except TypeError:  # transformers 4.x
                text_tokenizer.add_special_tokens(
                    {"additional_special_tokens": missing}, replace_additional_special_tokens=False
                )
        self.tokenizer = text_tokenizer
        self.special = {name: int(text_tokenizer.convert_tokens_to_ids(tok)) for name, tok in SPECIAL_TOKENS.items()}
        self.text_vocab = len(text_tokenizer)
        self.action_vocab = int(action_vocab)
        self.control_vocab = int(control_vocab)
        self.action_offset = self.text_vocab
        self.control_offset = self.action_offset + self.action_vocab
        self.vocab_size = self.control_offset + self.control_vocab  # LM ids the layout needs
        self.num_visual = num_visual
        self.num_state = num_state
        self.eos_id = int(text_tokenizer.eos_token_id)
        self.pad_id = int(text_tokenizer.pad_token_id)
        self._system_ids = self.text(system_prompt)

    @property
    def control_tokens(self) -> bool:
        return self.control_vocab > 0

    @property
    def action_end_id(self) -> int:
        """The LM id that ends the waypoint tokens."""
        return self.special["control"] if self.control_tokens else self.special["plan_end"]

    def text(self, s: str) -> list[int]:
        """Text -> LM ids (no BOS/EOS added)."""
        return list(self.tokenizer.encode(s, add_special_tokens=False))

    def action_to_lm(self, local_ids: Sequence[int]) -> list[int]:
        return [self.action_offset + int(i) for i in local_ids]

    def control_to_lm(self, local_ids: Sequence[int]) -> list[int]:
        return [self.control_offset + int(i) for i in local_ids]

    @property
    def system_ids(self) -> list[int]:
        """The fixed start of every prompt (its KV cache is computed once and reused: generate.py)."""
        return list(self._system_ids)

    def prompt_ids(self, instruction: str) -> list[int]:
        """The prompt up to and including ``<plan>``, with ``<image>``/``<state>`` placeholders."""
        return (
            self._system_ids
            + [self.special["image"]] * self.num_visual
            + [self.special["state"]] * self.num_state
            + self.text(f"\nInstruction: {instruction}\n")
            + [self.special["plan"]]
        )

    def question_ids(self, question: str) -> list[int]:
        """Fed (not predicted) after ``</plan>`` before the answer text."""
        return self.text(f"\nQ: {question}\nA:")

    def answer(
        self,
        action_ids: Sequence[int],
        control_ids: Sequence[int] | None = None,
        *,
        action_weight: Sequence[bool] | None = None,
        control_supervised: bool = True,
        qa: tuple[str, str] | None = None,
    ) -> Answer:
        """The teacher-forced answer after ``<plan>``.

        Args:
            action_ids: local action token ids.
            control_ids: local control ids (3), required when the layout has control tokens.
            action_weight: per action token, whether it is a loss target (False for masked waypoints).
            control_supervised: whether the control tokens are loss targets (a control label exists).
            qa: (question, answer text) to append, or None.
        """
        weight = [True] * len(action_ids) if action_weight is None else list(action_weight)
        ids = self.action_to_lm(action_ids) + [self.action_end_id]
        # The end token is a target only for a complete plan (a filled-in plan's length means nothing).
        segs = [Seg.ACTION if w else Seg.NONE for w in weight] + [Seg.ACTION if all(weight) else Seg.NONE]
        if self.control_tokens:
            if control_ids is None:
                raise ValueError("control_ids: got None, expected 3 control token ids for this layout")
            ids += self.control_to_lm(control_ids) + [self.special["plan_end"]]
            segs += [Seg.CONTROL if control_supervised else Seg.NONE] * len(control_ids) + [Seg.NONE]
        if qa is not None:
            q_ids = self.question_ids(qa[0])
            a_ids = self.text(" " + qa[1].strip()) + [self.eos_id]
            ids += q_ids + a_ids
            segs += [Seg.NONE] * len(q_ids) + [Seg.TEXT] * len(a_ids)
        return Answer(ids, segs)

    def text_logit_mask(self, lm_vocab: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(lm_vocab,) bool: ids free text may use (the text vocabulary and EOS, no layout tokens)."""
        allowed = torch.zeros(max(lm_vocab, self.vocab_size), dtype=torch.bool, device=device)
        allowed[: self.text_vocab] = True
        for tid in self.special.values():
            allowed[tid] = False
        if self.pad_id != self.eos_id:
            allowed[self.pad_id] = False
        allowed[self.eos_id] = True
        return allowed

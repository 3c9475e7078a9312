"""Names of the action tokenizers: build one by name, or load a saved one by its ``"type"`` field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drive_vla.tokenizers.base import ActionTokenizer
from drive_vla.tokenizers.fast import FASTTokenizer
from drive_vla.tokenizers.uniform import UniformBinTokenizer

ACTION_TOKENIZERS: dict[str, type[ActionTokenizer]] = {
    UniformBinTokenizer.type_name: UniformBinTokenizer,
    FASTTokenizer.type_name: FASTTokenizer,
}


def tokenizer_class(name: str) -> type[ActionTokenizer]:
    """The ActionTokenizer class registered as ``name``; ValueError listing the available names otherwise."""
    if name not in ACTION_TOKENIZERS:
        raise ValueError(f"action tokenizer: got {name!r}, expected one of {sorted(ACTION_TOKENIZERS)}")
    return ACTION_TOKENIZERS[name]


def make_action_tokenizer(name: str, **kwargs: Any) -> ActionTokenizer:
    """A new (unfitted) action tokenizer by name; ``kwargs`` are its config fields, or ``config=``.

    Example:
        ``make_action_tokenizer("uniform", bins_x=128).fit(train_trajectories)``
    """
    return tokenizer_class(name)(**kwargs)


def load_action_tokenizer(directory: str | Path) -> ActionTokenizer:
    """Load an action tokenizer saved with ``save_pretrained``, whatever its type."""
    return ActionTokenizer.from_pretrained(directory)

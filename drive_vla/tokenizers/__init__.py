"""Action tokenizers: waypoint plans and controls <-> local token ids (the model maps them to LM ids).

- ``UniformBinTokenizer`` ("uniform"): 12 displacement-bin tokens per plan.
- ``FASTTokenizer`` ("fast"): DCT of the displacements + learnt BPE, usually 2-4 tokens per plan.
- ``ControlTokenizer``: [steer, throttle, brake] bins of the current step.
- ``make_action_tokenizer(name, **config)``, ``load_action_tokenizer(dir)``.
"""

from drive_vla.tokenizers.base import (
    ACTION_TOKENIZER_FILE,
    ActionTokenizer,
    TokenizerFileError,
    headings_from_xy,
    plan_xy,
    trajectory_from_xy,
)
from drive_vla.tokenizers.control import CONTROL_TOKENIZER_FILE, ControlTokenizer, ControlTokenizerConfig
from drive_vla.tokenizers.evaluation import round_trip_errors_m, tokens_per_plan
from drive_vla.tokenizers.fast import FASTConfig, FASTTokenizer
from drive_vla.tokenizers.registry import (
    ACTION_TOKENIZERS,
    load_action_tokenizer,
    make_action_tokenizer,
    tokenizer_class,
)
from drive_vla.tokenizers.uniform import UniformBinConfig, UniformBinTokenizer

__all__ = [
    "ACTION_TOKENIZERS",
    "ACTION_TOKENIZER_FILE",
    "CONTROL_TOKENIZER_FILE",
    "ActionTokenizer",
    "ControlTokenizer",
    "ControlTokenizerConfig",
    "FASTConfig",
    "FASTTokenizer",
    "TokenizerFileError",
    "UniformBinConfig",
    "UniformBinTokenizer",
    "headings_from_xy",
    "load_action_tokenizer",
    "make_action_tokenizer",
    "plan_xy",
    "round_trip_errors_m",
    "tokenizer_class",
    "tokens_per_plan",
    "trajectory_from_xy",
]

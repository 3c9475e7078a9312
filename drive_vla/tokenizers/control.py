"""ControlTokenizer: steer, throttle and brake of the current step as three bin tokens.

Layout and grammar:
    ids 0 .. S-1            steer bins, centres evenly over [-1, 1] (positive LEFT), endpoints included
    ids S .. S+T-1          throttle bins over [0, 1]
    ids S+T .. S+T+B-1      brake bins over [0, 1]
    a control is exactly [steer, throttle, brake]; it may end only after all three.

Round-trip bound: half a bin spacing per field (steer 1/(S-1), throttle 1/(2(T-1)), brake 1/(2(B-1))).
With an odd S, steer 0 is a bin centre; 0 and 1 of throttle and brake always are, so "no throttle",
"no brake" and "full brake" round-trip exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drive_vla.config import to_dict
from drive_vla.tokenizers.base import build_config, check_ids, read_tokenizer_json, write_tokenizer_json
from drive_vla.types import Control

CONTROL_TOKENIZER_FILE = "control_tokenizer.json"
FIELDS = ("steer", "throttle", "brake")
FIELD_RANGES = {"steer": (-1.0, 1.0), "throttle": (0.0, 1.0), "brake": (0.0, 1.0)}


@dataclass
class ControlTokenizerConfig:
    """Bin counts of ControlTokenizer (each >= 2; an odd steer count makes steer 0 exact)."""

    steer_bins: int = 129
    throttle_bins: int = 33
    brake_bins: int = 33

    def __post_init__(self) -> None:
        for name in ("steer_bins", "throttle_bins", "brake_bins"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 100_000:
                raise ValueError(f"control.{name}: got {v!r}, expected an int in 2..100000")


class ControlTokenizer:
    """Control <-> three local ids in disjoint ranges (see the module docstring)."""

    type_name = "control"

    def __init__(self, config: ControlTokenizerConfig | None = None, **kwargs: Any) -> None:
        """Build from a config, or from config fields as keyword arguments (not both)."""
        if config is not None and kwargs:
            raise ValueError(f"ControlTokenizer: got config and keyword fields {sorted(kwargs)}, expected one")
        if config is None:
            config = build_config(ControlTokenizerConfig, kwargs, "ControlTokenizer")
        if not isinstance(config, ControlTokenizerConfig):
            raise ValueError(f"config: got {type(config).__name__}, expected ControlTokenizerConfig")
        self.config = config
        self._bins = {f: getattr(config, f"{f}_bins") for f in FIELDS}
        self._offset = {}
        start = 0
        for f in FIELDS:
            self._offset[f] = start
            start += self._bins[f]
        self._vocab_size = start

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def max_tokens(self) -> int:
        return len(FIELDS)

    def _width(self, f: str) -> float:
        lo, hi = FIELD_RANGES[f]
        return (hi - lo) / (self._bins[f] - 1)

    @property
    def field_bounds(self) -> dict[str, float]:
        """Max absolute round-trip error per field (half a bin spacing)."""
        return {f: self._width(f) / 2.0 for f in FIELDS}

    @property
    def round_trip_bound(self) -> float:
        """Max absolute round-trip error over steer, throttle and brake."""
        return max(self.field_bounds.values())

    def field_ids(self, f: str) -> list[int]:
        """Local ids of field ``f`` ("steer", "throttle" or "brake")."""
        if f not in FIELDS:
            raise ValueError(f"field: got {f!r}, expected one of {list(FIELDS)}")
        return list(range(self._offset[f], self._offset[f] + self._bins[f]))

    def encode(self, control: Control) -> list[int]:
        """[steer id, throttle id, brake id] of the nearest bin centres."""
        if not isinstance(control, Control):
            raise ValueError(f"control: got {type(control).__name__}, expected a drive_vla.types.Control")
        ids = []
        for f in FIELDS:
            lo, _ = FIELD_RANGES[f]
            idx = int(np.clip(np.rint((float(getattr(control, f)) - lo) / self._width(f)), 0, self._bins[f] - 1))
            ids.append(self._offset[f] + idx)
        return ids

    def _check(self, ids: Sequence[int], name: str, complete: bool) -> list[int]:
        out = check_ids(ids, self.vocab_size, name)
        if len(out) > 3 or (complete and len(out) != 3):
            raise ValueError(f"{name}: got {len(out)} ids, expected {'exactly' if complete else 'at most'} 3")
        for i, (v, f) in enumerate(zip(out, FIELDS)):
            lo, hi = self._offset[f], self._offset[f] + self._bins[f] - 1
            if not lo <= v <= hi:
                raise ValueError(f"{name}[{i}]: got {v}, expected a {f} id in {lo}..{hi}")
        return out

    def decode(self, ids: Sequence[int]) -> Control:
        """The Control at the bin centres of [steer id, throttle id, brake id]."""
        out = self._check(ids, "ids", complete=True)
        values = {}
        for v, f in zip(out, FIELDS):
            lo, hi = FIELD_RANGES[f]
            values[f] = float(min(hi, max(lo, lo + (v - self._offset[f]) * self._width(f))))
        return Control(**values)

    def allowed_next(self, prefix: Sequence[int]) -> tuple[list[int], bool]:
        """(ids of the next field, whether the control may end: only after all three)."""
        n = len(self._check(prefix, "prefix", complete=False))
        if n == 3:
            return [], True
        return self.field_ids(FIELDS[n]), False

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``directory/control_tokenizer.json``."""
        write_tokenizer_json(
            directory, CONTROL_TOKENIZER_FILE, {"type": self.type_name, "config": to_dict(self.config)}
        )
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ControlTokenizer:
        """Load what ``save_pretrained`` wrote."""
        payload = read_tokenizer_json(directory, CONTROL_TOKENIZER_FILE)
        where = Path(directory) / CONTROL_TOKENIZER_FILE
        if payload["type"] != cls.type_name:
            raise ValueError(f"{where}: type: got {payload['type']!r}, expected {cls.type_name!r}")
        return cls(build_config(ControlTokenizerConfig, payload.get("config", {}), f"{where}: config"))

    def __repr__(self) -> str:
        c = self.config
        return (
            f"ControlTokenizer(bins=({c.steer_bins}, {c.throttle_bins}, {c.brake_bins}), vocab_size={self.vocab_size})"
        )

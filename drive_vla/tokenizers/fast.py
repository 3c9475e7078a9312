"""FASTTokenizer: frequency-space action tokens (FAST, Pertsch et al. 2025) for 6-waypoint plans.

Pipeline (encode; decode runs it backwards):
    waypoints (6, 2) -> per-step displacements d (6, 2), the first from the origin
    -> DCT-II, orthonormal, over time per axis: c (6, 2), metres
    -> q = rint(c * scale_per_m), clipped to each coefficient's integer range [lo_j, hi_j]
    -> flattened low frequency first, axes interleaved: [q0x, q0y, q1x, q1y, ..., q5x, q5y] (12 ints)
    -> trailing zeros dropped (at least one value kept), each int v -> the character chr(BASE + v - vmin)
    -> byte-pair encoding learnt with Hugging Face ``tokenizers`` over the training plans -> local ids.

Why displacements and not positions: a constant-speed plan has constant displacements, so all its energy
sits in the DC coefficient and the rest round to 0; positions form a ramp, whose DCT spreads over the odd
coefficients and whose DC grows with the 3 s distance (a far larger alphabet). On synthetic driving plans
at the same scale, positions gave ~10 tokens per plan and displacements ~2.5.

Round-trip bound: rounding errs at most 1/(2 s) per coefficient, and position = L @ IDCT @ c (L the
lower-triangular ones matrix summing displacements), so waypoint k errs at most
sum_j |(L @ IDCT)_kj| / (2 s) per axis, times sqrt(2) in the plane: max over k 3.945 / (2 s) * sqrt(2),
0.139 m at the default s = 20 per metre. The bound is exact (tested tight) for plans whose rounded
coefficients lie in the fitted ranges ("in range"); beyond them coefficients clip.

Grammar: any vocabulary id; the plan may end after >= 1 token and must end once the prefix spells 12
characters or holds max_tokens (12) tokens. Decode is total over every id sequence, grammar or not:
characters past the 12th are dropped, missing coefficients are 0, every coefficient is clipped to its range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft
from tokenizers import Tokenizer, models, trainers

from drive_vla.tokenizers.base import (
    ActionTokenizer,
    TokenizerFileError,
    build_config,
    check_fit_range,
    check_ids,
    check_percentiles,
    complete_plans,
    displacements,
    percentile_range,
    plan_xy,
    trajectory_from_xy,
)
from drive_vla.types import FUTURE_STEPS, Trajectory

BPE_FILE = "fast_bpe_tokenizer.json"
N_COEFFS = 2 * FUTURE_STEPS
CHAR_BASE = 0x4E00  # CJK Unified Ideographs: printable, untouched by any normaliser we do not add
MAX_ALPHABET = 0x9FFF - CHAR_BASE + 1

_DCT = scipy.fft.dct(np.eye(FUTURE_STEPS), type=2, norm="ortho", axis=0)  # (6, 6): c = _DCT @ d
_POS_FROM_COEF = np.tril(np.ones((FUTURE_STEPS, FUTURE_STEPS))) @ _DCT.T  # (6, 6): p = M @ c (DCT orthonormal)


@dataclass
class FASTConfig:
    """Settings of FASTTokenizer.

    Attributes:
        scale_per_m: coefficients are rounded to multiples of 1 / scale_per_m metres; sets the bound
            (0.139 m at 20) and the alphabet size (both linear in it).
        bpe_vocab_size: target vocabulary size of the BPE ``fit`` learns (at least the alphabet is kept).
        bpe_min_frequency: a pair must occur this often in the training plans to be merged.
        range_x_m: (lo, hi) per-step dx in metres; before ``fit`` the coefficient ranges are its exact
            image under the DCT (covers -4..24 m/s).
        range_y_m: (lo, hi) per-step dy in metres, likewise.
        fit_percentiles: percentiles of each training coefficient that ``fit`` takes as its range ...
        fit_margin: ... widened on each side by this fraction of the percentile span ...
        min_span_m: ... and to at least this span; every range also includes 0.
    """

    scale_per_m: float = 20.0
    bpe_vocab_size: int = 2048
    bpe_min_frequency: int = 2
    range_x_m: tuple[float, float] = (-2.0, 12.0)
    range_y_m: tuple[float, float] = (-6.0, 6.0)
    fit_percentiles: tuple[float, float] = (0.1, 99.9)
    fit_margin: float = 0.1
    min_span_m: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.scale_per_m, (int, float)) and 0.0 < self.scale_per_m <= 1000.0):
            raise ValueError(f"fast.scale_per_m: got {self.scale_per_m!r}, expected a number in (0, 1000]")
        for name, lo in (("bpe_vocab_size", 1), ("bpe_min_frequency", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= 1_000_000:
                raise ValueError(f"fast.{name}: got {v!r}, expected an int in {lo}..1000000")
        self.range_x_m = check_fit_range("fast.range_x_m", self.range_x_m)
        self.range_y_m = check_fit_range("fast.range_y_m", self.range_y_m)
        self.fit_percentiles = check_percentiles("fast.fit_percentiles", self.fit_percentiles)
        if not 0.0 <= float(self.fit_margin) <= 10.0:
            raise ValueError(f"fast.fit_margin: got {self.fit_margin!r}, expected a fraction in [0, 10]")
        if not 0.0 < float(self.min_span_m) < 1e3:
            raise ValueError(f"fast.min_span_m: got {self.min_span_m!r}, expected metres in (0, 1000)")


def plan_coefficients(xy: np.ndarray) -> np.ndarray:
    """(6, 2) waypoints -> (12,) DCT coefficients of the displacements in metres, [c0x, c0y, c1x, ...]."""
    return (_DCT @ displacements(xy)).reshape(-1)


def plan_from_coefficients(coefs_m: np.ndarray) -> np.ndarray:
    """(12,) coefficients in metres -> (6, 2) waypoints."""
    return _POS_FROM_COEF @ np.asarray(coefs_m, dtype=np.float64).reshape(FUTURE_STEPS, 2)


def box_coefficient_ranges(range_x_m: tuple[float, float], range_y_m: tuple[float, float]) -> np.ndarray:
    """(12, 2) exact [min, max] of each coefficient over displacements in the box range_x x range_y."""
    out = np.zeros((FUTURE_STEPS, 2, 2))
    for a, (lo, hi) in enumerate((range_x_m, range_y_m)):
        out[:, a, 0] = np.minimum(_DCT * lo, _DCT * hi).sum(axis=1)
        out[:, a, 1] = np.maximum(_DCT * lo, _DCT * hi).sum(axis=1)
    return out.reshape(N_COEFFS, 2)


class FASTTokenizer(ActionTokenizer):
    """DCT + BPE plan tokens, usually 2-4 per plan (see the module docstring for pipeline, bound, grammar)."""

    type_name = "fast"
    config_class = FASTConfig

    def __init__(self, config: FASTConfig | None = None, **kwargs: Any) -> None:
        """Build from a config, or from config fields as keyword arguments (not both).

        Before ``fit`` the vocabulary is the bare alphabet (one token per coefficient, no merges) over
        ranges covering the config's displacement box; ``fit`` learns ranges and merges, which changes
        ``vocab_size``: fit before sizing a model's embeddings.
        """
        if config is not None and kwargs:
            raise ValueError(f"FASTTokenizer: got config and keyword fields {sorted(kwargs)}, expected one")
        if config is None:
            config = build_config(FASTConfig, kwargs, "FASTTokenizer")
        if not isinstance(config, FASTConfig):
            raise ValueError(f"config: got {type(config).__name__}, expected FASTConfig")
        self.config = config
        self.fitted = False
        box = box_coefficient_ranges(config.range_x_m, config.range_y_m) * config.scale_per_m
        self._set_ranges(np.floor(box[:, 0]), np.ceil(box[:, 1]))
        self._set_bpe(Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(self._alphabet())}, merges=[])))

    # -- ranges, alphabet, vocabulary -------------------------------------------------------------
    def _set_ranges(self, lo: np.ndarray, hi: np.ndarray, where: str = "coefficient ranges") -> None:
        lo = np.minimum(np.asarray(lo, dtype=np.float64), 0.0)
        hi = np.maximum(np.asarray(hi, dtype=np.float64), 0.0)
        if lo.shape != (N_COEFFS,) or hi.shape != (N_COEFFS,) or not np.all(np.isfinite(lo) & np.isfinite(hi)):
            raise ValueError(f"{where}: got lo {lo.tolist()} hi {hi.tolist()}, expected {N_COEFFS} finite ints each")
        size = int(hi.max() - lo.min()) + 1
        if size > MAX_ALPHABET:
            raise ValueError(
                f"fast.scale_per_m: got {self.config.scale_per_m}, which needs an alphabet of {size} characters "
                f"for {where}; expected at most {MAX_ALPHABET} (lower the scale or the ranges)"
            )
        self._lo = lo.astype(np.int64)
        self._hi = hi.astype(np.int64)
        self._vmin = int(self._lo.min())

    def _alphabet(self) -> list[str]:
        return [chr(CHAR_BASE + k) for k in range(int(self._hi.max()) - self._vmin + 1)]

    def _set_bpe(self, bpe: Tokenizer, where: str = "BPE vocabulary") -> None:
        vocab = bpe.get_vocab()
        size = len(vocab)
        if sorted(vocab.values()) != list(range(size)):
            raise ValueError(f"{where}: ids are not 0..{size - 1}")
        alphabet = self._alphabet()
        missing = [c for c in alphabet if c not in vocab]
        if missing:
            raise ValueError(f"{where}: {len(missing)} alphabet characters have no token (expected all)")
        allowed = set(alphabet)
        strings = [""] * size
        for s, i in vocab.items():
            if not s or not set(s) <= allowed:
                raise ValueError(f"{where}: token {i} {s!r} has characters outside the coefficient alphabet")
            strings[i] = s
        self._bpe = bpe
        self._strings = strings
        self._all_ids = list(range(size))

    # -- sizes and bounds -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._strings)

    @property
    def max_tokens(self) -> int:
        return N_COEFFS

    @property
    def coefficient_ranges(self) -> np.ndarray:
        """(12, 2) int [lo, hi] of each rounded coefficient (units of 1 / scale_per_m metres)."""
        return np.stack([self._lo, self._hi], axis=1)

    @property
    def waypoint_bounds_m(self) -> np.ndarray:
        per_axis = np.abs(_POS_FROM_COEF).sum(axis=1) / (2.0 * self.config.scale_per_m)  # (6,)
        return per_axis * math.sqrt(2.0)

    # -- fitting ----------------------------------------------------------------------------------
    def _ints(self, xy: np.ndarray) -> np.ndarray:
        return np.rint(plan_coefficients(xy) * self.config.scale_per_m)

    def fit(self, trajectories: Sequence[Trajectory]) -> FASTTokenizer:
        """Fit each coefficient's range (percentiles, margin, min span, 0 included) and learn the BPE merges."""
        plans = complete_plans(trajectories)  # (N, 6, 2)
        c, s = self.config, self.config.scale_per_m
        coefs = np.stack([plan_coefficients(p) for p in plans])  # (N, 12) metres
        ranges = np.array(
            [percentile_range(coefs[:, j], c.fit_percentiles, c.fit_margin, c.min_span_m) for j in range(N_COEFFS)]
        )
        self._set_ranges(np.floor(ranges[:, 0] * s), np.ceil(ranges[:, 1] * s), "fitted coefficient ranges")
        alphabet = self._alphabet()
        trainer = trainers.BpeTrainer(
            vocab_size=max(c.bpe_vocab_size, len(alphabet)),
            min_frequency=c.bpe_min_frequency,
            initial_alphabet=alphabet,
            limit_alphabet=len(alphabet),
            special_tokens=[],
            show_progress=False,
        )
        bpe = Tokenizer(models.BPE())
        bpe.train_from_iterator([self._chars(self._ints(p)) for p in plans], trainer)
        self._set_bpe(bpe, "trained BPE vocabulary")
        self.fitted = True
        return self

    def in_range(self, traj: Trajectory) -> bool:
        q = self._ints(plan_xy(traj))
        return bool(np.all((q >= self._lo) & (q <= self._hi)))

    # -- arithmetic -------------------------------------------------------------------------------
    def _chars(self, q: np.ndarray) -> str:
        """Rounded coefficients -> clipped -> trailing zeros dropped (one value kept) -> characters."""
        vals = np.clip(q, self._lo, self._hi).astype(np.int64).tolist()
        while len(vals) > 1 and vals[-1] == 0:
            vals.pop()
        return "".join(chr(CHAR_BASE + v - self._vmin) for v in vals)

    def encode(self, traj: Trajectory) -> list[int]:
        text = self._chars(self._ints(plan_xy(traj)))
        ids = self._bpe.encode(text).ids
        if "".join(self._strings[i] for i in ids) != text:  # cannot happen once _set_bpe checked the alphabet
            raise RuntimeError(f"BPE encoding of {text!r} is not lossless")
        return list(ids)

    def decode(self, ids: Sequence[int]) -> Trajectory:
        text = "".join(self._strings[i] for i in check_ids(ids, self.vocab_size, "ids"))[:N_COEFFS]
        q = np.zeros(N_COEFFS, dtype=np.int64)
        q[: len(text)] = [ord(ch) - CHAR_BASE + self._vmin for ch in text]
        q = np.clip(q, self._lo, self._hi)
        return trajectory_from_xy(plan_from_coefficients(q / self.config.scale_per_m))

    def allowed_next(self, prefix: Sequence[int]) -> tuple[list[int], bool]:
        ids = check_ids(prefix, self.vocab_size, "prefix")
        spelled = sum(len(self._strings[i]) for i in ids)
        if len(ids) >= self.max_tokens or spelled >= N_COEFFS:
            return [], True
        return list(self._all_ids), len(ids) >= 1

    # -- persistence ------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"fitted": self.fitted, "coef_lo": self._lo.tolist(), "coef_hi": self._hi.tolist(), "bpe_file": BPE_FILE}

    def _save_extra(self, directory: Path) -> None:
        tmp = directory / (BPE_FILE + ".tmp")
        self._bpe.save(str(tmp))
        tmp.replace(directory / BPE_FILE)

    @classmethod
    def _from_saved(cls, config: Any, state: dict[str, Any], directory: Path) -> FASTTokenizer:
        tok = cls(config)
        where = directory / BPE_FILE
        if not where.is_file():
            raise TokenizerFileError(f"tokenizer file: {where}: missing; expected the BPE of the FAST tokenizer")
        for key in ("coef_lo", "coef_hi"):
            v = state.get(key)
            if not isinstance(v, list) or len(v) != N_COEFFS or not all(isinstance(x, int) for x in v):
                raise ValueError(f"{directory}: state.{key}: got {v!r}, expected {N_COEFFS} ints")
        tok._set_ranges(np.array(state["coef_lo"]), np.array(state["coef_hi"]), f"{directory}: state.coef_lo/hi")
        try:
            bpe = Tokenizer.from_file(str(where))
        except Exception as exc:  # tokenizers raises its own Exception type for malformed files
            raise ValueError(f"tokenizer file: {where} is not a Hugging Face tokenizers JSON: {exc}") from exc
        tok._set_bpe(bpe, str(where))
        tok.fitted = bool(state.get("fitted", False))
        return tok

    def __repr__(self) -> str:
        return (
            f"FASTTokenizer(scale_per_m={self.config.scale_per_m}, vocab_size={self.vocab_size}, "
            f"bound={self.round_trip_bound_m:.4f} m, fitted={self.fitted})"
        )

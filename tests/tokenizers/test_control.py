"""ControlTokenizer: round trip within half a bin, exact endpoints, grammar, persistence, errors."""

from __future__ import annotations

import numpy as np
import pytest

from drive_vla.tokenizers import ControlTokenizer, TokenizerFileError
from drive_vla.types import Control


def test_round_trip_within_bound():
    tok = ControlTokenizer(steer_bins=21, throttle_bins=11, brake_bins=5)
    assert tok.vocab_size == 37
    assert tok.field_bounds == pytest.approx({"steer": 0.05, "throttle": 0.05, "brake": 0.125})
    assert tok.round_trip_bound == pytest.approx(0.125)
    rng = np.random.default_rng(0)
    for _ in range(500):
        c = Control(steer=rng.uniform(-1, 1), throttle=rng.uniform(0, 1), brake=rng.uniform(0, 1))
        ids = tok.encode(c)
        assert ids[0] in range(0, 21) and ids[1] in range(21, 32) and ids[2] in range(32, 37)
        out = tok.decode(ids)
        for f, bound in tok.field_bounds.items():
            assert abs(getattr(out, f) - getattr(c, f)) <= bound + 1e-12


def test_endpoints_and_zero_steer_are_exact():
    tok = ControlTokenizer()
    for c in (Control(0.0, 0.0, 0.0), Control.emergency_brake(), Control(-1.0, 1.0, 0.0), Control(1.0, 0.0, 1.0)):
        assert tok.decode(tok.encode(c)) == c
    # Positive steer (left) and negative steer stay apart.
    assert tok.decode(tok.encode(Control(steer=0.3))).steer > 0 > tok.decode(tok.encode(Control(steer=-0.3))).steer


def test_grammar_and_bad_ids():
    tok = ControlTokenizer(steer_bins=3, throttle_bins=2, brake_bins=2)
    assert tok.allowed_next([]) == ([0, 1, 2], False)
    assert tok.allowed_next([1]) == ([3, 4], False)
    assert tok.allowed_next([1, 3]) == ([5, 6], False)
    assert tok.allowed_next([1, 3, 6]) == ([], True)
    with pytest.raises(ValueError, match=r"ids\[1\]: got 0, expected a throttle id in 3..4"):
        tok.decode([1, 0, 5])
    with pytest.raises(ValueError, match=r"ids: got 2 ids, expected exactly 3"):
        tok.decode([1, 3])
    with pytest.raises(ValueError, match=r"ids\[0\]: got 7"):
        tok.decode([7, 3, 5])
    with pytest.raises(ValueError, match="control: got tuple"):
        tok.encode((0.0, 0.0, 0.0))


def test_save_load_and_missing_files(tmp_path):
    tok = ControlTokenizer(steer_bins=65)
    tok.save_pretrained(tmp_path)
    loaded = ControlTokenizer.from_pretrained(tmp_path)
    assert loaded.config == tok.config
    c = Control(0.123, 0.4, 0.05)
    assert loaded.encode(c) == tok.encode(c)
    with pytest.raises(TokenizerFileError, match="control_tokenizer.json"):
        ControlTokenizer.from_pretrained(tmp_path / "empty")


@pytest.mark.parametrize("kwargs, field", [({"steer_bins": 1}, "steer_bins"), ({"brake_bins": 2.5}, "brake_bins")])
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ControlTokenizer(**kwargs)

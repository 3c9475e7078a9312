"""Meta-action sentences: one per label, read back exactly from explanation text."""

from __future__ import annotations

import pytest

from drive_vla.data.labels import META_ACTIONS, meta_action_from_text, meta_action_sentence
from drive_vla.sim.qa import meta_action_sentence as qa_sentence


def test_every_meta_action_sentence_reads_back_to_its_label():
    sentences = {m: meta_action_sentence(m) for m in META_ACTIONS}
    assert len(set(sentences.values())) == len(META_ACTIONS) == 12
    for meta, sentence in sentences.items():
        assert meta_action_from_text(sentence) == meta
        assert meta_action_from_text(f"{sentence} The light ahead is red.") == meta
        assert meta_action_from_text(f"I see a truck.  {sentence.upper()}") == meta  # anywhere, any case
    assert sentences["keep speed, straight"] == "Keep speed and go straight."
    assert sentences["stop, left"] == "Stop, heading left."
    assert qa_sentence is meta_action_sentence  # the QA generator uses the same rule


def test_meta_action_from_text_without_a_sentence():
    assert meta_action_from_text(None) is None
    assert meta_action_from_text("") is None
    assert meta_action_from_text("ar ar ar ar") is None
    assert meta_action_from_text("Slow down and turn") is None  # truncated
    assert meta_action_from_text("Nonstop, heading left.") is None  # not a whole phrase
    # the first sentence wins when several occur
    assert meta_action_from_text("Stop, heading right. Then accelerate and go straight.") == "stop, right"


def test_meta_action_sentence_rejects_unknown_labels():
    with pytest.raises(ValueError, match=r"meta_action: got 'yield'"):
        meta_action_sentence("yield")
    with pytest.raises(ValueError, match=r"meta_action: got 'stop, up'"):
        meta_action_sentence("stop, up")

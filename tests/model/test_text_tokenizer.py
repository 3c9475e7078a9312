"""Corpus-fitted text tokenizer (build, save/load with the policy) and the meta-action sentence in explanations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drive_vla.data.datamodule import SampleDataset
from drive_vla.data.labels import META_ACTIONS, meta_action_sentence
from drive_vla.model.config import DEFAULT_EXPLAIN_QUESTION, LMConfig
from drive_vla.model.generate import plan_with_text
from drive_vla.model.text_tokenizer import build_text_tokenizer, corpus_tokenizer
from drive_vla.policy import DrivingPolicy
from drive_vla.types import Batch, Trajectory

TEMPLATE = "{} The car ahead is braking, so I keep a safe distance."


def _corpus() -> list[str]:
    return [TEMPLATE.format(meta_action_sentence(m)) for m in META_ACTIONS] * 3 + [DEFAULT_EXPLAIN_QUESTION] * 3


def test_corpus_tokenizer_merges_templated_words_and_spells_any_text():
    tok = corpus_tokenizer(_corpus(), vocab_size=512)
    sentence = TEMPLATE.format("Slow down and turn left.")
    ids = tok.encode(sentence, add_special_tokens=False)
    # one token per word or punctuation mark (19) instead of one per byte (77)
    assert len(ids) == 19 and len(sentence.encode()) == 77
    assert tok.decode(ids) == sentence
    odd = "Ünïcødé 🚗 — 中文\n\ttabs &<>"
    assert tok.decode(tok.encode(odd, add_special_tokens=False)) == odd
    assert tok.unk_token_id not in tok.encode(odd, add_special_tokens=False)
    assert [tok.convert_ids_to_tokens(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]


def test_corpus_tokenizer_is_deterministic_and_order_free():
    a = corpus_tokenizer(_corpus(), vocab_size=400)
    b = corpus_tokenizer(list(reversed(_corpus())), vocab_size=400)
    assert a.get_vocab() == b.get_vocab()
    assert len(a) <= 400


def test_text_tokenizer_config_errors():
    with pytest.raises(ValueError, match=r"lm.text_tokenizer: got 'bpe'"):
        LMConfig(text_tokenizer="bpe")
    with pytest.raises(ValueError, match=r"lm.text_vocab_size: got 100"):
        LMConfig(text_vocab_size=100)
    with pytest.raises(ValueError, match=r"lm.text_tokenizer: 'corpus' needs fit_texts"):
        build_text_tokenizer("corpus", None)
    assert len(build_text_tokenizer("byte")) == 260


def test_saved_policy_keeps_the_fitted_tokenizer(tiny_config, samples, observation, tmp_path):
    cfg = tiny_config("lm.text_tokenizer=corpus", "lm.text_vocab_size=512", "max_explanation_tokens=4")
    policy = DrivingPolicy.build(cfg, fit_texts=SampleDataset(samples).texts())
    tok = policy.model.text_tokenizer
    assert 260 < len(tok) - 5 <= 512  # 5 = the layout's <image> <state> <plan> </plan> <ctrl>
    assert len(tok.encode(samples[0].targets.explanation, add_special_tokens=False)) <= 4  # 15 bytes
    loaded = DrivingPolicy.from_pretrained(policy.save_pretrained(tmp_path / "p"))
    assert loaded.model.text_tokenizer.get_vocab() == tok.get_vocab()
    assert loaded.model.layout.special == policy.model.layout.special
    assert loaded.explain(observation) == policy.explain(observation)
    np.testing.assert_allclose(loaded.predict(observation).trajectory.xy, policy.predict(observation).trajectory.xy)


def test_explanation_target_starts_with_the_meta_action_sentence(tiny_config, samples):
    model = DrivingPolicy.build(tiny_config()).model.eval()  # eval: the explanation is the text target
    unlabelled = samples[0]  # an explanation, no meta-action
    assert unlabelled.targets.meta_action is None
    assert model._text_target(unlabelled) == (DEFAULT_EXPLAIN_QUESTION, unlabelled.targets.explanation)
    labelled = dataclasses.replace(
        unlabelled, targets=dataclasses.replace(unlabelled.targets, meta_action="decelerate, left")
    )
    question, answer = model._text_target(labelled)
    assert question == DEFAULT_EXPLAIN_QUESTION
    assert answer == f"Slow down and turn left. {unlabelled.targets.explanation}"
    unknown = dataclasses.replace(unlabelled, targets=dataclasses.replace(unlabelled.targets, meta_action="yield"))
    assert model._text_target(unknown)[1] == unlabelled.targets.explanation  # not a META_ACTIONS label
    assert "text_ce" in model.train().losses(Batch.from_samples([labelled, *samples[1:]]))


def test_plan_meta_action_comes_from_the_generated_sentence():
    traj = Trajectory(xy=np.zeros((6, 2), np.float32))
    plan = plan_with_text(traj, None, "Slow down and turn left. A car is crossing.", {"total": 1.0})
    assert plan.meta_action == "decelerate, left" and plan.timings_ms == {"total": 1.0}
    assert plan_with_text(traj, None, "ar ar ar", {}).meta_action is None
    assert plan_with_text(traj, None, None, {}).meta_action is None

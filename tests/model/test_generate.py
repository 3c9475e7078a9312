"""Generation: constrained decoding, explanations on request, batching, head mode, temporal memory."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from drive_vla.policy import DrivingPolicy
from drive_vla.tokenizers import ACTION_TOKENIZERS
from drive_vla.types import FUTURE_STEPS, Batch, Control, Plan


def _bias_lm_head_towards_text(model) -> None:
    """Make every text token far likelier than any action/control token (unconstrained greedy would pick text)."""
    head = model.lm.get_output_embeddings()
    with torch.no_grad():
        hidden = model.hidden_size
        head.weight[: model.layout.text_vocab] += 5.0 / hidden**0.5


@pytest.mark.parametrize("tokenizer", sorted(ACTION_TOKENIZERS))
def test_constrained_decoding_always_yields_valid_plans(tiny_config, observation, tokenizer):
    for seed in range(3):
        torch.manual_seed(seed)
        policy = DrivingPolicy.build(tiny_config(f"action_tokenizer={tokenizer}", "action_tokenizer_kwargs={}"))
        if seed == 2:
            _bias_lm_head_towards_text(policy.model)
        plan = policy.predict(observation)
        assert isinstance(plan, Plan) and isinstance(plan.controls, Control)
        assert plan.trajectory.xy.shape == (FUTURE_STEPS, 2) and np.isfinite(plan.trajectory.xy).all()
        assert plan.text is None
        n_actions = policy.model.last_decode_stats["generated_tokens"][0] - 3  # minus steer/throttle/brake
        assert 1 <= n_actions <= policy.model.action_tokenizer.max_tokens + 1


def test_explanation_only_when_asked(tiny_config, observation):
    policy = DrivingPolicy.build(tiny_config("max_explanation_tokens=5"))
    assert policy.predict(observation).text is None
    plan = policy.model.plan(Batch.from_observations([observation]), explain=True)[0]
    assert isinstance(plan.text, str)
    assert policy.model.last_decode_stats["generated_tokens"][0] <= 12 + 1 + 3 + 5
    answer = policy.explain(observation, question="Why slow down?")
    assert isinstance(answer, str)
    with pytest.raises(ValueError, match="question"):
        policy.explain(observation, question="   ")


def test_batched_decoding_matches_one_by_one(tiny_config, samples):
    policy = DrivingPolicy.build(tiny_config())
    observations = [s.observation for s in samples[:2]]
    observations[1] = dataclasses.replace(observations[1], instruction="turn left at the second light, then stop")
    together = policy.predict_batch(observations)
    alone = [policy.predict(o) for o in observations]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a.trajectory.xy, b.trajectory.xy, atol=1e-5)
        assert a.controls == b.controls
    texts = [policy.explain(o) for o in observations]
    batch_texts = [
        p.text for p in policy.model.plan(Batch.from_observations(observations), explain=True, memory="read")
    ]
    assert batch_texts == texts


def test_head_mode_is_one_forward_pass(tiny_config, observation):
    policy = DrivingPolicy.build(tiny_config("output_mode=head"))
    plan = policy.predict(observation)
    assert policy.model.last_decode_stats["forward_passes"] == 1
    assert plan.controls is None and plan.text is None
    assert plan.trajectory.xy.shape == (FUTURE_STEPS, 2)
    assert {"vision", "prefill", "decode", "total"} <= set(plan.timings_ms)
    assert plan.timings_ms["decode"] < plan.timings_ms["total"]


def test_temporal_memory_resets(tiny_config, observation):
    policy = DrivingPolicy.build(tiny_config("output_mode=head", "vision.memory_frames=2"))
    first = policy.predict(observation).trajectory.xy
    second = policy.predict(observation).trajectory.xy
    assert not np.allclose(first, second, atol=1e-6)  # the past frame changed the plan
    policy.explain(observation)  # reads the memory without adding to it
    assert len(policy.model.vision._memory) == 2
    policy.reset()
    assert policy.model.vision._memory == []
    np.testing.assert_array_equal(policy.predict(observation).trajectory.xy, first)

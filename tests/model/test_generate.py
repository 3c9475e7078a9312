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
    assert policy.explain_batch(observations) == texts
    assert policy.explain_batch(observations, question="Why slow down?") == [
        policy.explain(o, question="Why slow down?") for o in observations
    ]
    with pytest.raises(ValueError, match="question"):
        policy.explain_batch(observations, question=" ")


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


@pytest.mark.parametrize("mode", ["head", "tokens"])
def test_reusing_the_system_prompt_kv_equals_a_full_recompute(tiny_config, samples, mode):
    """The system prompt's KV cache, computed once, gives the same plans, tokens and explanations as
    prefilling every prompt whole, for a batch whose instructions differ in length."""
    import dataclasses

    from drive_vla.policy import DrivingPolicy
    from drive_vla.types import Batch

    cfg = tiny_config(f"output_mode={mode}", "system_prompt=You are a careful driver. Plan the next 3 s.")
    torch.manual_seed(0)
    policy = DrivingPolicy.build(cfg)
    model = policy.model.eval()
    obs = [
        dataclasses.replace(s.observation, instruction="turn left" if i % 2 else "keep following the road please")
        for i, s in enumerate(samples)
    ]
    batch = Batch.from_observations(obs)
    assert len(model.layout.system_ids) > 5
    reused = model.plan(batch, explain=True)
    stats = dict(model.last_decode_stats)
    model.cfg = dataclasses.replace(model.cfg, reuse_system_kv=False)
    full = model.plan(batch, explain=True)
    for a, b in zip(reused, full):
        np.testing.assert_allclose(a.trajectory.xy, b.trajectory.xy, atol=1e-4)
        assert a.text == b.text and a.meta_action == b.meta_action
    assert stats["generated_tokens"] == model.last_decode_stats["generated_tokens"]
    single = model.plan(Batch.from_observations(obs[:1]))
    model.cfg = dataclasses.replace(model.cfg, reuse_system_kv=True)
    np.testing.assert_allclose(
        model.plan(Batch.from_observations(obs[:1]))[0].trajectory.xy, single[0].trajectory.xy, atol=1e-4
    )


def test_the_cached_system_prefix_follows_the_weights(tiny_config):
    from drive_vla.model.generate import _system_prefix
    from drive_vla.policy import DrivingPolicy

    model = DrivingPolicy.build(tiny_config("system_prompt=You are a careful driver.")).model.eval()
    first = _system_prefix(model)
    assert _system_prefix(model) is first
    with torch.no_grad():
        model.lm.get_input_embeddings().weight.add_(0.01)  # what an optimiser step does
    assert _system_prefix(model) is not first
    model.train()
    assert _system_prefix(model) is None


def test_logits_of_the_allowed_ids_alone_decode_the_same_plans(tiny_config, samples):
    """Constrained steps multiply the hidden state by the allowed rows of the head only; the plans, controls and
    explanations equal those decoded from the whole vocabulary's logits."""
    from drive_vla.model import generate

    head = torch.nn.Linear(8, 50)
    hidden = torch.randn(8)
    idx = torch.tensor([3, 17, 42])
    rows = generate.StepLogits(hidden[None], head, *generate.head_matrix(head)).row(0)
    assert torch.allclose(rows.at(idx), head(hidden[None])[0][idx], atol=1e-6)
    cache: dict = {}
    cached = generate.StepLogits(hidden[None], head, *generate.head_matrix(head), rows_cache=cache).row(0)
    assert torch.allclose(cached.at(idx, ("k",)), head(hidden[None])[0][idx], atol=1e-6)
    assert ("k",) in cache and cache[("k",)][4].shape == (3, 8)
    with torch.no_grad():
        head.weight.mul_(2.0)  # an in-place update (an optimiser step) makes the gathered rows stale
    again = generate.StepLogits(hidden[None], head, *generate.head_matrix(head), rows_cache=cache).row(0)
    assert torch.allclose(again.at(idx, ("k",)), head(hidden[None])[0][idx], atol=1e-6)
    policy = DrivingPolicy.build(tiny_config())
    batch = Batch.from_samples(samples[:3])
    restricted = policy.model.plan(batch, explain=True)
    policy.model.cfg = dataclasses.replace(policy.model.cfg, restrict_logits=False)
    full = policy.model.plan(batch, explain=True)
    for a, b in zip(restricted, full):
        assert np.array_equal(a.trajectory.xy, b.trajectory.xy) and a.text == b.text
        assert (a.controls is None) == (b.controls is None)
        if a.controls is not None:
            assert a.controls == b.controls

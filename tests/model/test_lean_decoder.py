"""The lean decoder forward equals Hugging Face's (hidden states, plans, explanations) and is used only where
it reproduces the LM."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from drive_vla.model import lean_decoder
from drive_vla.policy import DrivingPolicy
from drive_vla.types import Batch

SMALL = dict(
    vocab_size=97,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)


def _lm(kind: str):
    torch.manual_seed(0)
    if kind == "qwen2":  # biases on q, k and v
        return Qwen2ForCausalLM(Qwen2Config(**SMALL)).eval()
    return LlamaForCausalLM(LlamaConfig(**SMALL)).eval()


@pytest.mark.parametrize("sdpa_gqa", [True, False])
@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_lean_passes_equal_hugging_face_with_padding_and_a_cache(kind, sdpa_gqa, monkeypatch):
    """A padded prefill, then passes of one and of two tokens with a padded row: every real position's hidden
    state matches Hugging Face's decoder with its own cache."""
    if sdpa_gqa and not lean_decoder.SDPA_GQA:
        pytest.skip("this torch has no enable_gqa in SDPA")
    monkeypatch.setattr(lean_decoder, "SDPA_GQA", sdpa_gqa)  # False: the expanded-heads path of torch 2.4
    lm = _lm(kind)
    assert lean_decoder.supports(lm)
    decoder = lm.get_decoder()
    gen = torch.Generator().manual_seed(1)
    b, h = 3, SMALL["hidden_size"]
    mask = torch.ones(b, 7, dtype=torch.long)
    mask[1, 5:] = 0  # a shorter prompt, right-padded
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    steps = [(torch.randn(b, 7, h, generator=gen), mask, pos)]
    nxt = mask.sum(1)
    for width, pad_row in ((1, None), (2, 2)):
        m = torch.ones(b, width, dtype=torch.long)
        if pad_row is not None:
            m[pad_row, 1:] = 0  # this row feeds one token where the others feed two
        mask = torch.cat([mask, m], 1)
        p = nxt[:, None] + torch.arange(width)[None]
        steps.append((torch.randn(b, width, h, generator=gen), mask, p))
        nxt = nxt + m.sum(1)
    hf_cache, lean_cache = DynamicCache(), None
    with torch.no_grad():
        for embeds, m, p in steps:
            ref = decoder(
                inputs_embeds=embeds, attention_mask=m, position_ids=p, past_key_values=hf_cache, use_cache=True
            )
            hf_cache = ref.past_key_values
            out = lean_decoder.lean_forward(lm, embeds, m, p, lean_cache)
            lean_cache = out.past_key_values
            real = m[:, -embeds.shape[1] :].bool()
            torch.testing.assert_close(out.last_hidden_state[real], ref.last_hidden_state[real], atol=1e-5, rtol=1e-5)
    assert lean_cache.length == steps[-1][1].shape[1]


def test_the_cache_grows_past_its_first_capacity():
    lm = _lm("llama")
    cache = None
    with torch.no_grad():
        first = lean_decoder.lean_forward(lm, torch.randn(1, 4, 32), torch.ones(1, 4), torch.arange(4)[None], cache)
        cache = first.past_key_values
        cap = cache.capacity
        for t in range(4, cap + 10):
            cache = lean_decoder.lean_forward(
                lm, torch.randn(1, 1, 32), torch.ones(1, t + 1), torch.tensor([[t]]), cache
            ).past_key_values
    assert cache.length == cap + 10 and cache.capacity >= cap + 10
    with pytest.raises(ValueError, match="mask"):
        lean_decoder.lean_forward(lm, torch.randn(1, 1, 32), torch.ones(1, 3), torch.tensor([[0]]), cache)


def test_an_lm_it_does_not_reproduce_goes_through_hugging_face():
    scaled = LlamaForCausalLM(LlamaConfig(**SMALL, rope_scaling={"rope_type": "linear", "factor": 2.0})).eval()
    assert not lean_decoder.supports(scaled)
    assert not lean_decoder.supports(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("system_prompt", ["Drive.", "You are a careful driver. Plan the next 3 s."])
def test_plans_and_explanations_equal_hugging_face_forward(tiny_config, samples, system_prompt):
    """Tokens mode with explanations over a batch whose instructions differ in length: the same waypoints,
    controls, texts and token counts with the lean forward and with Hugging Face's."""
    cfg = tiny_config(f"system_prompt={system_prompt}")
    torch.manual_seed(0)
    model = DrivingPolicy.build(cfg).model.eval()
    head = model.lm.get_output_embeddings()
    with torch.no_grad():  # text far likelier than actions: unconstrained steps would show a wrong mask
        head.weight[: model.layout.text_vocab] += 5.0 / model.hidden_size**0.5
    obs = [
        dataclasses.replace(s.observation, instruction="turn left" if i % 2 else "keep following the road please")
        for i, s in enumerate(samples[:3])
    ]
    batch = Batch.from_observations(obs)
    assert model.cfg.lean_decoding
    lean = model.plan(batch, explain=True)
    lean_stats = dict(model.last_decode_stats)
    model.cfg = dataclasses.replace(model.cfg, lean_decoding=False)
    hf = model.plan(batch, explain=True)
    for a, b in zip(lean, hf):
        np.testing.assert_array_equal(a.trajectory.xy, b.trajectory.xy)
        assert a.controls == b.controls and a.text == b.text
    assert lean_stats == model.last_decode_stats


def test_a_single_observation_takes_the_unmasked_path_and_plans_the_same(tiny_config, samples):
    """One row without padding: the lean forward's single-token passes run without a mask; the plan, controls
    and explanation equal Hugging Face's."""
    torch.manual_seed(0)
    model = DrivingPolicy.build(tiny_config()).model.eval()
    batch = Batch.from_observations([samples[0].observation])
    lean = model.plan(batch, explain=True)[0]
    model.cfg = dataclasses.replace(model.cfg, lean_decoding=False)
    hf = model.plan(batch, explain=True)[0]
    np.testing.assert_array_equal(lean.trajectory.xy, hf.trajectory.xy)
    assert lean.controls == hf.controls and lean.text == hf.text

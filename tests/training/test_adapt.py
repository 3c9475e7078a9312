"""What trains: frozen modules stay fixed, LoRA trains only adapter weights, gradient checkpointing works."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from drive_vla.policy import DrivingPolicy
from drive_vla.training.adapt import apply_lora, freeze_modules, new_token_ids
from drive_vla.training.config import LoraConfig, load_train_config
from drive_vla.training.run import train


class Snapshot(L.Callback):
    """Parameters of the trained network when fit starts and ends, and which modules were in train mode."""

    def on_fit_start(self, trainer, pl_module) -> None:
        self.before = {k: v.detach().clone() for k, v in pl_module.model.named_parameters()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lm_training = pl_module.model.lm.training

    def on_fit_end(self, trainer, pl_module) -> None:
        self.after = {k: v.detach().clone() for k, v in pl_module.model.named_parameters()}
        self.trainable = {k for k, v in pl_module.model.named_parameters() if v.requires_grad}

    def changed(self) -> set[str]:
        return {k for k in self.before if not torch.equal(self.before[k], self.after[k])}


def _run(tmp_path, train_configs, overrides, samples, recipe="embedded_tiny.yaml"):
    snap = Snapshot()
    cfg = load_train_config(train_configs / recipe, overrides + ["trainer.max_steps=3", "trainer.val_every_n_steps=0"])
    result = train(cfg, tmp_path / "run", train_samples=samples, callbacks=[snap])
    return snap, result


def test_align_freezes_the_lm(tmp_path, train_configs, tiny_samples, tiny_overrides, tiny_model_overrides):
    snap, _ = _run(tmp_path, train_configs, tiny_overrides + tiny_model_overrides, tiny_samples[:8], "align.yaml")
    changed = snap.changed()
    assert not any(k.startswith("lm.") for k in changed), "align must not move the LM"
    assert not any(k.startswith("lm.") for k in snap.trainable)
    assert any(k.startswith("vision.") for k in changed)  # the vision tokenizer + projector learn
    assert snap.lm_training is False  # frozen modules stay in eval mode while training


def test_lora_trains_only_adapter_weights(tmp_path, train_configs, tiny_samples, tiny_overrides, tiny_model_overrides):
    overrides = (
        tiny_overrides
        + tiny_model_overrides
        + [
            "lora.enabled=true",
            "lora.r=4",
            "lora.train_new_tokens=false",
            "lora.target_modules=[q_proj, v_proj]",
            "freeze=[vision, state_encoder, planner_head]",
        ]
    )
    snap, result = _run(tmp_path, train_configs, overrides, tiny_samples[:8])
    assert snap.trainable and all("lora_" in k for k in snap.trainable)
    changed = snap.changed()
    assert changed and all("lora_" in k for k in changed)
    assert any("lora_B" in k for k in changed)  # B starts at zero: it moved
    # The export folds the adapters in: a plain HF LM that from_pretrained loads, same predictions.
    loaded = DrivingPolicy.from_pretrained(result.policy_dir)
    assert "Peft" not in type(loaded.model.lm).__name__
    obs = [s.observation for s in tiny_samples[8:10]]
    result.policy.model.eval()
    a = result.policy.predict_batch(obs)
    b = loaded.predict_batch(obs)
    np.testing.assert_allclose(a[0].trajectory.xy, b[0].trajectory.xy, atol=1e-4)


def test_lora_new_tokens_train_only_their_rows(tiny_model_config):
    policy = DrivingPolicy.build(tiny_model_config)
    model = policy.model
    ids = new_token_ids(model)
    assert ids[0] == min(model.layout.special.values()) and ids[-1] == model.layout.vocab_size - 1
    emb_before = model.lm.get_input_embeddings().weight.detach().clone()
    freeze_modules(model, ["vision", "state_encoder", "planner_head"])
    apply_lora(model, LoraConfig(enabled=True, r=4, target_modules=["q_proj"], train_new_tokens=True))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or "trainable_tokens_delta" in n for n in names)
    delta = next(p for n, p in model.named_parameters() if "trainable_tokens_delta" in n)
    assert delta.shape[0] == len(ids)
    with torch.no_grad():
        delta.add_(0.5)
    model.lm = model.lm.merge_and_unload()
    emb_after = model.lm.get_input_embeddings().weight.detach()
    moved = torch.nonzero((emb_after - emb_before).abs().sum(1) > 0).flatten().tolist()
    assert moved == ids


def test_adapt_errors(tiny_model_config):
    model = DrivingPolicy.build(tiny_model_config).model
    with pytest.raises(ValueError, match=r"freeze: got 'visoin', expected a submodule name"):
        freeze_modules(model, ["visoin"])
    with pytest.raises(ValueError, match=r"lora.target_modules: got \['qkv'\]"):
        apply_lora(model, LoraConfig(enabled=True, target_modules=["qkv"]))


def test_gradient_checkpointing_gives_the_same_loss_and_grads(tiny_model_config, tiny_samples):
    from drive_vla.training.adapt import enable_gradient_checkpointing
    from drive_vla.types import Batch

    batch = Batch.from_samples(tiny_samples[:2])
    results = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = DrivingPolicy.build(tiny_model_config).model.train()
        if ckpt:
            enable_gradient_checkpointing(model)
            assert model.lm.is_gradient_checkpointing
        torch.manual_seed(1)
        loss = sum(model.losses(batch).values())
        loss.backward()
        grad = model.lm.get_input_embeddings().weight.grad.clone()
        results.append((loss.detach(), grad))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-5, rtol=1e-4)


def test_scale_out_strategies_come_from_the_config(tiny_model_config, train_configs):
    from lightning.pytorch.strategies import FSDPStrategy

    from drive_vla.training.run import _strategy

    net = DrivingPolicy.build(tiny_model_config).model
    cfg = load_train_config(
        train_configs / "embedded_tiny.yaml", ["trainer.strategy=fsdp", "trainer.gradient_checkpointing=true"]
    )
    fsdp = _strategy(cfg, net)
    assert isinstance(fsdp, FSDPStrategy)
    wrapped = {c.__name__ for c in fsdp.kwargs["auto_wrap_policy"]._module_classes}
    assert wrapped == {"LlamaDecoderLayer"} and fsdp.kwargs["use_orig_params"]
    assert fsdp._activation_checkpointing_kwargs  # gradient_checkpointing maps onto FSDP's activation checkpointing
    ddp = load_train_config(train_configs / "embedded_tiny.yaml", ["trainer.strategy=ddp"])
    assert _strategy(ddp, net) == "ddp_find_unused_parameters_true"
    assert _strategy(load_train_config(train_configs / "embedded_tiny.yaml"), net) == "auto"

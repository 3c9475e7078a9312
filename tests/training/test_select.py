"""checkpoint.export: closed_loop drives the kept step checkpoints and exports the best one."""

from __future__ import annotations

import json

import pytest
import torch

from drive_vla.policy import DrivingPolicy
from drive_vla.training.config import CheckpointConfig, load_train_config
from drive_vla.training.run import train
from drive_vla.training.select import candidates


def test_closed_loop_export_needs_kept_steps_and_a_training_range_suite():
    with pytest.raises(ValueError, match="checkpoint.export: got 'closed_loop' with checkpoint.keep_steps false"):
        CheckpointConfig(export="closed_loop")
    with pytest.raises(ValueError, match="checkpoint.select_suite: got 'benchmark', a held-out suite"):
        CheckpointConfig(export="closed_loop", keep_steps=True, select_suite="benchmark")
    with pytest.raises(ValueError, match="checkpoint.select_suite: suite: got 'nope'"):
        CheckpointConfig(export="closed_loop", keep_steps=True, select_suite="nope")
    with pytest.raises(ValueError, match="checkpoint.select_from_step / select_max_routes: got -1 / 0"):
        CheckpointConfig(select_from_step=-1)
    CheckpointConfig(export="closed_loop", keep_steps=True)  # the 'select' suite by default


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lora.enabled=true", "checkpoint.export: got 'closed_loop' with lora.enabled=True"),
        ("trainer.strategy=fsdp", "checkpoint.export: got 'closed_loop' with .* trainer.strategy='fsdp'"),
    ],
)
def test_closed_loop_export_refuses_lora_and_fsdp(
    override, message, train_configs, tiny_overrides, tiny_model_overrides
):
    with pytest.raises(ValueError, match=message):
        load_train_config(
            train_configs / "embedded_tiny.yaml",
            tiny_overrides
            + tiny_model_overrides
            + ["checkpoint.keep_steps=true", "checkpoint.export=closed_loop", override],
        )


def test_candidates_are_the_kept_steps_from_the_first_step_on(tmp_path):
    for name in ("step-000002.ckpt", "step-000004.ckpt", "step-000010.ckpt", "last.ckpt", "best.ckpt"):
        (tmp_path / name).write_bytes(b"")
    assert [s for s, _ in candidates(tmp_path, 4)] == [4, 10]
    assert [s for s, _ in candidates(tmp_path, 0)] == [2, 4, 10]


@pytest.mark.slow
def test_closed_loop_export_drives_each_kept_checkpoint_and_exports_the_best(
    tmp_path, train_configs, tiny_samples, tiny_overrides, tiny_model_overrides
):
    cfg = load_train_config(
        train_configs / "embedded_tiny.yaml",
        tiny_overrides
        + tiny_model_overrides
        + [
            "trainer.max_steps=4",
            "checkpoint.every_n_steps=2",
            "checkpoint.keep_steps=true",
            "checkpoint.export=closed_loop",
            "checkpoint.select_suite=select",
            "checkpoint.select_max_routes=1",
            "checkpoint.monitor=''",
            "logging.csv=false",
        ],
    )
    result = train(cfg, tmp_path / "run", train_samples=tiny_samples[:8])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    selection = summary["selection"]
    assert summary["exported"] == "closed_loop" and set(selection["scores"]) == {"step-000002", "step-000004"}
    scores = selection["scores"]
    assert selection["chosen"] == max(sorted(scores), key=lambda n: (scores[n], n))
    for name in scores:  # each candidate was driven and its report kept
        report = json.loads((tmp_path / "run" / "select" / name / "drive_score.json").read_text())
        assert report["driving_score"] == pytest.approx(scores[name])
    chosen = torch.load(
        tmp_path / "run" / "checkpoints" / f"{selection['chosen']}.ckpt", map_location="cpu", weights_only=True
    )["state_dict"]
    exported = DrivingPolicy.from_pretrained(result.policy_dir).model.state_dict()
    for key, value in chosen.items():
        if key.startswith("model."):
            assert torch.equal(exported[key.removeprefix("model.")], value), key

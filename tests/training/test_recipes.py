"""Every recipe under configs/train runs a few steps on tiny fixtures (tiny model, in-memory samples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drive_vla.config import read_yaml
from drive_vla.policy import DrivingPolicy
from drive_vla.training.config import load_train_config
from drive_vla.training.run import train

REPO = Path(__file__).resolve().parents[2]
ALL_RECIPES = sorted((REPO / "configs" / "train").rglob("*.yaml"))
# the perception stage trains one head outside Lightning (tests/training/test_perception.py runs its recipe)
RECIPES = [p for p in ALL_RECIPES if read_yaml(p).get("stage") != "perception"]


def _overrides(path: Path, tiny_overrides, tiny_model_overrides, tiny_policy_dir) -> list[str]:
    data = read_yaml(path)
    out = list(tiny_overrides)
    if data.get("model", {}).get("kind", "vla") == "ego_mlp":
        return out + ["model.overrides.hidden=16"]
    if data.get("init_from"):
        return out + [f"init_from={tiny_policy_dir}"]
    return out + tiny_model_overrides


def test_recipe_set_is_complete():
    names = {p.relative_to(REPO / "configs" / "train").as_posix() for p in ALL_RECIPES}
    for need in ("align.yaml", "instruct.yaml", "plan.yaml", "embedded_tiny.yaml", "ego_mlp.yaml"):
        assert need in names
    assert any("mini" in n for n in names) and any("trainval" in n for n in names)
    assert [p.name for p in ALL_RECIPES if p not in RECIPES] == ["perception_free_space.yaml"]


def test_the_lightning_runner_refuses_the_perception_stage(tmp_path, tiny_policy_dir):
    from drive_vla.training.run import TrainSetupError

    cfg = load_train_config(REPO / "configs/train/perception_free_space.yaml", [f"init_from={tiny_policy_dir}"])
    with pytest.raises(TrainSetupError, match="stage"):
        train(cfg, tmp_path / "run")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.relative_to(REPO / "configs" / "train").as_posix())
def test_recipe_runs_a_few_steps(
    recipe, tmp_path, tiny_samples, tiny_val_samples, tiny_overrides, tiny_model_overrides, tiny_policy_dir
):
    cfg = load_train_config(recipe, _overrides(recipe, tiny_overrides, tiny_model_overrides, tiny_policy_dir))
    result = train(cfg, tmp_path / "run", train_samples=tiny_samples[:12], val_samples=tiny_val_samples[:4])
    assert result.last_checkpoint.is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert np.isfinite(result.metrics["train/loss"])
    assert "val/loss" in result.metrics  # validation ran (every 3 steps)


def test_stage_chain_align_instruct_plan(
    tmp_path, tiny_samples, tiny_val_samples, tiny_overrides, tiny_model_overrides
):
    """align -> instruct -> plan, each starting from the previous stage's exported policy."""
    train_s, val_s = tiny_samples[:8], tiny_val_samples[:4]
    cfg = load_train_config(REPO / "configs/train/align.yaml", tiny_overrides + tiny_model_overrides)
    align = train(cfg, tmp_path / "align", train_samples=train_s, val_samples=val_s)
    prev = align.policy_dir
    for stage in ("instruct", "plan"):
        cfg = load_train_config(REPO / f"configs/train/{stage}.yaml", tiny_overrides + [f"init_from={prev}"])
        res = train(cfg, tmp_path / stage, train_samples=train_s, val_samples=val_s)
        assert res.policy.config == align.policy.config  # the model config travels with the policy
        prev = res.policy_dir
    plans = DrivingPolicy.from_pretrained(prev).predict_batch([s.observation for s in val_s[:2]])
    assert len(plans) == 2 and plans[0].trajectory.xy.shape == (6, 2)

"""Bad input is refused before any work: config keys and values, model fields, missing labels, devices."""

from __future__ import annotations

import pytest
import torch

from drive_vla.cli.main import main
from drive_vla.config import ConfigError
from drive_vla.training.config import load_train_config
from drive_vla.training.run import TrainSetupError, train


def test_unknown_and_mistyped_keys(train_configs):
    recipe = train_configs / "embedded_tiny.yaml"
    with pytest.raises(
        ConfigError, match=r"trainer.max_stepz: unknown key for TrainerConfig \(did you mean 'max_steps'\?\)"
    ):
        load_train_config(recipe, ["trainer.max_stepz=3"])
    with pytest.raises(ConfigError, match=r"data.batch_size: got 'four', expected an integer"):
        load_train_config(recipe, ["data.batch_size=four"])
    with pytest.raises(ConfigError, match=r"trainer.strategy: got 'deepspeed', expected one of"):
        load_train_config(recipe, ["trainer.strategy=deepspeed"])
    with pytest.raises(ConfigError, match=r"data.require_labels: got \['answers'\]"):
        load_train_config(recipe, ["data.require_labels=[answers]"])
    with pytest.raises(ConfigError, match=r"loss: got all weights 0"):
        load_train_config(
            recipe, [f"loss.{k}=0" for k in ("waypoint_ce", "control_ce", "text_ce", "head_l1", "head_kl")]
        )
    with pytest.raises(ConfigError, match="config file: .*nope.yaml does not exist"):
        load_train_config(train_configs / "nope.yaml")


def test_init_from_excludes_a_model_section(train_configs):
    with pytest.raises(
        ConfigError, match=r"model: got path='configs/model/tiny.yaml'.*expected an empty model section"
    ):
        load_train_config(train_configs / "plan.yaml", ["model.path=configs/model/tiny.yaml"])
    with pytest.raises(ConfigError, match=r"lora.enabled: got true for model.kind='ego_mlp'"):
        load_train_config(train_configs / "ego_mlp.yaml", ["lora.enabled=true"])


def test_unknown_model_field_fails_before_any_work(tmp_path, train_configs, tiny_samples, tiny_overrides):
    cfg = load_train_config(
        train_configs / "embedded_tiny.yaml",
        tiny_overrides + ["model.path=configs/model/tiny.yaml", "model.overrides.lm.hiden_size=32"],
    )
    with pytest.raises(
        TrainSetupError, match=r"model \(configs/model/tiny.yaml\): lm.hiden_size: unknown key for LMConfig"
    ):
        train(cfg, tmp_path / "run", train_samples=tiny_samples[:4])
    assert not (tmp_path / "run").exists()


def test_missing_dataset_and_qa_file(tmp_path, train_configs, tiny_overrides):
    cfg = load_train_config(
        train_configs / "embedded_tiny.yaml", tiny_overrides + [f"data.dataroot={tmp_path / 'none'}"]
    )
    with pytest.raises(TrainSetupError, match=r"data.dataroot/version: .*none/v1.0-embedded does not exist"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("recipe", "missing"), [("align.yaml", r"\['qa'\]"), ("instruct.yaml", r"\['qa', 'explanation'\]")]
)
def test_stage_without_its_labels_fails_before_any_work(
    tmp_path, train_configs, unlabelled_samples, tiny_overrides, tiny_model_overrides, tiny_policy_dir, recipe, missing
):
    extra = tiny_model_overrides if recipe == "align.yaml" else [f"init_from={tiny_policy_dir}"]
    cfg = load_train_config(train_configs / recipe, tiny_overrides + extra)
    with pytest.raises(TrainSetupError, match=rf"stage '\w+' needs {missing} labels, but none of the 12 probed"):
        train(cfg, tmp_path / "run", train_samples=unlabelled_samples)
    assert not (tmp_path / "run").exists()


def test_stage_without_labels_on_a_dataset_on_disk(tmp_path, train_configs, tiny_overrides, tiny_model_overrides):
    import nuscenes_factory

    root = tmp_path / "nuscenes"
    nuscenes_factory.write_synthetic_dataset(root, scenes=2, n_keyframes=6, with_labels=False)
    cfg = load_train_config(
        train_configs / "align.yaml",
        tiny_overrides + tiny_model_overrides + [f"data.dataroot={root}", "data.version=v1.0-synthetic"],
    )
    with pytest.raises(TrainSetupError, match=r"needs \['qa'\] labels.*train split 'train'.*make-embedded. writes QA"):
        train(cfg, tmp_path / "run")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_gpu_recipe_without_gpu(tmp_path, train_configs, tiny_samples, tiny_policy_dir):
    cfg = load_train_config(train_configs / "nuscenes" / "trainval_qwen05b_plan.yaml", [f"init_from={tiny_policy_dir}"])
    with pytest.raises(TrainSetupError, match=r"trainer.accelerator: got 'gpu' but no CUDA device"):
        train(cfg, tmp_path / "run", train_samples=tiny_samples)


def test_cli_reports_config_errors(tmp_path, train_configs, capsys):
    code = main(
        ["train", "--config", str(train_configs / "embedded_tiny.yaml"), "--set", "optim.lr=-1", "--out", str(tmp_path)]
    )
    assert code == 2
    assert "optim.lr: got -1.0, expected > 0" in capsys.readouterr().err
    assert main(["train", "--config", str(train_configs / "ego_mlp.yaml"), "--out", "x", "--print-config"]) == 0
    assert "kind: ego_mlp" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["freeze=[visoin]"], r"freeze: got 'visoin', expected a submodule name"),
        (["optim.lr_mult={vision.backbon: 0.1}"], r"optim.lr_mult: prefixes \['vision.backbon'\] match no parameter"),
        (["lora.enabled=true", "lora.target_modules=[qkv_fused]"], r"lora.target_modules: got \['qkv_fused'\]"),
    ],
)
def test_model_names_are_checked_before_training(
    tmp_path, train_configs, tiny_samples, tiny_overrides, tiny_model_overrides, overrides, message
):
    cfg = load_train_config(train_configs / "embedded_tiny.yaml", tiny_overrides + tiny_model_overrides + overrides)
    with pytest.raises(TrainSetupError, match=message):
        train(cfg, tmp_path / "run", train_samples=tiny_samples[:4])
    assert not (tmp_path / "run").exists()

"""Corrupt files: a policy folder, a dataset or a YAML config that is damaged gives one clear error.

Each error names the file, the record or field where there is one, and what was expected.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from nuscenes_factory import write_synthetic_dataset

from drive_vla.config import ConfigError, load_config
from drive_vla.data.images import ImageError
from drive_vla.data.index import DatasetError
from drive_vla.data.reader import NuScenesReader
from drive_vla.policy import CONFIG_FILE, WEIGHTS_FILE, DrivingPolicy

_spec = importlib.util.spec_from_file_location("model_fixtures", Path(__file__).parent / "model" / "conftest.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

VERSION = "v1.0-synthetic"


# ---------------------------------------------------------------------------------------------- policy


@pytest.fixture(scope="module")
def saved_policy(tmp_path_factory) -> Path:
    from drive_vla.model.config import ModelConfig

    policy = DrivingPolicy.build(load_config(ModelConfig, fx.TINY_YAML, list(fx.TEST_OVERRIDES)))
    return policy.save_pretrained(tmp_path_factory.mktemp("policy") / "policy")


@pytest.fixture
def policy_dir(saved_policy, tmp_path) -> Path:
    """A fresh copy of the saved tiny policy, free to damage."""
    return Path(shutil.copytree(saved_policy, tmp_path / "policy"))


def test_intact_policy_loads(policy_dir):
    assert DrivingPolicy.from_pretrained(policy_dir).config.lm.hidden_size == 32


def test_missing_weights_name_the_file(policy_dir):
    (policy_dir / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{WEIGHTS_FILE} is missing; expected a saved DrivingPolicy"):
        DrivingPolicy.from_pretrained(policy_dir)


def test_truncated_weights_name_the_file_and_size(policy_dir):
    weights = policy_dir / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{weights}: got {len(data) // 2} bytes, expected {len(data)}") as err:
        DrivingPolicy.from_pretrained(policy_dir)
    assert "truncated" in str(err.value)


def test_truncated_weights_without_checksums_name_the_file(policy_dir):
    """A policy saved before checksums existed: safetensors' own error, wrapped with the path."""
    (policy_dir / "checksums.json").unlink()
    weights = policy_dir / WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{weights}: .*expected a complete safetensors file"):
        DrivingPolicy.from_pretrained(policy_dir)


def test_tampered_weights_name_the_file_and_checksum(policy_dir):
    weights = policy_dir / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    mid = len(data) // 2  # well past the header: a tensor's bytes, so safetensors itself would load it
    data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{weights}: got sha256 [0-9a-f]{{12}}.*, expected [0-9a-f]{{12}}"):
        DrivingPolicy.from_pretrained(policy_dir)


def test_tampered_tokenizer_file_names_the_file(policy_dir):
    path = next(p for p in sorted((policy_dir / "action_tokenizer").rglob("*")) if p.is_file())
    path.write_text(path.read_text().replace("1", "2", 1))
    with pytest.raises(ValueError, match=rf"{path}: got sha256"):
        DrivingPolicy.from_pretrained(policy_dir)


def test_missing_config_names_the_file(policy_dir):
    (policy_dir / CONFIG_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{CONFIG_FILE} is missing; expected a saved DrivingPolicy"):
        DrivingPolicy.from_pretrained(policy_dir)


def test_truncated_config_names_the_file_and_missing_keys(policy_dir):
    cfg = policy_dir / CONFIG_FILE
    lines = cfg.read_text().splitlines(keepends=True)
    cfg.write_text("".join(lines[: len(lines) // 2]))  # whole lines: still valid YAML, keys silently absent
    with pytest.raises(ValueError, match=rf"{cfg}: .*missing keys \[.*\].*expected the complete config"):
        DrivingPolicy.from_pretrained(policy_dir)


def test_config_cut_mid_value_names_the_file(policy_dir):
    cfg = policy_dir / CONFIG_FILE
    text = cfg.read_text()
    cut = text.index("  hidden_size: 32\n") + len("  hidden_size: 3")
    cfg.write_text(text[:cut])  # mid-way through a value: "hidden_size: 3" parses, the rest is gone
    with pytest.raises(ValueError, match=rf"{cfg}: missing keys \[.*\]"):
        DrivingPolicy.from_pretrained(policy_dir)


def test_config_with_a_wrong_type_names_the_file_and_field(policy_dir):
    cfg = policy_dir / CONFIG_FILE
    text = cfg.read_text()
    assert "  hidden_size: 32\n" in text
    cfg.write_text(text.replace("  hidden_size: 32\n", "  hidden_size: thirty-two\n", 1))
    with pytest.raises(ConfigError, match=rf"{cfg}: .*hidden_size: got 'thirty-two', expected an integer"):
        DrivingPolicy.from_pretrained(policy_dir)


def test_edited_but_complete_config_still_loads(policy_dir, caplog):
    cfg = policy_dir / CONFIG_FILE
    text = cfg.read_text()
    key = "max_explanation_tokens: 12\n"
    assert key in text
    cfg.write_text(text.replace(key, "max_explanation_tokens: 10\n"))
    with caplog.at_level("WARNING"):
        assert DrivingPolicy.from_pretrained(policy_dir).config.max_explanation_tokens == 10
    assert CONFIG_FILE in caplog.text


# ---------------------------------------------------------------------------------------------- ego MLP


@pytest.fixture
def ego_mlp_dir(tmp_path) -> Path:
    from drive_vla.baselines.ego_mlp import EgoMLPConfig, EgoMLPPlanner

    return EgoMLPPlanner(EgoMLPConfig(hidden=8, layers=1)).save_pretrained(tmp_path / "ego_mlp")


def test_ego_mlp_truncated_weights_name_the_file(ego_mlp_dir):
    from drive_vla.baselines.ego_mlp import WEIGHTS_FILE as EGO_WEIGHTS
    from drive_vla.baselines.ego_mlp import load_ego_mlp

    weights = ego_mlp_dir / EGO_WEIGHTS
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{weights}: .*expected"):
        load_ego_mlp(ego_mlp_dir)


def test_ego_mlp_tampered_weights_name_the_file(ego_mlp_dir):
    from drive_vla.baselines.ego_mlp import WEIGHTS_FILE as EGO_WEIGHTS
    from drive_vla.baselines.ego_mlp import load_ego_mlp

    weights = ego_mlp_dir / EGO_WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(b ^ 0xFF for b in data[-8:])
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{weights}: got sha256 .*, expected"):
        load_ego_mlp(ego_mlp_dir)


def test_ego_mlp_truncated_or_mistyped_config_names_the_file(ego_mlp_dir):
    from drive_vla.baselines.ego_mlp import CONFIG_FILE as EGO_CONFIG
    from drive_vla.baselines.ego_mlp import load_ego_mlp

    cfg = ego_mlp_dir / EGO_CONFIG
    text = cfg.read_text()
    cfg.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=rf"{cfg}: not valid JSON .*expected"):
        load_ego_mlp(ego_mlp_dir)
    data = json.loads(text)
    data["hidden"] = "wide"
    cfg.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=rf"{cfg}: hidden: got 'wide', expected an integer"):
        load_ego_mlp(ego_mlp_dir)


# ---------------------------------------------------------------------------------------------- dataset


@pytest.fixture
def dataset(tmp_path) -> Path:
    root = tmp_path / "nuscenes"
    write_synthetic_dataset(root, scenes=1, n_keyframes=3, with_labels=True)
    return root


def test_corrupt_jpeg_names_the_file_sample_and_camera(dataset):
    reader = NuScenesReader(dataset, VERSION)
    path = reader.camera_paths(1)[2]
    data = bytearray(path.read_bytes())
    # Start and end markers intact, the tables and frame header zeroed. (Damage inside the entropy-coded
    # pixels cannot be told from a valid image: JPEG carries no checksum.)
    data[2 : len(data) // 3] = bytes(len(data) // 3 - 2)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as err:
        reader[1]
    msg = str(err.value)
    assert str(path) in msg and reader.tokens[1] in msg and "CAM_FRONT_LEFT" in msg and "expected" in msg


def test_truncated_jpeg_names_the_file_sample_and_camera(dataset):
    reader = NuScenesReader(dataset, VERSION)
    path = reader.camera_paths(0)[0]
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageError, match=rf"sample {reader.tokens[0]}, camera CAM_FRONT: .*{path}.*expected"):
        reader[0]


def test_missing_table_names_the_file(dataset):
    (dataset / VERSION / "sample_data.json").unlink()
    with pytest.raises(DatasetError, match=r"sample_data\.json.*expected"):
        NuScenesReader(dataset, VERSION)


def test_truncated_table_names_the_file(dataset):
    table = dataset / VERSION / "sample_data.json"
    text = table.read_text()
    table.write_text(text[: len(text) // 2])
    with pytest.raises(DatasetError, match=rf"{table}: not valid JSON .*expected"):
        NuScenesReader(dataset, VERSION)


def test_truncated_labels_file_names_the_file(dataset):
    labels = dataset / VERSION / "drive_vla_labels.json"
    text = labels.read_text()
    labels.write_text(text[: len(text) // 2])
    with pytest.raises(DatasetError, match=rf"{labels}.*not .*JSON.*"):
        NuScenesReader(dataset, VERSION)


def test_truncated_expert_plans_name_the_file(dataset):
    from drive_vla.data.expert_plans import PlanLabelledReader, plans_path

    path = plans_path(dataset, VERSION)
    path.write_text('{"dt_s": 0.5, "plans": {"abc": [[0.0, 0.0')
    with pytest.raises(ValueError, match=rf"{path}: not valid JSON .*expected"):
        PlanLabelledReader(dataset, VERSION)


# ---------------------------------------------------------------------------------------------- YAML configs


def test_train_config_with_a_wrong_type_names_the_file_and_field(tmp_path):
    from drive_vla.training.config import TrainConfig

    path = tmp_path / "train.yaml"
    path.write_text("trainer:\n  max_steps: ten\n")
    with pytest.raises(ConfigError, match=rf"{path}: trainer\.max_steps: got 'ten', expected an integer"):
        load_config(TrainConfig, path)


def test_model_config_with_a_wrong_type_names_the_file_and_field(tmp_path):
    from drive_vla.model.config import ModelConfig

    path = tmp_path / "model.yaml"
    path.write_text(f"base: {fx.TINY_YAML}\nlm:\n  num_layers: [2]\n")
    with pytest.raises(ConfigError, match=rf"{path}: lm\.num_layers: got \[2\], expected an integer"):
        load_config(ModelConfig, path)


def test_a_bad_override_is_not_blamed_on_the_file(tmp_path):
    from drive_vla.training.config import TrainConfig

    path = tmp_path / "train.yaml"
    path.write_text("trainer:\n  max_steps: 10\n")
    with pytest.raises(ConfigError, match=r"^trainer\.max_steps: got 'ten'") as err:
        load_config(TrainConfig, path, ["trainer.max_steps=ten"])
    assert str(path) not in str(err.value)


def test_truncated_yaml_names_the_file(tmp_path):
    from drive_vla.training.config import TrainConfig

    path = tmp_path / "train.yaml"
    path.write_text("trainer:\n  max_steps: [10, 2")
    with pytest.raises(ConfigError, match=rf"{path} is not valid YAML"):
        load_config(TrainConfig, path)

"""Typed configs: YAML + base chains + overrides, strict errors, saving the resolved config."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from drive_vla.config import ConfigError, load_config, parse_override, save_config, to_dict


@dataclass
class OptimCfg:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class DemoCfg:
    name: str = "tiny"
    steps: int = 10
    mode: Literal["tokens", "head"] = "tokens"
    freeze: list[str] = field(default_factory=list)
    optim: OptimCfg = field(default_factory=OptimCfg)
    path: str | None = None

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps: got {self.steps}, expected >= 0")


def test_defaults_file_and_overrides(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("steps: 5\noptim:\n  lr: 0.01\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\nname: child\nfreeze: [lm]\n")
    cfg = load_config(DemoCfg, child, ["optim.lr=3e-4", "mode=head", "path=null"])
    assert cfg.name == "child" and cfg.steps == 5 and cfg.freeze == ["lm"]
    assert cfg.optim.lr == pytest.approx(3e-4) and cfg.mode == "head" and cfg.path is None
    assert cfg.optim.betas == (0.9, 0.999)
    assert isinstance(load_config(DemoCfg, None, ["optim.lr=1"]).optim.lr, float)  # int -> float


def test_an_empty_mapping_replaces_the_base_mapping(tmp_path):
    """configs/model/tiny-fast.yaml swaps tiny.yaml's bin counts for FAST's defaults with ``kwargs: {}``;
    a non-empty mapping is still merged key by key."""
    from drive_vla.model.config import ModelConfig

    repo = Path(__file__).resolve().parents[1]
    fast = load_config(ModelConfig, repo / "configs/model/tiny-fast.yaml")
    tiny = load_config(ModelConfig, repo / "configs/model/tiny.yaml")
    assert tiny.action_tokenizer_kwargs == {"bins_x": 256, "bins_y": 256}
    assert fast.action_tokenizer == "fast" and fast.action_tokenizer_kwargs == {}
    assert fast.vision == tiny.vision and fast.lm == tiny.lm  # everything else is tiny's
    (tmp_path / "base.yaml").write_text("control_tokenizer_kwargs: {steer_bins: 9, throttle_bins: 5}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ncontrol_tokenizer_kwargs: {steer_bins: 7}\n")
    merged = load_config(ModelConfig, tmp_path / "child.yaml").control_tokenizer_kwargs
    assert merged == {"steer_bins": 7, "throttle_bins": 5}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.lrr=1"], r"optim\.lrr: unknown key.*did you mean 'lr'"),
        (["stepz=3"], r"stepz: unknown key.*did you mean 'steps'"),
        (["steps=many"], r"steps: got 'many', expected an integer"),
        (["steps=1.5"], r"steps: got 1.5, expected an integer"),
        (["mode=fast"], r"mode: got 'fast', expected one of \['tokens', 'head'\]"),
        (["freeze=lm"], r"freeze: got 'lm', expected a list"),
        (["optim.betas=[0.9]"], r"optim\.betas: got 1 items, expected 2"),
        (["steps=-1"], r"steps: got -1, expected >= 0"),
        (["noequals"], r"override: got 'noequals', expected KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(DemoCfg, None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(DemoCfg, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(DemoCfg, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(DemoCfg, listy)
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="its own base"):
        load_config(DemoCfg, loop)


def test_save_round_trip(tmp_path):
    cfg = load_config(DemoCfg, None, ["freeze=[vision, lm]", "optim.lr=0.5"])
    y = save_config(cfg, tmp_path / "run" / "config.yaml")
    j = save_config(cfg, tmp_path / "run" / "config.json")
    assert load_config(DemoCfg, y) == cfg
    assert json.loads(j.read_text()) == yaml.safe_load(y.read_text()) == to_dict(cfg)
    with pytest.raises(ConfigError, match="expected a .yaml"):
        save_config(cfg, tmp_path / "config.txt")


def test_parse_override_values():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("x=true") == (["x"], True)
    assert parse_override("s=hello world") == (["s"], "hello world")
    with pytest.raises(ConfigError, match="dotted key"):
        parse_override("a..b=1")


def test_model_and_training_configs_load_without_torch():
    """The head configs live apart from the heads (drive_vla.model.head_configs): reading a recipe stays light."""
    import subprocess
    import sys

    code = "import sys; import drive_vla.training.config, drive_vla.model.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

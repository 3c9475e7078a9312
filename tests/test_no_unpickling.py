"""Nothing a user may receive is unpickled: a static scan of the sources and a run with pickle disabled."""

from __future__ import annotations

import ast
import importlib.util
import pickle
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO / "drive_vla", REPO / "carla_agents"]
PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
UNPICKLING_CALLS = {"read_pickle", "load_state_dict_from_url"}  # pandas.read_pickle, torch.hub (weights_only=False)


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def unpickling_sites(path: Path, root: Path = REPO) -> list[str]:
    """Where a file imports a pickling module, calls torch.load without ``weights_only=True``, or
    np.load with ``allow_pickle=True``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(root).as_posix()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno}: import {a.name}" for a in node.names if a.name in PICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod.split(".")[0] in PICKLING_MODULES:
                found.append(f"{where}:{node.lineno}: from {mod} import ...")
            if mod == "torch" and any(a.name == "load" for a in node.names):
                found.append(f"{where}:{node.lineno}: from torch import load (use torch.load(..., weights_only=True))")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            kwargs = {k.arg: k.value for k in node.keywords}
            if name == "torch.load" and not _is_true(kwargs.get("weights_only")):
                found.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
            if name.split(".")[-1] == "load" and name.split(".")[0] in ("np", "numpy"):
                if "allow_pickle" in kwargs and not (
                    isinstance(kwargs["allow_pickle"], ast.Constant) and kwargs["allow_pickle"].value is False
                ):
                    found.append(f"{where}:{node.lineno}: {name} with allow_pickle other than False")
            if name.split(".")[-1] in UNPICKLING_CALLS:
                found.append(f"{where}:{node.lineno}: {name}")
    return found


def test_scanner_finds_each_kind_of_unpickling(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nimport torch\nimport numpy as np\nfrom torch import load\n"
        "torch.load(p)\ntorch.load(p, weights_only=False)\nnp.load(p, allow_pickle=True)\n"
        "pickle.loads(b)\nimport pandas as pd\npd.read_pickle(p)\n"
        "torch.load(p, map_location='cpu', weights_only=True)\nnp.load(p, allow_pickle=False)\nnp.load(p)\n"
    )
    found = unpickling_sites(bad, tmp_path)
    assert [f.split(":")[1] for f in found] == ["1", "4", "5", "6", "7", "10"], found


def test_sources_never_unpickle():
    files = [p for root in SOURCES for p in sorted(root.rglob("*.py"))]
    assert len(files) > 50
    found = [site for p in files for site in unpickling_sites(p)]
    assert not found, "unpickling on a path a user may supply:\n" + "\n".join(found)


# ---------------------------------------------------------------------------------------------- at run time


@pytest.fixture
def no_pickle(monkeypatch, tmp_path):
    """Make every pickle entry point raise (torch.load(weights_only=False) goes through pickle.Unpickler)."""
    plain = tmp_path / "plain.pt"
    torch.save({"x": torch.zeros(1)}, plain)

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    class RefusingUnpickler(pickle._Unpickler):  # a class: torch and joblib subclass pickle.Unpickler
        __init__ = refuse

    for name in ("load", "loads", "_load", "_loads"):
        monkeypatch.setattr(pickle, name, refuse)
    for name in ("Unpickler", "_Unpickler"):
        monkeypatch.setattr(pickle, name, RefusingUnpickler)
    with pytest.raises(AssertionError, match="unpickled"):  # the guard itself works
        torch.load(plain, weights_only=False)
    assert torch.load(plain, weights_only=True)["x"].shape == (1,)  # and lets weights-only loads through


def test_loading_policy_checkpoint_and_dataset_unpickles_nothing(tmp_path, no_pickle):
    from nuscenes_factory import write_synthetic_dataset

    from drive_vla.baselines.ego_mlp import EgoMLPConfig, EgoMLPPlanner, load_ego_mlp
    from drive_vla.config import load_config
    from drive_vla.data.reader import NuScenesReader
    from drive_vla.model.config import ModelConfig
    from drive_vla.policy import DrivingPolicy
    from drive_vla.training.checkpoint import AtomicCheckpointIO, atomic_torch_save, read_checkpoint_meta

    spec = importlib.util.spec_from_file_location("model_fixtures", REPO / "tests" / "model" / "conftest.py")
    fx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fx)
    policy = DrivingPolicy.build(load_config(ModelConfig, fx.TINY_YAML, list(fx.TEST_OVERRIDES)))
    loaded = DrivingPolicy.from_pretrained(policy.save_pretrained(tmp_path / "policy"))
    assert loaded.config == policy.config

    mlp = load_ego_mlp(EgoMLPPlanner(EgoMLPConfig(hidden=8, layers=1)).save_pretrained(tmp_path / "mlp"))
    assert mlp.config.hidden == 8

    ckpt = atomic_torch_save(
        {"state_dict": {"w": torch.ones(2)}, "global_step": 3, "drive_vla": {"model_kind": "vla"}},
        tmp_path / "last.ckpt",
    )
    assert read_checkpoint_meta(ckpt) == {"model_kind": "vla"}
    assert AtomicCheckpointIO().load_checkpoint(ckpt)["global_step"] == 3
    with pytest.raises(ValueError, match="weights_only: got False"):
        AtomicCheckpointIO().load_checkpoint(ckpt, weights_only=False)

    root = tmp_path / "nuscenes"
    write_synthetic_dataset(root, scenes=1, n_keyframes=2)
    for _ in range(2):  # the second reader answers from the index and image caches
        reader = NuScenesReader(root, "v1.0-synthetic", image_hw=(18, 32), cache_dir=tmp_path / "cache")
        assert reader[1].observation.images["CAM_FRONT"].shape == (18, 32, 3)

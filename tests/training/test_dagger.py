"""DAgger rounds: config checks, resume after a completed round, a tiny end-to-end run through `drive-vla train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drive_vla.config import ConfigError
from drive_vla.training import dagger
from drive_vla.training.config import load_train_config
from drive_vla.training.run import TrainResult, TrainSetupError

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "train" / "embedded_dagger.yaml"


def test_recipe_names_a_held_out_suite_and_a_decaying_beta():
    cfg = load_train_config(RECIPE)
    d = cfg.dagger
    assert d.rounds >= 1 and d.suite == "smoke"
    assert [d.beta(r) for r in (1, 2)] == [d.beta0 * d.decay, d.beta0 * d.decay**2]


@pytest.mark.parametrize(
    "override, message",
    [
        ("dagger.beta0=1.5", "dagger.beta0: got 1.5, expected a probability"),
        ("dagger.episodes_per_round=0", "dagger.episodes_per_round: got 0, expected an integer >= 1"),
        ("dagger.controller=mpc", "dagger.controller: got 'mpc'"),
        ("dagger.retrain=warm", "dagger.retrain: got 'warm', expected 'finetune' or 'scratch'"),
        ("data.extra_train=[{version: v1.0-x}]", r"data.extra_train\[\].dataroot: got ''"),
    ],
)
def test_bad_dagger_fields_name_field_and_value(override, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(RECIPE, [override])


def test_unknown_suite_fails_before_any_work(tmp_path):
    cfg = load_train_config(RECIPE, ["dagger.suite=nope"])
    with pytest.raises(TrainSetupError, match="suite: got 'nope'"):
        dagger.run_dagger(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


class _Fakes:
    """Stand-ins for the expensive steps that write what the real ones write (just enough files)."""

    def __init__(self, monkeypatch, fail_round: int | None = None) -> None:
        self.trained: list[str] = []
        self.collected: list[int] = []
        self.fail_round = fail_round
        monkeypatch.setattr(dagger.steps, "make_initial_dataset", lambda cfg, dcfg, out: out.mkdir(parents=True))
        monkeypatch.setattr(dagger, "_count_train_samples", lambda root, cfg: 100)
        monkeypatch.setattr(dagger.steps, "collect_round", self.collect)
        monkeypatch.setattr(dagger, "train", self.train)
        score = {
            "suite": "smoke",
            "driving_score": 10.0,
            "route_completion": 20.0,
            "success_rate": 0.0,
            "collisions": 1,
        }
        monkeypatch.setattr(dagger.steps, "score_on_suite", lambda *a: dict(score))

    def collect(self, cfg, dataset_cfg, r, policy_dir, out):
        assert (policy_dir / "weights").is_file()  # the previous round's export
        self.collected.append(r)
        out.mkdir(parents=True)
        return {"beta": cfg.dagger.beta(r), "samples_added": 10}

    def train(self, cfg, out):
        self.trained.append(Path(out).parent.name)
        if self.fail_round is not None and Path(out).parent.name == f"round_{self.fail_round}":
            raise KeyboardInterrupt  # killed mid-training
        (out / "policy").mkdir(parents=True)
        (out / "policy" / "weights").write_text("w")
        return TrainResult(out, out / "policy", out / "last.ckpt", None, {"val/l2_avg_m": 1.0})


def test_resume_after_a_completed_round_redoes_only_the_interrupted_one(monkeypatch, tmp_path):
    cfg = load_train_config(RECIPE, ["dagger.rounds=2"])
    out = tmp_path / "run"
    fakes = _Fakes(monkeypatch, fail_round=2)
    with pytest.raises(KeyboardInterrupt):
        dagger.run_dagger(cfg, out)
    assert [r["round"] for r in dagger.completed_rounds(out)] == [0, 1]
    assert (out / "round_2" / "data").is_dir() and not (out / "round_2" / dagger.DONE_FILE).exists()
    done_1 = (out / "round_1" / dagger.DONE_FILE).stat().st_mtime_ns

    fakes = _Fakes(monkeypatch)
    result = dagger.run_dagger(cfg, out)
    assert fakes.trained == ["round_2"] and fakes.collected == [2]
    assert (out / "round_1" / dagger.DONE_FILE).stat().st_mtime_ns == done_1
    metrics = json.loads((out / dagger.METRICS_FILE).read_text())
    assert [r["round"] for r in metrics["rounds"]] == [0, 1, 2]
    assert [r["total_samples"] for r in metrics["rounds"]] == [100, 110, 120]
    assert metrics["rounds"][2]["beta"] == pytest.approx(0.25)
    assert result.policy_dir == out / "policy"  # every recipe's run exports to <out>/policy
    assert (out / "policy" / "weights").read_text() == (out / "round_2" / "train" / "policy" / "weights").read_text()

    with pytest.raises(TrainSetupError, match=r"another recipe \(dagger.seed: 1 -> 7\)"):
        dagger.run_dagger(load_train_config(RECIPE, ["dagger.rounds=3", "dagger.seed=7"]), out)


def test_finetune_stage_starts_from_the_previous_policy_on_all_rounds_data(tmp_path):
    cfg = load_train_config(RECIPE)
    roots = [tmp_path / "round_1" / "data", tmp_path / "round_2" / "data"]
    stage = dagger.steps.round_config(cfg, "/data/initial", tmp_path / "round_1" / "train" / "policy", roots)
    assert stage.init_from.endswith("round_1/train/policy") and not stage.model.path
    assert [s.dataroot for s in stage.data.extra_train] == [str(r) for r in roots]
    assert stage.data.dataroot == "/data/initial" and stage.trainer.max_epochs == cfg.dagger.finetune_epochs
    assert stage.optim.lr == cfg.dagger.finetune_lr and stage.dagger.rounds == 0


def test_scratch_stage_is_the_base_recipe_on_all_rounds_data(tmp_path):
    cfg = load_train_config(RECIPE, ["dagger.retrain=scratch"])
    roots = [tmp_path / "round_1" / "data"]
    stage = dagger.steps.round_config(cfg, "/data/initial", tmp_path / "round_1" / "train" / "policy", roots)
    assert not stage.init_from and stage.model == cfg.model  # the recipe's own initialisation
    assert [s.dataroot for s in stage.data.extra_train] == [str(r) for r in roots]
    assert stage.trainer == cfg.trainer and stage.optim == cfg.optim and stage.seed == cfg.seed
    assert stage.dagger.rounds == 0


def test_rollout_seeds_stay_outside_held_out_seeds():
    from drive_vla.sim.dataset import HELD_OUT_SEEDS

    cfg = load_train_config(RECIPE, ["dagger.episodes_per_round=64"])
    plans = [dagger.steps.rollout_plan(cfg.dagger, r) for r in (1, 2, 3)]
    seeds = [s for plan in plans for _, s in plan]
    assert not any(s in HELD_OUT_SEEDS for s in seeds) and len(set(seeds)) == len(seeds)


@pytest.mark.slow
def test_tiny_dagger_end_to_end_through_the_cli(tmp_path, tiny_overrides, tiny_model_overrides):
    from drive_vla.cli.main import main
    from drive_vla.data.expert_plans import PlanLabelledReader

    suite = tmp_path / "one_route.yaml"
    suite.write_text(
        "name: one\nenv: embedded\nheld_out: true\nmax_time_s: 2.0\nroutes:\n  - {scenario: highway, seed: 900101}\n"
    )
    out = tmp_path / "run"
    sets = tiny_overrides + tiny_model_overrides
    sets += ["data.image_hw=[36,64]", "data.fit_samples=16", "dagger.rounds=1", "dagger.initial_scenes=2"]
    sets += ["dagger.initial_keyframes=8", "dagger.workers=1", "dagger.episodes_per_round=2"]
    sets += ["dagger.episode_keyframes=3", "dagger.finetune_epochs=1", f"dagger.suite={suite}"]
    args = ["train", "--config", str(RECIPE), "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    rounds = json.loads((out / dagger.METRICS_FILE).read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[1]["beta"] == pytest.approx(0.5) and 2 <= rounds[1]["samples_added"] <= 6
    assert rounds[1]["total_samples"] == rounds[0]["total_samples"] + rounds[1]["samples_added"]
    for key in ("val_l2_avg_m", "driving_score", "route_completion", "collisions"):
        assert rounds[1][key] is not None
    reader = PlanLabelledReader(out / "round_1" / "data", "v1.0-embedded", split="train")
    assert len(reader.plans) == len(reader) == rounds[1]["samples_added"]
    assert (out / "round_1" / "train" / "policy" / "config.yaml").is_file()
    assert main(args) == 0  # everything done: the re-run only reports


def test_policy_threads_are_set_inside_and_restored_after():
    import torch

    before = torch.get_num_threads()
    with dagger.steps.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

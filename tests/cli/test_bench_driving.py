"""`drive-vla bench driving`: a tiny dataset, one epoch, one seed, two short routes, end to end."""

from __future__ import annotations

import json

import pytest

from drive_vla.cli.bench_driving import aggregate, seed_mean_ci, spread
from drive_vla.cli.main import main


def test_spread_across_seeds():
    assert spread([10.0, 20.0, 30.0]) == {"mean": 20.0, "std": 10.0, "min": 10.0, "max": 30.0}
    assert spread([5.0])["std"] == 0.0
    with pytest.raises(ValueError, match="values: got none"):
        spread([])


def test_aggregate_rows_and_per_seed_intervals():
    ci = {k: {"mean": 1.0, "low": 0.0, "high": 2.0} for k in ("driving_score", "route_completion", "collisions")}
    seed = {"driving_score": 50.0, "route_completion": 60.0, "success_rate": 0.0, "collisions_per_route": 1.0}
    rows, summary = aggregate({"vla": {0: {**seed, "ci95": ci}, 1: {**seed, "driving_score": 70.0, "ci95": ci}}})
    assert rows[0]["planner"] == "vla" and rows[0]["seeds"] == 2
    assert rows[0]["driving_score mean"] == 60.0 and rows[0]["driving_score max"] == 70.0
    assert rows[0]["DS 95% CI per seed"] == "0: [0.0, 2.0]; 1: [0.0, 2.0]"
    assert summary["vla"]["per_seed"]["1"]["driving_score"] == 70.0


def test_seed_mean_interval_averages_routes_over_seeds_and_pairs_with_the_reference():
    seeds = {
        0: {"route_scores": {"a": 100.0, "b": 0.0, "c": 50.0}},
        1: {"route_scores": {"a": 80.0, "b": 20.0, "c": 50.0}},
    }
    out = seed_mean_ci(seeds, reference={"a": 40.0, "b": 10.0, "c": 50.0})
    assert out["seed_mean"]["mean"] == pytest.approx(50.0) and out["seed_mean"]["n"] == 3
    assert out["minus_reference"]["mean"] == pytest.approx((50.0 + 0.0 + 0.0) / 3)
    assert out["minus_reference"]["low"] <= out["minus_reference"]["mean"] <= out["minus_reference"]["high"]
    assert seed_mean_ci({0: {"route_scores": {}}}) == {} and "minus_reference" not in seed_mean_ci(seeds)
    ci = {k: {"mean": 1.0, "low": 0.0, "high": 2.0} for k in ("driving_score", "route_completion", "collisions")}
    base = {"driving_score": 50.0, "route_completion": 60.0, "success_rate": 0.0, "collisions_per_route": 1.0}
    rows, summary = aggregate(
        {
            "vla": {s: {**base, "ci95": ci, **v} for s, v in seeds.items()},
            "constant_velocity": {0: {**base, "ci95": ci, "route_scores": {"a": 40.0, "b": 10.0, "c": 50.0}}},
        }
    )
    assert rows[0]["DS minus constant_velocity, paired 95% CI"].startswith("16.7 [")
    assert rows[1]["DS minus constant_velocity, paired 95% CI"] == "" and summary["vla"]["seed_mean"]["n"] == 3


@pytest.mark.slow
def test_bench_driving_end_to_end(tmp_path, capsys):
    suite = tmp_path / "short.yaml"
    suite.write_text(
        "name: short\nenv: embedded\nheld_out: true\nmax_time_s: 3.0\nroutes:\n"
        "  - {scenario: highway, seed: 910001}\n  - {scenario: intersection, seed: 910003}\n"
        "  - {scenario: merge, seed: 910002}\n"
    )
    out = tmp_path / "bench"
    argv = ["bench", "driving", "--out", str(out), "--json", str(tmp_path / "rows.json"), "--suite", str(suite)]
    argv += ["--scenes", "2", "--keyframes", "8", "--workers", "1", "--epochs", "1", "--mlp-epochs", "1"]
    argv += ["--seeds", "0", "--max-routes", "2", "--bootstrap-resamples", "100"]
    assert main(argv) == 0
    result = json.loads((out / "bench_driving.json").read_text())
    assert result["routes"] == 2 and result["training_seeds"] == [0]
    planners = result["planners"]
    assert list(planners) == ["vla", "ego_mlp", "expert", "constant_velocity", "constant_turn_rate"]
    for p in planners.values():
        ds = p["spread"]["driving_score"]
        assert ds["min"] <= ds["mean"] <= ds["max"] and ds["std"] == 0.0
        ci = p["per_seed"]["0"]["ci95"]["driving_score"]
        assert ci["low"] <= ci["mean"] <= ci["high"]
    assert planners["expert"]["spread"]["collisions_per_route"]["max"] == 0.0
    for key in ("route_scores", "route_completions", "route_collisions"):  # per route, for `drive-vla compare`
        assert len(planners["vla"]["per_seed"]["0"][key]) == 2
    assert set(planners["expert"]["per_seed"]["0"]["route_collisions"].values()) == {0.0}
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [r["planner"] for r in rows] == list(planners)
    assert "DS 95% CI per seed" in capsys.readouterr().out
    # --reuse keeps the dataset and the trained policies and drives again to the same figures
    weights = out / "seed0" / "vla" / "policy" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert main([*argv, "--reuse"]) == 0
    assert weights.stat().st_mtime_ns == stamp and "reused" in capsys.readouterr().out
    assert "seed_mean" in planners["vla"] and "minus_reference" in planners["vla"]
    again = json.loads((out / "bench_driving.json").read_text())["planners"]
    assert again["vla"]["spread"] == planners["vla"]["spread"]


def test_data_set_reaches_make_embedded_and_a_bad_key_stops_the_bench(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "driving", "--out", str(out), "--scenes", "1", "--keyframes", "2", "--workers", "1"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--seeds", "0", "--data-set", "world.expert.max_cruse_mps=20"])
    assert "make-embedded" in str(exc.value.code) and "--set world.expert.max_cruse_mps=20" in str(exc.value.code)
    assert "world.expert.max_cruse_mps: unknown key" in (out / "logs" / "data.log").read_text()
    assert not (out / "seed0").exists()


def test_the_perception_stage_runs_on_each_seeds_policy_before_it_drives(tmp_path):
    suite = tmp_path / "one.yaml"
    suite.write_text(
        "name: one\nenv: embedded\nheld_out: true\nmax_time_s: 2.0\nroutes:\n  - {scenario: highway, seed: 910001}\n"
    )
    data = tmp_path / "data"
    assert main(["data", "make-embedded", "--out", str(data), "--scenes", "2", "--keyframes", "6", "--workers", "1",
                 "--image-size", "128x72", "--obstacle-scenes", "1", "--val-fraction", "0"]) == 0  # fmt: skip
    out = tmp_path / "bench"
    argv = ["bench", "driving", "--out", str(out), "--suite", str(suite), "--dataroot", str(data), "--seeds", "0"]
    argv += ["--epochs", "1", "--mlp-epochs", "1", "--bootstrap-resamples", "100"]
    argv += ["--set", "data.val_split=", "--set", "checkpoint.export=last"]
    argv += ["--perception", "configs/train/perception_free_space.yaml", "--perception-set", f"data.dataroot={data}"]
    argv += ["--perception-set", "data.val_split=", "--perception-set", "trainer.max_epochs=1"]
    argv += ["--controller-config", "configs/control/pursuit.yaml"]
    assert main(argv) == 0
    result = json.loads((out / "bench_driving.json").read_text())
    assert result["controller_config"] == "configs/control/pursuit.yaml"
    for drive in ("seed0", "baselines"):  # every drive used it
        report = json.loads((out / "drive" / drive / "drive_report.json").read_text())
        assert report["controller_config"]["lateral"] == "pursuit"
    assert result["perception"]["recipe"] == "configs/train/perception_free_space.yaml"
    assert (out / "seed0" / "vla_driving" / "policy").is_dir()
    assert (out / "seed0" / "vla" / "perception_metrics.json").is_file()  # the policy that drove carries the head
    assert "vla" in result["planners"]

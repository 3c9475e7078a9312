"""Paired comparison of drive reports: the pure function and `drive-vla compare`."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drive_vla.cli.main import main
from drive_vla.eval.compare import compare_planners


def _routes(scores, collisions=None):
    collisions = collisions or [0] * len(scores)
    return {
        f"r{i}": {"driving_score": s, "route_completion": 100.0, "collisions": c}
        for i, (s, c) in enumerate(zip(scores, collisions, strict=True))
    }


def _report(path, models):
    episodes = {label: [{"route_id": r, **m} for r, m in routes.items()] for label, routes in models.items()}
    path.mkdir(parents=True, exist_ok=True)
    path.joinpath("drive_report.json").write_text(
        json.dumps({"suite": "dev", "models": {k: {"episodes": v} for k, v in episodes.items()}})
    )
    return path


def test_one_route_better_one_worse_and_the_paired_mean():
    rows = compare_planners(
        {"a": _routes([50.0, 100.0, 20.0], [1, 0, 1]), "b": _routes([80.0, 100.0, 10.0], [0, 0, 1])}, "a"
    )
    a, b = rows
    assert "better" not in a and a["driving_score"]["mean"] == pytest.approx(170 / 3)
    assert (b["better"], b["worse"], b["equal"]) == (1, 1, 1)
    assert b["driving_score minus reference"]["mean"] == pytest.approx(20 / 3)
    assert b["collisions minus reference"]["mean"] == pytest.approx(-1 / 3)


def test_identical_planners_differ_by_exactly_zero():
    rows = compare_planners({"a": _routes([10.0, 70.0, 33.0]), "b": _routes([10.0, 70.0, 33.0])}, "a")
    diff = rows[1]["driving_score minus reference"]
    assert diff["mean"] == diff["low"] == diff["high"] == 0.0 and rows[1]["equal"] == 3


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100)), min_size=1, max_size=30))
def test_paired_mean_is_the_difference_of_means_and_inside_its_interval(pairs):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    row = compare_planners({"a": _routes(a), "b": _routes(b)}, "a", resamples=200)[1]
    diff = row["driving_score minus reference"]
    assert diff["mean"] == pytest.approx(sum(b) / len(b) - sum(a) / len(a), abs=1e-9)
    assert diff["low"] <= diff["mean"] <= diff["high"]
    assert row["better"] + row["worse"] + row["equal"] == len(pairs)


def test_different_routes_and_unknown_reference_are_named():
    with pytest.raises(ValueError, match=r"b: its routes differ from 'a'.*missing \['r2'\]"):
        compare_planners({"a": _routes([1.0, 2.0, 3.0]), "b": _routes([1.0, 2.0])}, "a")
    with pytest.raises(ValueError, match="reference: got 'c', expected one of"):
        compare_planners({"a": _routes([1.0])}, "c")


def test_cli_labels_planners_of_the_same_name_by_folder(tmp_path, capsys):
    first = _report(tmp_path / "sel", {"vla": _routes([80.0, 60.0]), "constant_velocity": _routes([50.0, 50.0])})
    second = _report(tmp_path / "best", {"vla": _routes([70.0, 60.0])})
    out = tmp_path / "cmp.json"
    assert (
        main(
            [
                "compare",
                str(second),
                str(first / "drive_report.json"),
                "--json",
                str(out),
                "--bootstrap-resamples",
                "100",
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())["rows"]
    assert [r["planner"] for r in rows] == ["best/vla", "sel/vla", "constant_velocity"]
    assert rows[1]["driving_score minus reference"]["mean"] == pytest.approx(5.0)
    assert "DS minus best/vla" in capsys.readouterr().out


def test_cli_refuses_a_missing_report_and_a_report_without_episodes(tmp_path):
    with pytest.raises(ValueError, match="REPORT: .*nope does not exist"):
        main(["compare", str(tmp_path / "nope")])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "drive_report.json").write_text(json.dumps({"models": {"vla": {"episodes": []}}}))
    with pytest.raises(ValueError, match=r"models.vla.episodes: got none"):
        main(["compare", str(tmp_path / "bad")])


def _bench(path, seeds, collisions=True):
    """A bench_driving.json with one planner 'vla' whose seeds hold the given per-route scores."""
    per_seed = {}
    for k, scores in enumerate(seeds):
        entry = {"route_scores": {f"r{i}": s for i, s in enumerate(scores)}}
        if collisions:
            entry["route_collisions"] = {f"r{i}": float(s < 50) for i, s in enumerate(scores)}
        per_seed[str(k)] = entry
    path.mkdir(parents=True, exist_ok=True)
    path.joinpath("bench_driving.json").write_text(json.dumps({"planners": {"vla": {"per_seed": per_seed}}}))
    return path


def test_bench_runs_compare_by_their_seed_means_per_route(tmp_path, capsys):
    old = _bench(tmp_path / "v5", [[100.0, 40.0], [80.0, 60.0]])  # seed means 90, 50
    new = _bench(tmp_path / "v6", [[70.0, 40.0], [70.0, 40.0]], collisions=False)  # 70, 40
    out = tmp_path / "cmp.json"
    assert main(["compare", str(old), str(new), "--json", str(out), "--bootstrap-resamples", "100"]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["planner"] for r in rows] == ["v5/vla", "v6/vla"]
    assert rows[0]["driving_score"]["mean"] == pytest.approx(70.0)
    assert rows[1]["driving_score minus reference"]["mean"] == pytest.approx(-15.0)
    assert "collisions" not in rows[1] and (rows[1]["better"], rows[1]["worse"]) == (0, 2)
    assert "collisions/route" not in capsys.readouterr().out  # v6 kept no per-route collisions


def test_bench_file_without_per_route_scores_is_refused(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bench_driving.json").write_text(json.dumps({"planners": {"vla": {"per_seed": {"0": {}}}}}))
    with pytest.raises(ValueError, match=r"planners.vla.per_seed: got no per-route scores"):
        main(["compare", str(tmp_path / "b")])

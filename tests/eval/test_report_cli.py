"""Reports, plots and the `drive-vla eval open-loop` command."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from drive_vla.baselines import make_baseline
from drive_vla.cli.main import main
from drive_vla.eval.openloop import compare_report, run_openloop
from drive_vla.eval.plots import pick_panels, plot_bev_grid, plot_l2_per_horizon
from drive_vla.eval.report import format_report, metric_rows, write_metrics_json


@pytest.fixture
def small_run(sample_factory, box_factory, reader_factory):
    car = box_factory(12.0, 0.3, 4.5, 1.8, "vehicle.car")
    ped = box_factory(8.0, -4.0, 0.7, 0.7, "human.pedestrian.adult")
    samples = [sample_factory(f"tok{i}", yaw_rate_rps=0.2, boxes=[car, ped] * 3) for i in range(4)]
    planners = {"cv": make_baseline("constant_velocity"), "ctr": make_baseline("constant_turn_rate")}
    return run_openloop(planners, reader_factory(samples))


def test_table_names_the_protocol_of_every_number(small_run):
    report = compare_report(small_run)
    rows = metric_rows(report)
    assert [(r["model"], r["protocol"]) for r in rows] == [
        (m, label)
        for m in ("cv", "ctr")
        for label in (
            "ST-P3", "UniAD", "OpenDriveVLA 'UniAD evaluation'", "OpenDriveVLA 'STP-3 evaluation'",
            "box overlap (rotated ego) [unpublished]",
        )
    ]  # fmt: skip
    assert not any("VAD" in r["protocol"].replace("OpenDriveVLA", "") for r in rows)
    text = format_report(report)
    assert "stp3: ST-P3: mean over steps" in text and "NOT a published protocol" in text
    assert "L2 3s (m)" in text and "col avg (%)" in text


def test_metrics_json_has_a_section_per_model(small_run, tmp_path):
    report = compare_report(small_run)
    data = json.loads(write_metrics_json(report, tmp_path / "m.json").read_text())
    assert set(data["models"]) == {"cv", "ctr"}
    cv = data["models"]["cv"]
    assert set(cv["stp3"]["l2_m"]) == {"1s", "2s", "3s", "avg"}
    assert cv["stp3"]["num_samples"] == 4 and cv["failures"]["count"] == 0
    assert data["dataset"]["num_samples"] == 4


def test_plots_are_written(small_run, tmp_path):
    report = compare_report(small_run)
    bev = plot_bev_grid(small_run, tmp_path / "bev.png", num_panels=4)
    l2 = plot_l2_per_horizon(report, tmp_path / "l2.png")
    assert bev.stat().st_size > 5000 and l2.stat().st_size > 5000
    assert pick_panels(100, 4) == [0, 33, 66, 99] and pick_panels(2, 9) == [0, 1]


def test_cli_open_loop_writes_table_json_and_plots(sample_factory, reader_factory, monkeypatch, tmp_path, capsys):
    seen = {}

    def fake_reader(dataroot, version, split=None, image_hw=None, cache_dir=None):
        seen.update(dataroot=dataroot, version=version, split=split, image_hw=image_hw)
        return reader_factory([sample_factory(f"tok{i}", yaw_rate_rps=0.1) for i in range(3)], split=split)

    monkeypatch.setitem(sys.modules, "drive_vla.data.reader", SimpleNamespace(NuScenesReader=fake_reader))
    out = tmp_path / "out"
    rc = main(
        ["eval", "open-loop", "--baseline", "constant_velocity", "--baseline", "constant_turn_rate",
         "--dataroot", str(tmp_path), "--version", "v1.0-x", "--split", "val", "--out", str(out),
         "--image-size", "16x9", "--protocol", "uniad"]
    )  # fmt: skip
    assert rc == 0
    assert seen == {"dataroot": str(tmp_path), "version": "v1.0-x", "split": "val", "image_hw": (9, 16)}
    printed = capsys.readouterr().out
    assert "| UniAD " in printed and "| ST-P3 " not in printed
    data = json.loads((out / "metrics.json").read_text())
    assert set(data["models"]) == {"baseline:constant_velocity", "baseline:constant_turn_rate"}
    assert "stp3" not in data["models"]["baseline:constant_velocity"]
    assert (out / "bev.png").is_file() and (out / "l2_per_horizon.png").is_file() and (out / "report.md").is_file()


def test_cli_errors(tmp_path, capsys):
    assert main(["eval", "open-loop", "--dataroot", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "at least one --policy" in capsys.readouterr().err
    rc = main(["eval", "open-loop", "--baseline", "nope", "--dataroot", str(tmp_path), "--out", str(tmp_path)])
    assert rc == 2 and "constant_velocity" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            [
                "eval",
                "open-loop",
                "--baseline",
                "constant_velocity",
                "--dataroot",
                "d",
                "--out",
                "o",
                "--image-size",
                "big",
            ]
        )

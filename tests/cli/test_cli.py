"""The `drive-vla` console script: help lists every verb, doctor works, bench import writes JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from drive_vla.cli.main import VERBS, main

EXPECTED = {"data", "train", "eval", "drive", "explain", "serve", "demo", "bench", "doctor"}


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert EXPECTED <= set(VERBS)
    for verb in EXPECTED:
        assert f"    {verb}" in out


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "drive_vla.cli.main", "--help"], capture_output=True, text=True, check=True
    )
    assert "doctor" in out.stdout


def test_doctor_reports_versions_and_datasets(tmp_path, capsys):
    root = tmp_path / "datasets"
    (root / "embedded" / "v1.0-embedded").mkdir(parents=True)
    (root / "embedded" / "v1.0-embedded" / "sample.json").write_text("[]")
    assert main(["doctor", "--carla-port", "1", "--timeout-s", "0.2", "--datasets", str(root)]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "transformers" in out and "nuscenes-devkit" in out
    assert "does not answer" in out
    assert "v1.0-embedded" in out


def test_unknown_verb_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fly"])
    assert exc.value.code != 0


def test_bench_import_writes_json(tmp_path, monkeypatch, capsys):
    import drive_vla.bench_import as bi

    monkeypatch.setattr(bi, "MODULES", ("drive_vla.types",))
    out = tmp_path / "import.json"
    assert main(["bench", "import", "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["bench"] == "import" and result["rows"][0]["module"] == "drive_vla.types"
    assert result["rows"][0]["median_s"] > 0
    assert "| module |" in capsys.readouterr().out

"""`drive-vla train` end to end on a nuScenes-format dataset on disk, then `--resume`; `drive-vla bench train`."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from drive_vla.cli.main import main
from drive_vla.policy import DrivingPolicy


@pytest.mark.slow
def test_train_cli_on_disk_then_resume(
    tmp_path, synthetic_dataset, train_configs, tiny_overrides, tiny_model_overrides, capsys
):
    root, version = synthetic_dataset
    out = tmp_path / "run"
    args = ["train", "--config", str(train_configs / "embedded_tiny.yaml"), "--out", str(out)]
    sets = (
        tiny_overrides
        + tiny_model_overrides
        + [f"data.dataroot={root}", f"data.version={version}", "trainer.max_steps=3"]
    )
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"policy exported to {out / 'policy'}" in printed and "val/l2_avg_m=" in printed
    assert DrivingPolicy.from_pretrained(out / "policy").config.lm.hidden_size == 32
    assert main(args + ["--set", "trainer.max_steps=5", "--resume"]) == 0
    assert torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 5
    assert len(list((out / "logs" / "csv").glob("version_*"))) == 2  # the resumed run logs beside the first


def test_bench_train_tiny_row():
    from drive_vla.training import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--steps", "1", "--warmup", "0", "--batch-size", "1", "--no-gpu"])
    rows = bench.run(args)
    assert len(rows) == 1
    row = rows[0]
    assert row["samples_per_s"] > 0 and row["step_ms_median"] > 0 and row["tokens_per_step"] > 10
    assert row["mfu_pct"] is None  # CPU row, no peak given
    json.dumps(rows)

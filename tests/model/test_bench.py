"""`drive-vla bench policy` builds, times both output modes and reports counts (a smoke run, not a timing)."""

from __future__ import annotations

import argparse

from drive_vla.model import bench


def test_bench_policy_rows(tiny_yaml_and_overrides):
    yaml_path, overrides = tiny_yaml_and_overrides
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["--config", str(yaml_path), "--repeats", "2", "--warmup", "0", "--explain"]
        + [a for o in overrides for a in ("--override", o)]
    )
    rows = bench.run(args)
    assert [r["mode"] for r in rows] == ["tokens", "head", "tokens+explain"]
    tokens, head, explain = rows
    assert tokens["generated_tokens"] == 12 + 3  # uniform: dx, dy for 6 steps, then steer/throttle/brake
    assert head["generated_tokens"] == 0 and head["lm_forward_passes"] == 1
    assert explain["generated_tokens"] > tokens["generated_tokens"]
    assert tokens["visual_tokens"] == 4
    assert tokens["params_total_M"] > tokens["params_lm_M"] > 0
    assert all(r["p90_ms"] >= r["p50_ms"] > 0 and r["peak_rss_mb"] > 0 for r in rows)

"""The eval benchmark runs at a tiny size and reports every stage."""

from __future__ import annotations

import argparse

from drive_vla.eval import bench


def test_bench_rows_at_tiny_size():
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    rows = bench.run(parser.parse_args(["--samples", "20", "--agents", "5", "--repeats", "1"]))
    assert len(rows) == 4
    assert all(r["samples"] == 20 and r["boxes"] == 20 * 5 * 6 for r in rows)
    assert all(r["median_s"] >= 0 for r in rows[:3])

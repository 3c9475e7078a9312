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


def test_bench_policy_sweep_rows_and_plot(tiny_yaml_and_overrides, tmp_path):
    from drive_vla.model.cost_curve import sweep_points

    _, overrides = tiny_yaml_and_overrides
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    parser.add_argument("--json")  # added by `drive-vla bench` for every benchmark
    out = tmp_path / "policy.json"
    argv = ["--sweep", "--sweep-lms", "tiny", "--sweep-threads", "1", "--repeats", "1", "--warmup", "0"]
    args = parser.parse_args(argv + ["--json", str(out)] + [a for o in overrides for a in ("--override", o)])
    rows = bench.run(args)
    points = sweep_points(["tiny"])
    assert [(r["point"], r["mode"]) for r in rows] == [(p.label, m) for p in points for m in ("tokens", "head")]
    by = {(r["point"], r["mode"]): r for r in rows}
    base, more = by[("tiny", "head")], by[("tiny, 64 tokens", "head")]
    # more visual tokens: more prompt tokens by exactly the difference; images at the size asked for
    assert more["prompt_tokens"] - base["prompt_tokens"] == more["visual_tokens"] - base["visual_tokens"] > 0
    assert by[("tiny, 512x288", "tokens")]["model_image_size"] == "512x288"
    assert all(r["threads"] == 1 and r["p50_ms"] > 0 for r in rows)
    assert (tmp_path / "policy.png").stat().st_size > 0


def test_bench_policy_sweep_refuses_unknown_lms_and_thread_counts():
    import pytest

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    with pytest.raises(ValueError, match="--sweep-lms: got 'gpt5'"):
        bench.run(parser.parse_args(["--sweep", "--sweep-lms", "gpt5"]))
    with pytest.raises(ValueError, match="--sweep-threads: got '0'"):
        bench.run(parser.parse_args(["--sweep", "--sweep-threads", "0"]))


def test_compile_targets_wrap_the_parts_the_policy_calls(tiny_config):
    """torch.compile is lazy: wrapping costs nothing until a call, so the test checks what gets wrapped."""
    import pytest

    from drive_vla.policy import DrivingPolicy

    policy = DrivingPolicy.build(tiny_config())
    decoder = policy.model.lm.get_decoder()
    original = decoder.forward
    bench.compile_parts(policy, "all")
    assert type(policy.model.vision.backbone).__name__ == "OptimizedModule"
    assert policy.model.lm.get_decoder().forward is not original  # reached through get_decoder(), as generation does
    with pytest.raises(ValueError, match="--compile: got 'jit'"):
        bench.compile_parts(policy, "jit")


def test_bench_policy_times_a_saved_policy_on_dataset_keyframes(tiny_config, tmp_path):
    """A trained policy is timed as saved, on real keyframes cycled through; tokens per plan are averaged."""
    import pytest
    from nuscenes_factory import write_synthetic_dataset

    from drive_vla.policy import DrivingPolicy

    write_synthetic_dataset(tmp_path / "data", scenes=2, n_keyframes=4, version="v1.0-synthetic")
    policy_dir = DrivingPolicy.build(tiny_config()).save_pretrained(tmp_path / "p")
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    base = ["--policy", str(policy_dir), "--repeats", "3", "--warmup", "0"]
    data = ["--dataroot", str(tmp_path / "data"), "--version", "v1.0-synthetic", "--samples", "3"]
    rows = bench.run(parser.parse_args(base + data))
    assert [r["mode"] for r in rows] == ["tokens", "head"]
    tokens, head = rows
    assert tokens["config"] == f"policy:{policy_dir}"
    assert tokens["generated_tokens"] == tokens["generated_tokens_max"] == 12 + 3  # uniform bins: a fixed count
    assert head["generated_tokens"] == 0 and tokens["p50_ms"] > 0
    with pytest.raises(ValueError, match="--override: not with --policy"):
        bench.run(parser.parse_args(base + ["--override", "output_mode=head"]))
    with pytest.raises(ValueError, match="--dtype: not with --policy"):
        bench.run(parser.parse_args(base + ["--dtype", "bf16"]))
    with pytest.raises(ValueError, match="--policy: not with --sweep"):
        bench.run(parser.parse_args(base + ["--sweep"]))
    with pytest.raises(ValueError, match=r"split: got 'test', expected one of \['train', 'val'\]"):
        bench.run(parser.parse_args(base + data + ["--split", "test"]))

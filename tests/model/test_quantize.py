"""CPU INT8: dynamic quantization of a saved policy, its flags, and the device/dtype checks of bench policy."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from drive_vla.model import bench
from drive_vla.model.quantize import QUANTIZE_MODES, check_quantize, count_quantized
from drive_vla.policy import DrivingPolicy


def test_unknown_mode_or_a_gpu_device_is_refused_naming_the_flag():
    with pytest.raises(ValueError, match=r"--quantize: got 'int4', expected one of \['none', 'int8'\]"):
        check_quantize("int4", "cpu", "--quantize")
    with pytest.raises(ValueError, match="quantize: got 'int8' with device 'cuda'.*'cpu' only"):
        check_quantize("int8", "cuda")
    assert QUANTIZE_MODES == ("none", "int8")


def test_an_int8_policy_quantizes_every_linear_layer_and_plans_like_float32(tiny_config, observation, tmp_path):
    cfg = tiny_config("output_mode=head")
    torch.manual_seed(0)
    DrivingPolicy.build(cfg).save_pretrained(tmp_path / "p")
    fp32 = DrivingPolicy.from_pretrained(tmp_path / "p")
    int8 = DrivingPolicy.from_pretrained(tmp_path / "p", quantize="int8")
    # every plain nn.Linear; attention's fused out_proj (NonDynamicallyQuantizableLinear) stays float32
    n_linear = sum(type(m) is torch.nn.Linear for m in fp32.model.modules())
    assert count_quantized(fp32.model) == 0 and count_quantized(int8.model) == n_linear > 10
    assert not any(type(m) is torch.nn.Linear for m in int8.model.modules())
    a, b = fp32.predict(observation).trajectory.xy, int8.predict(observation).trajectory.xy
    assert np.all(np.isfinite(b)) and np.abs(a - b).max() < 0.05 * max(1.0, np.abs(a).max())


def test_the_mode_is_checked_before_anything_is_read(tmp_path):
    with pytest.raises(ValueError, match="quantize: got 'fp8'"):
        DrivingPolicy.from_pretrained(tmp_path / "does-not-exist", quantize="fp8")


def _bench_args(yaml_path, overrides, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(
        ["--config", str(yaml_path), "--repeats", "2", "--warmup", "0", "--modes", "head", *extra]
        + [a for o in overrides for a in ("--override", o)]
    )


def test_bench_policy_times_the_int8_model_in_both_modes(tiny_yaml_and_overrides):
    args = _bench_args(*tiny_yaml_and_overrides, "--quantize", "int8")
    args.modes = "tokens,head"  # tokens mode decodes through the quantized LM head
    rows = bench.run(args)
    assert [r["quantize"] for r in rows] == ["int8", "int8"] and all(r["p50_ms"] > 0 for r in rows)
    assert rows[0]["generated_tokens"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--quantize", "int4"), r"--quantize: got 'int4', expected one of"),
        (("--quantize", "int8", "--dtype", "bf16"), r"--quantize: got 'int8' with --dtype bf16, expected --dtype fp32"),
        (("--device", "tpu"), r"--device: got 'tpu', expected one of \['cpu'"),
    ],
)
def test_bench_policy_refuses_bad_flags_before_building(tiny_yaml_and_overrides, extra, message):
    with pytest.raises(ValueError, match=message):
        bench.run(_bench_args(*tiny_yaml_and_overrides, *extra))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_bench_policy_without_cuda_names_the_device_flag(tiny_yaml_and_overrides):
    with pytest.raises(ValueError, match=r"--device: got 'cuda', but CUDA is not available here; expected one of"):
        bench.run(_bench_args(*tiny_yaml_and_overrides, "--device", "cuda", "--dtype", "bf16"))


def test_drive_and_serve_refuse_an_unknown_mode_before_loading(tmp_path, capsys):
    from drive_vla.cli.main import main

    with pytest.raises(ValueError, match=r"--quantize: got 'int4', expected one of"):
        main(
            ["drive", "--policy", str(tmp_path), "--suite", "smoke", "--out", str(tmp_path / "o"), "--quantize", "int4"]
        )
    assert main(["serve", "--policy", str(tmp_path), "--quantize", "int4"]) == 2
    assert "--quantize: got 'int4'" in capsys.readouterr().err

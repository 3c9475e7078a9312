"""The service with the real DrivingPolicy (tiny config, random weights): in-process and via `drive-vla serve`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from tiny_models import TINY_MODEL_OVERRIDES

from drive_vla.serve import BackgroundServer, create_app, load_policy, request_from_observation
from drive_vla.serve.server import free_port_socket

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_policy_dir(tmp_path_factory) -> Path:
    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig
    from drive_vla.policy import DrivingPolicy

    cfg = load_config(ModelConfig, REPO / "configs" / "model" / "tiny.yaml", TINY_MODEL_OVERRIDES)
    # no data: tiny.yaml's "corpus" text tokenizer is fitted to the fixed prompt and label texts
    return DrivingPolicy.build(cfg, fit_texts=[]).save_pretrained(tmp_path_factory.mktemp("serve") / "tiny-policy")


def _check_plan(out: dict) -> None:
    xy = np.array(out["plan"]["trajectory"]["xy"])
    assert xy.shape == (6, 2) and np.isfinite(xy).all()
    assert out["timings_ms"]["policy"] > 0


@pytest.mark.slow
def test_real_policy_in_process(tiny_policy_dir, make_obs):
    policy = load_policy(tiny_policy_dir)
    body = request_from_observation(make_obs())
    with BackgroundServer(create_app(policy, model_name="tiny")) as srv:
        first = httpx.post(srv.url + "/plan", json=body, timeout=60)
        assert first.status_code == 200, first.text
        _check_plan(first.json())
        again = httpx.post(srv.url + "/plan", json=body, timeout=60).json()
        # memory is reset per request, so the same request gives the same plan
        assert again["plan"]["trajectory"]["xy"] == first.json()["plan"]["trajectory"]["xy"]
        r = httpx.post(srv.url + "/explain", json=dict(body, question="Why?"), timeout=60)
        assert r.status_code == 200, r.text
        assert isinstance(r.json()["answer"], str)
        _check_plan(r.json())
        assert httpx.get(srv.url + "/health").json()["requests_served"] == 3


@pytest.mark.slow
def test_cli_serve_subprocess(tiny_policy_dir, make_obs):
    sock = free_port_socket()
    port = sock.getsockname()[1]
    sock.close()  # the server binds it again; the tiny race is acceptable in a test
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    cmd = [sys.executable, "-m", "drive_vla.cli.main", "serve", "--policy", str(tiny_policy_dir), "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                health = httpx.get(url + "/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.25)
        else:
            pytest.fail("drive-vla serve did not answer /health in 120 s")
        assert health.json()["model"] == "tiny-policy"
        r = httpx.post(url + "/plan", json=request_from_observation(make_obs()), timeout=60)
        assert r.status_code == 200, r.text
        _check_plan(r.json())
        bad = httpx.post(url + "/plan", json={"images": {}}, timeout=10)
        assert bad.status_code == 422
        assert httpx.get(url + "/health", timeout=5).json()["requests_served"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)

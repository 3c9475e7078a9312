"""`drive-vla data make-embedded` killed with SIGKILL mid-run: the half-written data never loads as a
dataset, and a re-run into the same folder starts clean and completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from drive_vla.data.index import DatasetError
from drive_vla.data.reader import NuScenesReader


@pytest.mark.slow
def test_killed_dataset_run_never_loads_and_a_rerun_completes(tmp_path):
    out = tmp_path / "embedded"
    cmd = [sys.executable, "-m", "drive_vla.cli.main", "data", "make-embedded", "--out", str(out)]
    cmd += ["--scenes", "3", "--keyframes", "6", "--image-size", "64x36", "--workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stage = out / ".partial-v1.0-embedded"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if stage.is_dir() and any(stage.rglob("*.jpg")):  # some images written, tables not yet
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; give it more scenes"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    with pytest.raises(DatasetError, match="version: .*v1.0-embedded does not exist"):
        NuScenesReader(out, "v1.0-embedded")
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    reader = NuScenesReader(out, "v1.0-embedded")
    assert len(reader) == 3 * 6 and not stage.exists()

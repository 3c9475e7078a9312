"""The per-episode HTML report: content from a synthetic episode, self-contained, escaped; a headless screenshot."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from drive_vla.types import Plan, Trajectory
from drive_vla.viz.episode_report import read_episode, write_episode_report
from drive_vla.viz.sample_figure import render_sample_figure

EVIL = "<script>alert('x')</script> & braking"


def _plan(speed: float) -> dict:
    t = np.arange(1, 7, dtype=np.float32) * 0.5
    return Plan(Trajectory(np.stack([speed * t, 0 * t], axis=1)), meta_action="keep speed, straight").to_dict()


def make_episode(root: Path, n_steps: int = 60, strips: tuple[int, ...] = (0, 20, 40, 59), make_obs=None) -> Path:
    ep = root / "episode"
    ep.mkdir(parents=True)
    lines = []
    for i in range(n_steps):
        speed = 8.0 * (1 - math.exp(-i / 15))
        lines.append(
            json.dumps(
                {
                    "step": i,
                    "time_s": round(0.1 * i, 2),
                    "speed_mps": speed,
                    "control": {
                        "steer": 0.2 * math.sin(i / 8),
                        "throttle": 0.5 if i < 40 else 0.0,
                        "brake": 0.0 if i < 40 else 0.6,
                    },
                    "plan": _plan(speed),
                    "explanation": None
                    if i % 20
                    else (EVIL if i == 40 else f"Accelerating to {speed:.1f} m/s; lane clear (step {i})."),
                    "route_completion": i / (n_steps - 1),
                    "infractions": ["collision_vehicle"] if i == 45 else [],
                }
            )
        )
    (ep / "steps.jsonl").write_text("\n".join(lines) + "\n")
    summary = {"scenario": "merge-highway", "seed": 7, "driving_score": 0.6, "route_completion": 1.0,
               "success": False, "infractions": {"collision_vehicle": 1}, "mean_speed_mps": 5.9, "ticks": n_steps}  # fmt: skip
    (ep / "summary.json").write_text(json.dumps(summary))
    if strips and make_obs is not None:
        (ep / "frames").mkdir()
        for n in strips:
            fig = render_sample_figure(
                make_obs(),
                Trajectory(np.stack([np.arange(1, 7) * 2.0, np.zeros(6)], 1).astype(np.float32)),
                tile_width=160,
            )
            fig.save(ep / "frames" / f"strip_{n:05d}.png")
    return ep


def _inline_pngs(page: str) -> list[np.ndarray]:
    out = []
    for b64 in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page):
        img = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None
        out.append(img)
    return out


def test_report_content_is_complete_and_self_contained(tmp_path, make_grey_obs):
    ep = make_episode(tmp_path, make_obs=make_grey_obs)
    path = write_episode_report(ep)
    assert path == ep / "report.html"
    page = path.read_text()
    assert "<h1>drive-vla episode: merge-highway</h1>" in page and "seed 7" in page and "60 steps" in page
    assert re.search(r"<th>driving_score</th><td class=\"v\">0\.600</td>", page)
    assert "collision_vehicle: 1" in page and 'class="v bad">no<' in page
    images = _inline_pngs(page)
    assert len(images) == 4 + 1  # four strip frames and the plots
    assert images[0].shape[1] == 3 * 160 + 2 * 90  # strips are the frames as written
    # rationale timeline: steps 0, 20, 40 in order; the model's text is escaped, never markup
    assert page.index("(step 0)") < page.index("(step 20)") < page.index("&lt;script&gt;")
    assert "<script" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; braking" in page
    assert re.search(r"<td class=\"t\">45</td><td class=\"t\">4\.5</td><td>collision_vehicle</td>", page)
    # self-contained: no external resources
    assert not re.search(r"(src|href)=[\"']?(https?:|//|file:)", page)


def test_report_limits_frames_and_tolerates_missing_parts(tmp_path, make_grey_obs):
    ep = make_episode(tmp_path, strips=(0, 10, 20, 30, 40, 50), make_obs=make_grey_obs)
    page = write_episode_report(ep, out=tmp_path / "out" / "r.html", max_frames=3).read_text()
    assert len(_inline_pngs(page)) == 3 + 1 and "3 of 6 frames" in page
    assert "step 0<" in page and "step 50<" in page  # first and last kept
    (ep / "summary.json").unlink()
    for p in (ep / "frames").iterdir():
        p.unlink()
    page = write_episode_report(ep).read_text()
    assert "No summary.json." in page and "No frames recorded." in page and len(_inline_pngs(page)) == 1


def test_report_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        write_episode_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither steps.jsonl nor summary.json"):
        write_episode_report(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "steps.jsonl").write_text('{"step": 0}\n\n{"step": 1,\n')
    with pytest.raises(ValueError, match="line 3: invalid JSON"):
        read_episode(bad)
    (bad / "steps.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="line 1: got list"):
        read_episode(bad)
    summary_only = tmp_path / "summary_only"
    summary_only.mkdir()
    (summary_only / "summary.json").write_text('{"scenario": "s", "driving_score": 1.0}')
    assert "No steps recorded." in write_episode_report(summary_only).read_text()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no chromium/chrome on PATH (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path, make_grey_obs):
    page = write_episode_report(make_episode(tmp_path, make_obs=make_grey_obs))
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,900", page.resolve().as_uri()]  # fmt: skip
        subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    img = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert img is not None, "chromium wrote no screenshot"
    assert img.shape[:2] == (900, 1200)
    # Not a blank page: the light background plus dark text and the inlined strip frames (dark figures).
    dark = (img.mean(axis=2) < 80).mean()
    assert 0.02 < dark < 0.9 and img.std() > 20

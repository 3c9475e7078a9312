"""The expert scores 100 on every route of every shipped embedded suite (it is the reference driver)."""

from __future__ import annotations

import pytest

from drive_vla.closed_loop import DriveLoopConfig, run_episode
from drive_vla.sim.env import EmbeddedEnv, ExpertControl, ExpertPlanner
from drive_vla.suites import available_suites, load_suite

EMBEDDED = [
    n.removeprefix("closed_loop_")
    for n in available_suites()
    if load_suite(n.removeprefix("closed_loop_")).env == "embedded"
]


def _expert_scores(suite_name: str) -> dict[str, float]:
    suite = load_suite(suite_name)
    cfg = DriveLoopConfig(max_time_s=suite.max_time_s, explain_every_s=0, save_frames_every_s=0, strip_every_s=0)
    env = EmbeddedEnv(image_wh=(32, 18))  # the expert reads the world; only reset renders, so keep it small
    try:
        scores = {}
        for r in suite.routes:
            result = run_episode(env, ExpertPlanner(env), ExpertControl(), r.scenario, r.seed, cfg)
            scores[r.route_id] = (result.score["driving_score"], result.summary["done_reason"])
        return scores
    finally:
        env.close()


def test_shipped_embedded_suites_are_the_expected_ones():
    assert set(EMBEDDED) >= {"smoke", "demo", "heldout", "benchmark", "dev"}
    bench = load_suite("benchmark")
    assert len(bench.routes) >= 48 and bench.held_out
    for scenario in ("highway", "merge", "intersection", "roundabout"):
        assert sum(r.scenario == scenario for r in bench.routes) >= 12
    held = {r.seed for n in EMBEDDED if load_suite(n).held_out for r in load_suite(n).routes}
    assert all(900_000 <= s < 1_000_000 for s in held)  # drive_vla.sim.dataset.HELD_OUT_SEEDS
    dev = load_suite("dev")  # for choosing settings: training-range seeds, never a held-out one
    assert not dev.held_out and len(dev.routes) >= 24
    assert not {r.seed for r in dev.routes} & set(range(900_000, 1_000_000))
    select = load_suite("select")  # checkpoint selection: training-range seeds, none shared with dev
    assert not select.held_out and not {r.seed for r in select.routes} & ({r.seed for r in dev.routes} | held)


@pytest.mark.parametrize("suite_name", ["smoke", "demo"])
def test_expert_scores_100_on_the_small_suites(suite_name):
    scores = _expert_scores(suite_name)
    assert {k: v for k, v in scores.items() if v[0] != 100.0} == {}


@pytest.mark.slow
@pytest.mark.parametrize("suite_name", [n for n in EMBEDDED if n not in ("smoke", "demo")])
def test_expert_scores_100_on_every_embedded_suite(suite_name):
    scores = _expert_scores(suite_name)
    assert {k: v for k, v in scores.items() if v[0] != 100.0} == {}

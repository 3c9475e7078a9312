"""Drive a suite of routes, seeded and deterministic: the one loop behind every closed-loop score.

`drive-vla drive` drives each planner of a run through :func:`drive_routes`; choosing a run's checkpoint by
driving (`training/select.py`) and scoring DAgger rounds (`training/dagger_steps.py`) drive one exported
policy through :func:`drive_policy_on_suite`. Both fix torch's threads and turn on deterministic kernels
(:func:`fix_torch`) and seed every route from (run seed, route), so the same policy on the same suite
gives the same scores on every path, twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drive_vla.closed_loop import DriveLoopConfig, EpisodeResult, run_episode
from drive_vla.suites import DriveSuite, RouteSpec


def fix_torch(threads: int, name: str = "threads") -> None:
    """Fixed torch CPU threads and deterministic kernels, so the same policy drives the same way twice
    (``name``: the setting that gave ``threads``, for the error)."""
    if threads < 1:
        raise ValueError(f"{name}: got {threads}, expected >= 1")
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


@contextmanager
def fixed_torch(threads: int) -> Iterator[None]:
    """:func:`fix_torch` inside the block; torch's threads, determinism and cuDNN autotuning restored after it."""
    import torch

    before = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    try:
        fix_torch(threads)
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1], warn_only=before[2])
        torch.backends.cudnn.benchmark = before[3]


def drive_routes(
    env: Any,
    planner: Any,
    controller: Any,
    routes: list[RouteSpec],
    loop: DriveLoopConfig,
    out: Path | None = None,
    on_route: Callable[[RouteSpec, EpisodeResult], None] | None = None,
) -> list[EpisodeResult]:
    """Drive ``routes`` in order with one planner and controller; episode logs under ``out/<route_id>``."""
    results = []
    for route in routes:
        route_dir = out / route.route_id if out is not None else None
        result = run_episode(env, planner, controller, route.scenario, route.seed, loop, route_dir, route.route_id)
        results.append(result)
        if on_route is not None:
            on_route(route, result)
    return results


def drive_policy_on_suite(
    policy_dir: str | Path,
    suite: DriveSuite,
    *,
    seed: int = 0,
    threads: int = 1,
    controller: str = "pid",
    max_routes: int | None = None,
    progress: str | None = None,
) -> dict[str, Any]:
    """Drive the exported policy at ``policy_dir`` over ``suite`` (embedded world, at the policy's image size).

    The scores equal `drive-vla drive --policy DIR --suite NAME --seed SEED --threads THREADS` (no frames or
    explanations are saved here; they do not change how the routes are driven). Returns the suite's name, the
    run's seed and threads, driving score, route completion, success rate (%), collisions, and per route its
    id, driving score, route completion and how it ended.
    """
    from tqdm.auto import tqdm

    from drive_vla.control import make_controller
    from drive_vla.eval.closed_loop_scoring import summarize_routes
    from drive_vla.policy import DrivingPolicy
    from drive_vla.sim.env import EmbeddedEnv

    if suite.env != "embedded":
        raise ValueError(f"suite {suite.name}: its routes are for env {suite.env!r}; only 'embedded' is driven here")
    routes = suite.routes[:max_routes] if max_routes else suite.routes
    loop = DriveLoopConfig(
        max_time_s=suite.max_time_s, seed=seed, explain_every_s=0, save_frames_every_s=0, strip_every_s=0
    )
    with fixed_torch(threads):
        policy = DrivingPolicy.from_pretrained(policy_dir)
        h, w = policy.config.vision.image_hw
        env = EmbeddedEnv(image_wh=(int(w), int(h)))
        bar = tqdm(total=len(routes), desc=progress, unit="route", disable=progress is None)
        try:
            results = drive_routes(
                env, policy, make_controller(controller), routes, loop, on_route=lambda *_: bar.update(1)
            )
        finally:
            env.close()
            bar.close()
    total = summarize_routes([r.record for r in results], [r.route_id for r in routes])
    return {
        "suite": suite.name,
        "seed": seed,
        "threads": threads,
        "driving_score": total["driving_score"],
        "route_completion": total["route_completion"],
        "success_rate": total["success_rate"],
        "collisions": total["collisions"],
        "routes": [
            {
                "route_id": route.route_id,
                "driving_score": r.score["driving_score"],
                "route_completion": r.score["route_completion"],
                "done_reason": r.summary.get("done_reason"),
            }
            for route, r in zip(routes, results, strict=True)
        ],
    }

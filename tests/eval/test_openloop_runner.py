"""The open-loop runner: frame conversion at the boundary, failures, language metrics, comparison."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from drive_vla.baselines import make_baseline
from drive_vla.eval.openloop import NoValidSamplesError, compare, ego_plan_to_lidar, evaluate, run_openloop
from drive_vla.eval.report import format_report, language_rows
from drive_vla.geometry import NUSCENES_LIDAR2EGO
from drive_vla.types import Plan, Trajectory

LIDAR_AHEAD_M = float(NUSCENES_LIDAR2EGO[0, 3])


def test_ego_plan_to_lidar_axes_and_heading():
    poses = np.array([[10.0, 0.0, 0.0], [10.0, 2.0, 0.0]] + [[0.0, 0.0, 0.0]] * 4)
    xy, yaw = ego_plan_to_lidar(poses, heading="plan")
    assert xy[0] == pytest.approx([0.0, 10.0])  # forward -> LiDAR +y
    assert xy[1] == pytest.approx([-2.0, 10.0])  # left -> LiDAR -x
    assert yaw[0] == pytest.approx(np.pi / 2)
    # a quarter circle: with yaw the LiDAR origin (0.94 m ahead of the ego origin) swings left
    arc = np.array([[5.0, 5.0, np.pi / 2]] * 6)
    xy_plan, _ = ego_plan_to_lidar(arc, heading="plan")
    assert xy_plan[0] == pytest.approx([-5.0 - LIDAR_AHEAD_M, 5.0 - LIDAR_AHEAD_M])
    xy_auto, _ = ego_plan_to_lidar(arc * [1, 1, 0], heading="auto")  # yaw from the path (45 deg)
    assert xy_auto[0] == pytest.approx(
        [-5.0 - LIDAR_AHEAD_M / np.sqrt(2), 5.0 - LIDAR_AHEAD_M + LIDAR_AHEAD_M / np.sqrt(2)]
    )


def test_constant_velocity_scores_zero_on_constant_velocity_futures(sample_factory, reader_factory):
    samples = [sample_factory(f"s{i}", speed_mps=2.0 + i, yaw_rate_rps=0.2 * (i % 3 - 1)) for i in range(6)]
    rep = evaluate(make_baseline("constant_turn_rate"), reader_factory(samples), batch_size=4)
    for proto in ("stp3", "uniad"):
        assert rep[proto]["l2_m"]["avg"] == pytest.approx(0.0, abs=1e-5)
        assert rep[proto]["num_samples"] == 6
    assert rep["failures"]["count"] == 0
    straight = evaluate(make_baseline("constant_velocity"), reader_factory(samples))
    assert straight["stp3"]["l2_m"]["3s"] > 0.1  # ignores the turns


def test_parked_car_in_ego_frame_collides_through_the_runner(sample_factory, box_factory, reader_factory):
    car = box_factory(LIDAR_AHEAD_M + 10.1, 0.0, 4.5, 1.8, "vehicle.car")  # 10.1 m ahead of the LiDAR
    sample = sample_factory("s0", speed_mps=5.0, boxes=[car] * 6)
    # ground truth brakes before the car; the constant-velocity plan drives through it
    gt = sample_factory("g", future_poses=np.stack([[1, 2, 3, 4, 5, 5.5], np.zeros(6), np.zeros(6)], axis=1))
    sample = type(sample)(
        sample.observation, type(sample.targets)(gt.targets.trajectory, future_boxes=(car,) * 6), sample.meta
    )
    rep = evaluate(make_baseline("constant_velocity"), reader_factory([sample]))
    # ST-P3 draws the car in the ego frame (ego x 8.79..13.29 m -> rows 118..127) and looks the plan up
    # at its LiDAR y: the footprint (rows 97..104 + y / 0.5) reaches row 118 from y = 7.5 m, steps 3..6
    assert rep["stp3"]["collision_pct"] == pytest.approx({"1s": 0.0, "2s": 50.0, "3s": 200 / 3, "avg": 350 / 9})
    assert rep["uniad"]["collision_pct"]["2s"] == pytest.approx(100.0)


class FlakyPlanner:
    """Constant velocity, except: raises at t=2, returns NaN at t=3, 4 waypoints at t=4."""

    def __init__(self):
        self.inner = make_baseline("constant_velocity")
        self.resets = 0

    def predict_batch(self, observations):
        if any(o.timestamp_s == 2.0 for o in observations):
            raise RuntimeError("boom")
        plans = []
        for o in observations:
            if o.timestamp_s == 3.0:
                plans.append(SimpleNamespace(trajectory=SimpleNamespace(xy=np.full((6, 2), np.nan), yaw_rad=None)))
            elif o.timestamp_s == 4.0:
                plans.append(Plan(trajectory=Trajectory(xy=np.zeros((4, 2), np.float32))))
            else:
                plans.extend(self.inner.predict_batch([o]))
        return plans

    def reset(self):
        self.resets += 1


def test_failures_are_recorded_per_sample_not_raised(sample_factory, reader_factory):
    samples = [sample_factory(f"s{i}", timestamp_s=float(i), scene="a" if i < 4 else "b") for i in range(6)]
    planner = FlakyPlanner()
    rep = evaluate(planner, reader_factory(samples), batch_size=4)
    assert rep["failures"]["count"] == 3
    errors = {f["token"]: f["error"] for f in rep["failures"]["samples"]}
    assert set(errors) == {"s2", "s3", "s4"}
    assert "boom" in errors["s2"] and "NaN" in errors["s3"] and "shape (4, 2)" in errors["s4"]
    assert rep["num_predicted"] == 3 and rep["stp3"]["num_samples"] == 3
    assert rep["stp3"]["l2_m"]["avg"] == pytest.approx(0.0, abs=1e-5)
    assert planner.resets == 2  # one per scene


def test_planner_failing_everywhere_gets_a_report_not_a_crash(sample_factory, reader_factory):
    class Broken:
        def predict_batch(self, observations):
            return []

        def reset(self):
            pass

    rep = evaluate(Broken(), reader_factory([sample_factory("s0"), sample_factory("s1")]))
    assert rep["failures"]["count"] == 2 and rep["stp3"] is None and "no valid plan" in rep["error"]
    assert "got 0 plans" in rep["failures"]["samples"][0]["error"]


def test_empty_split_and_split_without_future_are_clear_errors(sample_factory, reader_factory):
    with pytest.raises(NoValidSamplesError, match="split 'val' has 0 samples"):
        evaluate(make_baseline("constant_velocity"), reader_factory([]))
    no_future = reader_factory([sample_factory("s0", mask=[False] * 6)])
    with pytest.raises(NoValidSamplesError, match="valid future waypoint"):
        evaluate(make_baseline("constant_velocity"), no_future)
    short = reader_factory([sample_factory("s0", mask=[True] * 4 + [False] * 2)])
    with pytest.raises(NoValidSamplesError, match="stp3 protocol requires"):
        evaluate(make_baseline("constant_velocity"), short, protocol="stp3")
    rep = evaluate(make_baseline("constant_velocity"), short, protocol="all")
    assert rep["stp3"]["num_samples"] == 0 and rep["uniad"]["num_samples"] == 1


def test_language_metrics_against_labels(sample_factory, reader_factory):
    class Talker:
        def predict_batch(self, observations):
            plans = make_baseline("constant_velocity").predict_batch(observations)
            return [
                Plan(p.trajectory, meta_action="keep speed, straight", text="the road ahead is clear") for p in plans
            ]

        def reset(self):
            pass

    samples = [
        sample_factory("s0", meta_action="keep speed, straight", explanation="the road ahead is clear"),
        sample_factory("s1", meta_action="decelerate, straight", explanation="a car ahead is braking"),
    ]
    rep = evaluate(Talker(), reader_factory(samples))
    meta = rep["language"]["meta_action"]
    assert meta["accuracy"] == 0.5 and meta["direction_accuracy"] == 1.0 and meta["num_pairs"] == 2
    rouge = rep["language"]["explanation"]["rouge_l_f1"]
    assert 0.5 < rouge < 1.0  # one exact match (1.0), one partial (0.2: "ahead")


def test_explained_meta_action_accuracy_and_plan_consistency(sample_factory, reader_factory):
    class Explainer:  # plans carry no meta-action; its explanation sentence states one
        def predict_batch(self, observations):
            return make_baseline("constant_velocity").predict_batch(observations)

        def explain(self, obs):
            said = "Keep speed and go straight." if obs.ego.speed_mps < 6 else "Slow down and go straight."
            return f"{said} The road ahead is clear."

        def reset(self):
            pass

    samples = [
        sample_factory("s0", speed_mps=5.0, meta_action="keep speed, straight", explanation="the road is clear"),
        sample_factory("s1", speed_mps=8.0, meta_action="decelerate, straight", explanation="a car is braking"),
    ]
    report = compare({"vla": Explainer()}, reader_factory(samples), explain=True)
    lang = report["models"]["vla"]["language"]
    assert lang["meta_action"]["accuracy"] == 1.0 and lang["meta_action"]["num_pairs"] == 2
    # its constant-velocity plans keep speed: the second explanation ("slow down") contradicts its own plan
    assert lang["plan_consistency"]["accuracy"] == 0.5 and lang["plan_consistency"]["speed_accuracy"] == 0.5
    assert lang["plan_consistency"]["direction_accuracy"] == 1.0
    row = language_rows(report)[0]
    assert row["meta-action acc"] == "1.000" and row["plan consistency"] == "0.500"
    assert "plan consistency: stated meta-action vs labels.meta_action" in format_report(report)
    without = compare({"vla": Explainer()}, reader_factory(samples), explain=False)["models"]["vla"]
    assert "language" not in without  # no explanation asked, no meta-action stated

    class BatchExplainer(Explainer):  # one explain_batch call per batch replaces the per-sample calls
        calls = 0

        def explain(self, obs):
            raise AssertionError("explain_batch should have been used")

        def explain_batch(self, observations):
            BatchExplainer.calls += 1
            return [Explainer.explain(self, o) for o in observations]

    batched = compare({"vla": BatchExplainer()}, reader_factory(samples), explain=True)["models"]["vla"]
    assert batched["language"] == lang and BatchExplainer.calls == 1


def test_compare_runs_several_planners_on_one_read(sample_factory, reader_factory):
    samples = [sample_factory(f"s{i}", yaw_rate_rps=0.3) for i in range(3)]
    reads = []

    class CountingReader(reader_factory):
        def __getitem__(self, i):
            reads.append(i)
            return super().__getitem__(i)

    rep = compare(
        {"cv": make_baseline("constant_velocity"), "ctr": make_baseline("constant_turn_rate")},
        CountingReader(samples),
    )
    assert sorted(reads) == [0, 1, 2]
    assert set(rep["models"]) == {"cv", "ctr"}
    assert rep["models"]["ctr"]["stp3"]["l2_m"]["3s"] < rep["models"]["cv"]["stp3"]["l2_m"]["3s"]
    assert set(rep["protocols"]) == {"stp3", "uniad", "odv_uniad", "odv_stp3", "box_overlap"}


def test_max_samples_limits_the_run(sample_factory, reader_factory):
    run = run_openloop(
        {"cv": make_baseline("constant_velocity")},
        reader_factory([sample_factory(f"s{i}") for i in range(5)]),
        max_samples=2,
    )
    assert len(run.gt) == 2 and run.dataset["num_samples"] == 2

"""Each protocol's grid, agents and sample set, with answers taken from the peers' own code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drive_vla.eval.occupancy import ODV_GRID, STP3_GRID, UNIAD_GRID, AgentBoxes, occupancy_collisions
from drive_vla.eval.openloop_protocols import SampleAgents, resolve_protocols, stp3_in_sample_set

KEYFRAME = Path(__file__).resolve().parents[3] / "shared" / "data" / "nuscenes_keyframe" / "keyframe.json"
ORIGIN = np.zeros((1, 1, 2))  # one waypoint at the LiDAR origin


def cell_box(col: int, row: int) -> AgentBoxes:
    """A 0.4 m square whose corners all round to drawn cell (row, col): cv2 fills that one cell."""
    centre = (-50.0 + 0.5 * np.array([col, row], dtype=float))[None]
    return AgentBoxes(np.zeros(1, int), np.zeros(1, int), centre, np.full(1, 0.4), np.full(1, 0.4), np.zeros(1),
                      np.ones(1, np.int8))  # fmt: skip


def hit(layout, box: AgentBoxes, xy=ORIGIN) -> bool:
    return bool(occupancy_collisions([np.asarray(xy, float)], box, None, layout)[0, 0, 0, 0])


def test_footprint_reads_columns_98_to_101_at_the_origin_in_every_layout():
    for layout in (STP3_GRID, UNIAD_GRID, ODV_GRID):
        assert [hit(layout, cell_box(c, 100)) for c in (97, 98, 101, 102)] == [False, True, True, False]


def test_an_agent_one_cell_beyond_the_footprint_collides_under_one_layout_only():
    left = np.array([[[-0.5, 0.0]]])  # waypoint 0.5 m left of the LiDAR origin (x = -0.5)
    # ST-P3 (stp3/metrics.py evaluate_coll: x * -1) reads drawn columns int(98..101 + 1) = 99..102;
    # UniAD (planning_metrics.py: x as is) reads int(98..101 - 1) = 97..100.
    assert hit(STP3_GRID, cell_box(102, 100), left) and not hit(UNIAD_GRID, cell_box(102, 100), left)
    assert hit(UNIAD_GRID, cell_box(97, 100), left) and not hit(STP3_GRID, cell_box(97, 100), left)
    # OpenDriveVLA (x * -1 on UniAD's raster flipped left-right) reads 199 - (99..102) = 97..100 here,
    # but one column right of UniAD when x / 0.5 has a fraction: x = -0.3 -> UniAD int(97.4..100.4) =
    # 97..100, ODV 199 - int(98.6..101.6) = 98..101
    frac = np.array([[[-0.3, 0.0]]])
    assert hit(UNIAD_GRID, cell_box(97, 100), frac) and not hit(ODV_GRID, cell_box(97, 100), frac)
    assert hit(ODV_GRID, cell_box(101, 100), frac) and not hit(UNIAD_GRID, cell_box(101, 100), frac)


ROT_ONLY = np.array([[0.0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # LiDAR x right, y forward


def scene(x: float, y: float, bx: float, by: float, yaw: float, length: float, width: float):
    """A waypoint (LiDAR frame) and one car (global = ego frame), seen through a translation-free mount."""
    a = SampleAgents(
        np.array([0, 1]), np.array([[by, -bx, 0.0]] * 2), np.array([[np.sin(yaw), -np.cos(yaw), 0.0]] * 2),
        np.array([[width, length, 1.5]] * 2), ("vehicle.car",) * 2, ("car", "car"), np.array([4, 4]),
        np.eye(4), ROT_ONLY,
    )  # fmt: skip
    return np.array([[[x, y]]]), a


@settings(max_examples=80, deadline=None)
@given(
    x=st.floats(-3.0, 3.0), y=st.floats(-2.0, 8.0), bx=st.floats(-4.0, 4.0), by=st.floats(-2.0, 10.0),
    yaw=st.floats(-np.pi, np.pi), length=st.floats(0.5, 5.0), width=st.floats(0.5, 2.5),
)  # fmt: skip
def test_mirroring_a_scene_left_to_right_turns_uniad_flags_into_stp3_flags(x, y, bx, by, yaw, length, width):
    # ST-P3 draws columns along +left and looks up -x; UniAD draws +x and looks up +x. Mirroring the scene
    # (x -> -x for the waypoint and the car, heading mirrored) therefore gives UniAD exactly ST-P3's raster
    # and lookup of the original scene (with a mount that has no translation, ST-P3's ego frame and the
    # LiDAR frame differ by the rotation alone).
    wp, a = scene(x, y, bx, by, yaw, length, width)
    wp_m, a_m = scene(-x, y, -bx, by, np.pi - yaw, length, width)
    assert hit(UNIAD_GRID, a_m.uniad_boxes(0), wp_m) == hit(STP3_GRID, a.stp3_boxes(0), wp)
    assert hit(STP3_GRID, a_m.stp3_boxes(0), wp_m) == hit(UNIAD_GRID, a.uniad_boxes(0), wp)
    # ODV reads UniAD's own raster one column right of UniAD whenever x / 0.5 has a fraction
    frac = (98.0 - x / 0.5) % 1.0 != 0.0  # as the lookup's float arithmetic sees it
    shifted = wp + [[[0.5 if frac else 0.0, 0.0]]]
    assert hit(ODV_GRID, a.uniad_boxes(0), wp) == hit(UNIAD_GRID, a.uniad_boxes(0), shifted)


def agents(**kw) -> SampleAgents:
    base = dict(
        step=np.array([-1, 1, 1, 1, 1]), xyz=np.array([[10.0, 0, 0]] * 5), heading=np.array([[1.0, 0, 0]] * 5),
        wlh=np.array([[1.8, 4.5, 1.6]] * 5),
        category=("vehicle.car", "vehicle.car", "vehicle.emergency.police", "human.pedestrian.adult", "vehicle.car"),
        instance=("a", "a", "p", "w", "new"), visibility=np.array([2, 1, 4, 4, 4]),
        ego2global=np.eye(4), lidar2ego=np.eye(4),
    )  # fmt: skip
    base.update(kw)
    return SampleAgents(**base)


def test_stp3_draws_first_seen_vehicles_and_humans_any_future_visibility():
    a = agents()
    # 'a' seen at step -1 (visibility 2) is drawn at step 1 although its future visibility is '1';
    # the police car, the walker and 'new' were never seen in the past or present: not drawn
    assert len(a.stp3_boxes(0)) == 1
    seen_walker = agents(step=np.array([0, 1, 1, 1, 1]), instance=("w", "a", "p", "w", "new"))
    assert len(seen_walker.stp3_boxes(0)) == 1  # the walker, registered at step 0 (the car 'a' is not)
    hidden = agents(visibility=np.array([1, 4, 4, 4, 4]))  # 'a' seen only at visibility '1': skipped
    assert len(hidden.stp3_boxes(0)) == 0


def test_uniad_draws_every_future_vehicle_but_no_emergency_or_pedestrian():
    b = agents().uniad_boxes(0)
    assert len(b) == 2  # 'a' (visibility '1' kept) and 'new'; police car and walker dropped
    assert b.step.tolist() == [0, 0]


def test_stp3_raster_is_the_ego_frame_uniad_the_sample_lidar_frame():
    yaw = np.deg2rad(0.5)  # a calibration 0.5 deg off the nominal mount
    l2e = np.eye(4)
    l2e[:3, :3] = [[np.sin(yaw), np.cos(yaw), 0], [-np.cos(yaw), np.sin(yaw), 0], [0, 0, 1]]
    l2e[:3, 3] = [0.94, 0.0, 1.84]
    a = agents(lidar2ego=l2e)
    stp3, uniad = a.stp3_boxes(0), a.uniad_boxes(0)
    assert stp3.xy[0] == pytest.approx([0.0, 10.0])  # (ego y, ego x)
    assert uniad.xy[0] == pytest.approx(np.linalg.inv(l2e)[:2, :3] @ [10.0, 0, 0] + np.linalg.inv(l2e)[:2, 3])


def test_stp3_sample_set_needs_two_past_and_six_future_frames():
    assert stp3_in_sample_set("scene-0001", 2, True)
    assert not stp3_in_sample_set("scene-0001", 1, True)
    assert not stp3_in_sample_set("scene-0001", 5, False)
    assert not stp3_in_sample_set("scene-0419", 3, True) and not stp3_in_sample_set("scene-0161", 3, True)


def test_resolve_protocols_names_and_rejects_vad():
    assert [p.name for p in resolve_protocols("odv")] == ["odv_uniad", "odv_stp3"]
    assert [p.name for p in resolve_protocols("all")] == ["stp3", "uniad", "odv_uniad", "odv_stp3"]
    with pytest.raises(ValueError, match="protocol: got 'vad'"):
        resolve_protocols("vad")


@pytest.mark.skipif(not KEYFRAME.is_file(), reason="real nuScenes keyframe not in ../shared/data")
def test_real_keyframe_mirrored_uniad_flags_equal_stp3_flags():
    kf = json.loads(KEYFRAME.read_text())
    box = np.array([b["box"] for b in kf["lidar_boxes"]])  # LiDAR frame: x, y, z, l, w, h, yaw

    def agents_of(b: np.ndarray) -> SampleAgents:
        m = len(b)
        ego_xyz = np.stack([b[:, 1], -b[:, 0], b[:, 2]], 1)  # through ROT_ONLY: ego x = LiDAR y, ego y = -x
        heading = np.stack([np.sin(b[:, 6]), -np.cos(b[:, 6]), np.zeros(m)], 1)
        return SampleAgents(np.r_[np.zeros(m, int), np.ones(m, int)], np.r_[ego_xyz, ego_xyz],
                            np.r_[heading, heading], np.r_[b[:, [4, 3, 5]], b[:, [4, 3, 5]]],
                            ("vehicle.car",) * 2 * m, tuple(f"i{k}" for k in range(m)) * 2, np.full(2 * m, 4),
                            np.eye(4), ROT_ONLY)  # fmt: skip

    mirrored = box.copy()
    mirrored[:, 0], mirrored[:, 6] = -box[:, 0], np.pi - box[:, 6]
    a, a_m = agents_of(box), agents_of(mirrored)
    grid = np.stack(np.meshgrid(np.arange(-20.0, 20.0, 0.3), np.arange(-10.0, 40.0, 0.3)), -1).reshape(-1, 1, 2)
    n = len(grid)

    def flags(layout, boxes: AgentBoxes, traj: np.ndarray) -> np.ndarray:
        tiled = AgentBoxes.concatenate(
            [
                AgentBoxes(
                    np.full(len(boxes), i),
                    *[getattr(boxes, f) for f in ("step", "xy", "length_m", "width_m", "yaw_rad", "group")],
                )
                for i in range(n)
            ]
        )
        return occupancy_collisions([traj], tiled, None, layout)[0, 0, :, 0]  # fmt: skip

    stp3 = flags(STP3_GRID, a.stp3_boxes(0), grid)
    uniad = flags(UNIAD_GRID, a.uniad_boxes(0), grid)
    assert stp3.any() and (stp3 != uniad).any()  # the layouts disagree on the real scene
    assert (flags(UNIAD_GRID, a_m.uniad_boxes(0), grid * [-1, 1]) == stp3).all()


def test_stp3_ego_yaw_is_pyquaternions_yaw_under_pitch_and_roll():
    """ST-P3's _get_top_lidar_pose takes Quaternion(rotation).yaw_pitch_roll[0]; with pitch and roll it is not
    atan2(R[1, 0], R[0, 0]) (1.8e-3 rad apart here: 5 cm at 30 m)."""
    import math

    from pyquaternion import Quaternion

    from drive_vla.eval.openloop_protocols import stp3_yaw

    q = Quaternion(axis=[0.05, 0.03, 1.0], angle=2.0)
    m = np.eye(4)
    m[:3, :3] = q.rotation_matrix
    assert stp3_yaw(m) == pytest.approx(q.yaw_pitch_roll[0], abs=1e-12)
    assert abs(stp3_yaw(m) - math.atan2(m[1, 0], m[0, 0])) > 1e-3
    flat = Quaternion(axis=[0.0, 0.0, 1.0], angle=-0.7)
    m[:3, :3] = flat.rotation_matrix
    assert stp3_yaw(m) == pytest.approx(-0.7, abs=1e-12)


def _pose(q: tuple[float, ...], t: tuple[float, ...]) -> np.ndarray:
    from pyquaternion import Quaternion

    m = np.eye(4)
    m[:3, :3], m[:3, 3] = Quaternion(q).rotation_matrix, t
    return m


def _one_box(step: int, present, step_pose, lidar, translation, size, rotation, category="vehicle.car"):
    """SampleAgents holding one annotation (nuScenes record fields) at future keyframe ``step``."""
    from pyquaternion import Quaternion

    poses = np.full((6, 4, 4), np.nan)
    poses[step - 1] = step_pose
    return SampleAgents(
        np.array([step]), np.array([translation]), np.array([Quaternion(rotation).rotate([1.0, 0.0, 0.0])]),
        np.array([size]), (category,), ("i",), np.array([4]), present, lidar, step_ego2global=poses,
    )  # fmt: skip


def _vertex_set(boxes: AgentBoxes, layout) -> set[tuple[int, int]]:
    from drive_vla.eval.occupancy import box_vertices_rc

    return set(map(tuple, box_vertices_rc(boxes, layout)[0].tolist()))


def test_uniad_cells_equal_uniad_label_code_on_recorded_cases():
    """Vertices (col, row) that UniAD's own code gives (occflow_label.py GenerateOccFlowLabels with cdc9f63's converter
    and mmdet3d 0.17.1 LiDARInstance3DBoxes, run once on these records); float64 gravity centres give others.
    1: flat poses, corners on half cells (x = -2.25 and -0.25 exactly): UniAD's float32 reframing through global
       coordinates of ~400 m gives -2.2500081 and -0.2500072, so columns 95 and 99, not 96 and 100.
    2: pitch and roll: the bottom centre in the future keyframe's LiDAR frame moves a truck 1.8 cm; row 132, not 133."""
    flat_lidar = _pose((0.7071067811865475, 0.0, 0.0, -0.7071067811865475), (0.943713, 0.0, 1.84023))
    tie = _one_box(
        2, _pose((0.5245336442967979, 0.0, 0.0, -0.8513897203987844), (126.12615588717392, -385.27365906597913, 1.6003718044868767)),
        _pose((0.6116079257612221, 0.0, 0.0, -0.7911610108859355), (122.34145306329647, -395.2200531602611, 1.6187461922480908)),
        flat_lidar, (122.63289092105317, -394.99076253751184, 2.4359432324393344), (2.0, 5.0, 1.6982225739941448),
        (0.5245336442967979, 0.0, 0.0, -0.8513897203987844),
    )  # fmt: skip
    assert _vertex_set(tie.uniad_boxes(0), UNIAD_GRID) == {(99, 124), (99, 114), (95, 114), (95, 124)}
    to_lidar = np.linalg.inv(tie.ego2global @ tie.lidar2ego)  # float64, gravity centre: the ties go up
    heading = to_lidar[:3, :3] @ tie.heading[0]
    f64 = AgentBoxes(np.zeros(1, int), np.zeros(1, int), (to_lidar[:2, :3] @ tie.xyz[0] + to_lidar[:2, 3])[None],
                     tie.wlh[:, 1], tie.wlh[:, 0], np.arctan2(heading[1:2], heading[:1]), np.ones(1, np.int8))  # fmt: skip
    assert _vertex_set(f64, STP3_GRID) == {(96, 124), (96, 114), (100, 114), (100, 124)}
    tilted = _one_box(
        2, _pose((0.998465817136393, -0.00293027236818511, -0.0023754826557755393, -0.055242941595785286),
                 (-666.594876373458, 646.1274329043958, 0.4262978823059851)),
        _pose((0.9939951435604967, 0.0040051061550550925, 0.00026661126245142684, -0.10935054924996422),
              (-652.3485923824486, 643.7069139059034, 0.44238716106926224)),
        _pose((0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817), (0.985793, 0.0, 1.84019)),
        (-646.7534345351183, 640.3478194465622, 1.3692070448980396), (2.4962777195225656, 9.777013754741214, 3.718046912864512),
        (0.5885935933878452, 0.0, 0.0, 0.8084290827418221), "vehicle.truck",
    )  # fmt: skip
    assert _vertex_set(tilted.uniad_boxes(0), UNIAD_GRID) == {(97, 137), (115, 145), (117, 140), (99, 132)}
    gravity = SampleAgents(**{**tilted.__dict__, "step_ego2global": None})  # annotated at the present pose
    assert (99, 133) in _vertex_set(gravity.uniad_boxes(0), UNIAD_GRID)


def test_uniad_box_bottom_centre_is_taken_in_the_future_keyframes_tilted_lidar_frame():
    """UniAD's LiDARInstance3DBoxes(origin=(0.5, 0.5, 0.5)) moves each box down h/2 along the z axis of the LiDAR
    frame it was converted into (its own keyframe's), and reframe_boxes rotates that point into the present. With
    the ego pitched 5 deg nose-up at that keyframe the bottom centre of a 3 m high car lies 1.5 sin(5 deg) = 0.131 m
    behind its gravity centre: the car's rear edge moves from y = 4.30 m (row 109) to 4.169 m (row 108)."""
    lidar = np.array([[0.0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # LiDAR x = -ego y, y = ego x
    pitch = np.deg2rad(5.0)
    future = np.full((6, 4, 4), np.nan)
    future[0] = np.eye(4)
    future[0, :3, :3] = [[np.cos(pitch), 0, np.sin(pitch)], [0, 1, 0], [-np.sin(pitch), 0, np.cos(pitch)]]
    car = SampleAgents(
        np.array([1]), np.array([[6.3, 0.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]), np.array([[2.0, 4.0, 3.0]]),
        ("vehicle.car",), ("c",), np.array([4]), np.eye(4), lidar, step_ego2global=future,
    )  # fmt: skip
    tilted, level = car.uniad_boxes(0), SampleAgents(**{**car.__dict__, "step_ego2global": None}).uniad_boxes(0)
    bottom = np.array([6.3, 0.0, 0.0]) - future[0, :3, :3] @ [0.0, 0.0, 1.5]  # global = present ego frame here
    assert tilted.xy[0] == pytest.approx([-bottom[1], bottom[0]], abs=1e-5)
    assert level.xy[0] == pytest.approx([0.0, 6.3], abs=1e-6)
    rows = {layout: min(r for _, r in _vertex_set(tilted, layout)) for layout in (UNIAD_GRID, ODV_GRID)}
    assert rows == {UNIAD_GRID: 108, ODV_GRID: 108} and min(r for _, r in _vertex_set(level, UNIAD_GRID)) == 109
    # a waypoint 2 m ahead: footprint rows int(97..104 + 4) = 101..108 reach row 108 only
    wp = np.array([[[0.0, 2.0]]])
    assert hit(UNIAD_GRID, tilted, wp) and not hit(UNIAD_GRID, level, wp)
    assert hit(ODV_GRID, tilted, wp) and not hit(ODV_GRID, level, wp)


def test_uniad_half_cell_tie_rounds_as_float32_arithmetic_does():
    """A corner at x = -2.25 - 2**-20 m (float32-exact): float64 (x + 50) / 0.5 = 95.5 - 2**-19 rounds to 95, but
    UniAD's float32 (x + 49.75) is 47.5 (a quarter ulp away), + 0.25, / 0.5 = 95.5 exactly, np.round -> 96 (even).
    A footprint reading columns 96..99 (waypoint x = -1 m) therefore hits the box under UniAD and ODV only."""
    from drive_vla.eval.occupancy import box_vertices_rc

    cx = -3.25 - 2.0**-20  # right edge -2.25 - 2**-20 with the 2 m width across x (UniAD yaw 0: heading -y)
    box = AgentBoxes(np.zeros(1, int), np.zeros(1, int), np.array([[cx, 0.5]]), np.array([4.0]), np.array([2.0]),
                     np.array([-np.pi / 2]), np.ones(1, np.int8))  # fmt: skip
    assert np.float32(cx) == cx and np.float32(cx + 1.0) == cx + 1.0
    assert box_vertices_rc(box, STP3_GRID)[0, :, 0].max() == 95
    assert box_vertices_rc(box, UNIAD_GRID)[0, :, 0].max() == 96 == box_vertices_rc(box, ODV_GRID)[0, :, 0].max()
    wp = np.array([[[-1.0, 0.0]]])  # UniAD reads drawn columns int(98..101 - 2) = 96..99
    assert hit(UNIAD_GRID, box, wp)
    assert hit(ODV_GRID, box, wp)  # ODV: 199 - int(98..101 + 2) = 96..99 of the drawn (unmirrored) raster
    # the same raster-frame box drawn in float64 (ST-P3) reaches column 95 only: ST-P3's x = +1 m reads 96..99
    assert not hit(STP3_GRID, box, -wp)


def test_uniad_float32_yaw_survives_the_agentboxes_round_trip():
    from drive_vla.eval.occupancy import uniad_yaw_to_heading

    theta = np.random.default_rng(0).uniform(-7.0, 7.0, 10000).astype(np.float32)
    assert np.array_equal((-uniad_yaw_to_heading(theta) - np.pi / 2).astype(np.float32), theta)


def test_uniad_step_poses_must_cover_the_steps_with_boxes():
    a = agents(step_ego2global=np.full((6, 4, 4), np.nan))
    with pytest.raises(ValueError, match=r"step_ego2global: got NaN poses for steps \[1\]"):
        a.uniad_boxes(0)
    with pytest.raises(ValueError, match="step_ego2global: got shape"):
        agents(step_ego2global=np.zeros((5, 4, 4))).uniad_boxes(0)
    flat = np.tile(np.eye(4), (6, 1, 1))
    flat[2:] = np.nan  # steps 3..6 past the scene: no boxes there
    assert np.array_equal(agents(step_ego2global=flat).uniad_boxes(0).xy, agents().uniad_boxes(0).xy)


def test_runner_passes_each_future_keyframes_pose_with_nan_past_the_scene():
    from drive_vla.eval.openloop import sample_agents

    class Reader:  # three keyframes: the sample (index 0) and two future ones
        def annotations(self, i, step=0):
            if not 0 <= i + step < 3:
                return None
            return {"xyz": np.array([[5.0 + step, 0.0, 0.0]]), "heading": np.array([[1.0, 0.0, 0.0]]),
                    "wlh": np.array([[1.8, 4.5, 1.5]]), "category": ("vehicle.car",), "instance": ("c",),
                    "visibility": np.array([4])}  # fmt: skip

        def ego_pose(self, i):
            m = np.eye(4)
            m[0, 3] = 2.0 * i
            return m

        def lidar2ego(self, i):
            return np.eye(4)

    a = sample_agents(Reader(), 0, None)
    assert a.future_ego2global is None  # not all six future keyframes: ST-P3 is not warped
    assert a.step_ego2global[:2, 0, 3].tolist() == [2.0, 4.0] and np.isnan(a.step_ego2global[2:]).all()
    assert a.uniad_boxes(0).xy[:, 0].tolist() == pytest.approx([6.0, 7.0])  # identity mount: LiDAR = ego frame

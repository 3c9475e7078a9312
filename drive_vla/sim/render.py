"""Six-camera pinhole renderer of the embedded world: sky and ground, road surface, lane markings, vehicles.

Pure numpy + OpenCV. Static geometry (lane polygons and markings) is built once per road network in the
global frame; per frame it is culled by distance, transformed to each camera with one matrix product,
clipped against the near plane (z > near) in camera space before projection (Sutherland-Hodgman, so a
polygon crossing the camera plane is cut, not dropped or flipped), and filled with ``cv2.fillConvexPoly``.
Vehicles are shaded boxes (back faces culled) drawn far to near (painter's algorithm) after the road.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from highway_env.road.lane import LineType, StraightLane

from drive_vla.geometry import box_corners, invert_transform, pose_to_transform, rig_calibration, sim_to_global
from drive_vla.sim.config import CameraConfig
from drive_vla.sim.world import Agent
from drive_vla.types import CAMERA_NAMES

ROAD_RGB = (88, 90, 96)
MARKING_RGB = (232, 232, 225)
SKY_TOP_RGB, SKY_HORIZON_RGB = np.array([96, 150, 210]), np.array([196, 214, 232])
GROUND_FAR_RGB, GROUND_NEAR_RGB = np.array([128, 140, 112]), np.array([88, 112, 70])
LIGHT_DIR = np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])
SUBPIXEL_BITS = 4  # cv2 fixed-point vertices: 1/16 pixel
_COORD_LIMIT = 2.0**26 / 2**SUBPIXEL_BITS  # keeps the fixed-point coordinates inside int32

# Box faces as corner indices of geometry.box_corners (bottom FL, RL, RR, FR, then the top four),
# with the outward normal in the box frame. The bottom face is never seen from a camera above ground.
_FACES = np.array([[4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])
_FACE_NORMALS = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [1, 0, 0]], dtype=np.float64)


@dataclass(frozen=True)
class StaticScene:
    """Road geometry of one network in the global frame, drawn in order (surfaces, then markings).

    Attributes:
        quads: (M, 4, 3) polygon corners, metres (z = 0).
        colors: (M, 3) uint8 RGB.
        centers: (M, 2) xy centres, for distance culling.
        radii: (M,) distance from the centre to the farthest corner.
    """

    quads: np.ndarray
    colors: np.ndarray
    centers: np.ndarray
    radii: np.ndarray


def _lane_strip(lane, lat0: float, lat1: float, s: np.ndarray) -> np.ndarray:
    """(len(s)-1, 4, 3) quads between lateral offsets lat0 and lat1 along samples s (global frame)."""
    # highway-env's plane is y-down; geometry.sim_to_global gives the right-handed global frame.
    a = np.array([sim_to_global(*lane.position(float(si), lat0), 0.0)[:2] for si in s])
    b = np.array([sim_to_global(*lane.position(float(si), lat1), 0.0)[:2] for si in s])
    quads = np.stack([a[:-1], a[1:], b[1:], b[:-1]], axis=1)
    return np.concatenate([quads, np.zeros(quads.shape[:2] + (1,))], axis=2)


def build_static_scene(network, cfg: CameraConfig) -> StaticScene:
    """Lane surfaces and markings (highway-env line types) of a road network."""
    surfaces, markings = [], []
    for lane in network.lanes_list():
        step = cfg.straight_sample_m if isinstance(lane, StraightLane) else cfg.lane_sample_m
        n = max(2, int(np.ceil(lane.length / step)) + 1)
        s = np.linspace(0.0, lane.length, n)
        w = lane.width_at(0.0)
        surfaces.append(_lane_strip(lane, -w / 2, w / 2, s))
        for side in (0, 1):
            kind = lane.line_types[side] if lane.line_types else LineType.NONE
            lat = (side - 0.5) * w
            half = cfg.marking_width_m / 2
            if kind == LineType.STRIPED:
                starts = np.arange(0.0, lane.length - 0.5, cfg.dash_period_m)
                for s0 in starts:
                    s1 = min(s0 + cfg.dash_length_m, lane.length)
                    markings.append(_lane_strip(lane, lat - half, lat + half, np.array([s0, s1])))
            elif kind in (LineType.CONTINUOUS, LineType.CONTINUOUS_LINE):
                markings.append(_lane_strip(lane, lat - half, lat + half, s))
    quads = np.concatenate(surfaces + markings)
    n_surf = sum(len(q) for q in surfaces)
    colors = np.empty((len(quads), 3), dtype=np.uint8)
    colors[:n_surf] = ROAD_RGB
    colors[n_surf:] = MARKING_RGB
    centers = quads[:, :, :2].mean(axis=1)
    radii = np.linalg.norm(quads[:, :, :2] - centers[:, None], axis=2).max(axis=1)
    return StaticScene(quads, colors, centers, radii)


_SCENES: dict[tuple, tuple[object, StaticScene]] = {}


def static_scene_for(network, cfg: CameraConfig) -> StaticScene:
    """The (cached) static scene of a network; networks are static, so it is built once per process."""
    key = (
        id(network),
        cfg.lane_sample_m,
        cfg.straight_sample_m,
        cfg.marking_width_m,
        cfg.dash_length_m,
        cfg.dash_period_m,
    )
    hit = _SCENES.get(key)
    if hit is None or hit[0] is not network:
        hit = _SCENES[key] = (network, build_static_scene(network, cfg))
    return hit[1]


def clip_polygon_near(poly: np.ndarray, near: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a (N, 3) camera-frame polygon to z >= near; returns (K, 3), K may be 0."""
    out = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        p_in, q_in = p[2] >= near, q[2] >= near
        if p_in:
            out.append(p)
        if p_in != q_in:
            t = (near - p[2]) / (q[2] - p[2])
            out.append(p + t * (q - p))
    return np.array(out) if out else np.zeros((0, 3))


def _project(poly_cam: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(..., 3) camera points (z > 0) -> (..., 2) pixels."""
    z = poly_cam[..., 2:3]
    uv = poly_cam[..., :2] / z * np.array([k[0, 0], k[1, 1]]) + np.array([k[0, 2], k[1, 2]])
    return np.clip(uv, -_COORD_LIMIT, _COORD_LIMIT)


def _fixed(uv: np.ndarray) -> np.ndarray:
    return np.round(uv * (1 << SUBPIXEL_BITS)).astype(np.int32)


def project_polygons(
    polys_cam: np.ndarray, k: np.ndarray, near: float, wh: tuple[int, int]
) -> list[tuple[int, np.ndarray]]:
    """Clip (M, 4, 3) camera-frame polygons at the near plane, project, cull outside the image.

    Returns (index into polys_cam, (K, 2) int32 fixed-point pixels) for each polygon left, in input order.
    """
    w, h = wh
    z = polys_cam[..., 2]
    front = (z > near).all(axis=1)
    straddle = (z > near).any(axis=1) & ~front
    out: dict[int, np.ndarray] = {}
    idx = np.flatnonzero(front)
    if len(idx):
        uv = _project(polys_cam[idx], k)
        lo, hi = uv.min(axis=1), uv.max(axis=1)
        keep = (hi[:, 0] >= 0) & (lo[:, 0] < w) & (hi[:, 1] >= 0) & (lo[:, 1] < h)
        fixed = _fixed(uv[keep])
        for i, f in zip(idx[keep], fixed):
            out[int(i)] = f
    for i in np.flatnonzero(straddle):
        clipped = clip_polygon_near(polys_cam[i], near)
        if len(clipped) < 3:
            continue
        uv = _project(clipped, k)
        if uv[:, 0].max() < 0 or uv[:, 0].min() >= w or uv[:, 1].max() < 0 or uv[:, 1].min() >= h:
            continue
        out[int(i)] = _fixed(uv)
    return sorted(out.items())


class CameraRenderer:
    """Renders the six nuScenes cameras (``geometry.NUSCENES_RIG``) of the embedded world."""

    def __init__(self, cfg: CameraConfig | None = None):
        self.cfg = cfg or CameraConfig()
        self._backgrounds: dict[tuple[int, int, float], np.ndarray] = {}
        self._calib: dict[tuple[int, int], tuple[dict, dict]] = {}

    def _calibration(self, w: int, h: int):
        if (w, h) not in self._calib:
            intr, extr = rig_calibration(w, h)
            self._calib[(w, h)] = (
                {c: k.astype(np.float64) for c, k in intr.items()},
                {c: e.astype(np.float64) for c, e in extr.items()},
            )
        return self._calib[(w, h)]

    def _background(self, w: int, h: int, horizon: float) -> np.ndarray:
        key = (w, h, round(horizon, 3))
        if key not in self._backgrounds:
            rows = np.arange(h, dtype=np.float64)[:, None]
            t_sky = np.clip(rows / max(horizon, 1.0), 0, 1)
            sky = SKY_TOP_RGB * (1 - t_sky) + SKY_HORIZON_RGB * t_sky
            t_gr = np.clip((rows - horizon) / max(h - horizon, 1.0), 0, 1)
            ground = GROUND_FAR_RGB * (1 - t_gr) + GROUND_NEAR_RGB * t_gr
            col = np.where(rows < horizon, sky, ground).astype(np.uint8)  # (h, 3)
            self._backgrounds[key] = np.ascontiguousarray(np.broadcast_to(col[:, None, :], (h, w, 3)))
        return self._backgrounds[key]

    def render(
        self,
        scene: StaticScene,
        ego_pose: tuple[float, float, float],
        agents: list[Agent],
        width: int,
        height: int,
        cameras=CAMERA_NAMES,
        instance_masks: bool = False,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """Render ``cameras`` at width x height for the ego at ``ego_pose`` (global x, y, yaw).

        Returns:
            images: {camera: (H, W, 3) uint8 RGB}.
            masks: {camera: (H, W) int32}, 0 where no agent, i + 1 where agents[i] is visible; only when
                ``instance_masks`` (used by tests and for checking annotations), else None.
        """
        cfg = self.cfg
        intr, extr = self._calibration(width, height)
        ego2global = pose_to_transform(*ego_pose)
        ego_xy = np.array(ego_pose[:2])
        near_static = np.linalg.norm(scene.centers - ego_xy, axis=1) < cfg.far_m + scene.radii
        quads, colors = scene.quads[near_static], scene.colors[near_static].tolist()
        boxes = _BoxFaces.of(agents, ego_xy, cfg.far_m)
        images, masks = {}, ({} if instance_masks else None)
        for cam in cameras:
            cam2global = ego2global @ extr[cam]
            g2c = invert_transform(cam2global)
            rot, trans = g2c[:3, :3], g2c[:3, 3]
            k = intr[cam]
            img = self._background(width, height, float(k[1, 2])).copy()
            for i, poly in project_polygons(quads @ rot.T + trans, k, cfg.near_m, (width, height)):
                cv2.fillConvexPoly(img, poly, colors[i], shift=SUBPIXEL_BITS)
            mask = np.zeros((height, width), dtype=np.int32) if instance_masks else None
            if len(boxes.quads):
                self._draw_boxes(img, mask, boxes, cam2global[:3, 3], rot, trans, k, (width, height))
            images[cam] = img
            if masks is not None:
                masks[cam] = mask
        return images, masks

    def _draw_boxes(self, img, mask, boxes: _BoxFaces, cam_pos, rot, trans, k, wh) -> None:
        facing = np.einsum("fi,fi->f", boxes.normals, cam_pos[None] - boxes.quads.mean(axis=1)) > 1e-6
        sel = np.flatnonzero(facing)  # back faces culled
        faces = dict(project_polygons(boxes.quads[sel] @ rot.T + trans, k, self.cfg.near_m, wh))
        # Painter's algorithm: boxes far to near from this camera; a box's own visible faces never overlap
        # (convex, back faces culled), so their order does not matter.
        box_dist = np.linalg.norm(boxes.centres - cam_pos[None], axis=1)
        for j in sorted(faces, key=lambda j: -box_dist[boxes.owner[sel[j]]]):
            f = sel[j]
            cv2.fillConvexPoly(img, faces[j], boxes.colors[f], shift=SUBPIXEL_BITS)
            if mask is not None:
                cv2.fillConvexPoly(mask, faces[j], int(boxes.owner[f]) + 1, shift=SUBPIXEL_BITS)


@dataclass(frozen=True)
class _BoxFaces:
    """The five drawable faces (top and sides; a camera above ground never sees the bottom) of every agent
    box in range, flattened to F faces: quads (F, 4, 3), normals (F, 3), shaded RGB colors, owner (F,)
    agent index, and the centres (N, 3) of all agents."""

    quads: np.ndarray
    normals: np.ndarray
    colors: list
    owner: np.ndarray
    centres: np.ndarray

    @classmethod
    def of(cls, agents: list[Agent], ego_xy: np.ndarray, far_m: float) -> _BoxFaces:
        if not agents:
            return cls(np.zeros((0, 4, 3)), np.zeros((0, 3)), [], np.zeros(0, dtype=np.int64), np.zeros((0, 3)))
        xyz = np.array([a.xyz for a in agents])
        lwh = np.array([a.lwh for a in agents])
        yaw = np.array([a.yaw_rad for a in agents])
        keep = np.flatnonzero(np.linalg.norm(xyz[:, :2] - ego_xy, axis=1) < far_m + lwh[:, 0])
        faces = box_corners(xyz, lwh, yaw)[:, _FACES]  # (N, 5, 4, 3)
        c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        fn = _FACE_NORMALS
        normals = np.stack(
            [
                c * fn[None, :, 0] - s * fn[None, :, 1],
                s * fn[None, :, 0] + c * fn[None, :, 1],
                np.broadcast_to(fn[None, :, 2], (len(agents), 5)),
            ],
            axis=-1,
        )  # (N, 5, 3)
        shade = 0.42 + 0.58 * np.clip(normals @ LIGHT_DIR, 0.0, 1.0)  # (N, 5): Lambert plus ambient
        base = np.array([a.color_rgb for a in agents], dtype=np.float64)
        colors = np.clip(base[:, None, :] * shade[..., None], 0, 255).round().astype(int)  # (N, 5, 3)
        return cls(
            faces[keep].reshape(-1, 4, 3),
            normals[keep].reshape(-1, 3),
            [tuple(col) for col in colors[keep].reshape(-1, 3).tolist()],
            np.repeat(keep, 5),
            xyz,
        )

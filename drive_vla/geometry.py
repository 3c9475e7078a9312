"""Frames and conversions, in one place: rigid transforms, the nuScenes camera rig, projection.

Frames:
    ego      canonical, nuScenes ego frame: x forward, y left, z up (right-handed), metres, yaw CCW rad.
    lidar    nuScenes LIDAR_TOP frame, used by the planning metrics: x right, y forward, z up.
    global   nuScenes/map frame, right-handed, metres.
    carla    CARLA world: x forward, y right, z up (left-handed), yaw in degrees, clockwise seen from above.
    sim      the embedded world (highway-env): a 2D plane with y pointing "down" (left-handed like CARLA),
             heading in radians; converted to a right-handed global frame by flipping y and heading.
    camera   OpenCV: x right, y down, z forward (optical axis).
Quaternions are (w, x, y, z), as nuScenes stores them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drive_vla.types import CAMERA_NAMES

# ----------------------------------------------------------------------------- rotations and transforms


def quat_to_matrix(q: Sequence[float]) -> np.ndarray:
    """(w, x, y, z) unit quaternion -> (3, 3) rotation matrix."""
    w, x, y, z = (float(v) for v in q)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    if not math.isfinite(n) or n < 1e-9:
        raise ValueError(f"quaternion: got {tuple(q)!r}, expected a finite non-zero (w, x, y, z)")
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (w, x, y, z) with w >= 0."""
    r = np.asarray(r, dtype=np.float64)
    tr = np.trace(r)
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    return q if q[0] >= 0 else -q


def yaw_to_quat(yaw_rad: float) -> np.ndarray:
    """Rotation about +z by ``yaw_rad`` as (w, x, y, z)."""
    return np.array([math.cos(yaw_rad / 2), 0.0, 0.0, math.sin(yaw_rad / 2)])


def quat_to_yaw(q: Sequence[float]) -> float:
    """Heading (rotation of the x axis about +z) of a (w, x, y, z) quaternion, radians in (-pi, pi]."""
    r = quat_to_matrix(q)
    return math.atan2(r[1, 0], r[0, 0])


def rot_z(yaw_rad: float) -> np.ndarray:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def make_transform(rotation: np.ndarray | Sequence[float], translation: Sequence[float]) -> np.ndarray:
    """4x4 homogeneous transform from a (3, 3) matrix or (w, x, y, z) quaternion and a translation."""
    rot = np.asarray(rotation, dtype=np.float64)
    if rot.shape == (4,):
        rot = quat_to_matrix(rot)
    if rot.shape != (3, 3):
        raise ValueError(f"rotation: got shape {rot.shape}, expected (3, 3) or a (4,) quaternion")
    t = np.asarray(translation, dtype=np.float64)
    if t.shape != (3,):
        raise ValueError(f"translation: got shape {t.shape}, expected (3,)")
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = t
    return out


def pose_to_transform(x: float, y: float, yaw_rad: float, z: float = 0.0) -> np.ndarray:
    """4x4 transform of a planar pose (x, y, yaw) at height z."""
    return make_transform(rot_z(yaw_rad), (x, y, z))


def invert_transform(t: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (R^T, -R^T t)."""
    t = np.asarray(t, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = t[:3, :3].T
    out[:3, 3] = -t[:3, :3].T @ t[:3, 3]
    return out


def compose(*transforms: np.ndarray) -> np.ndarray:
    """compose(A, B, C) = A @ B @ C: apply C first."""
    out = np.eye(4)
    for t in transforms:
        out = out @ np.asarray(t, dtype=np.float64)
    return out


def transform_points(t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (N, 3) points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ t[:3, :3].T + t[:3, 3]


def wrap_angle(a: np.ndarray | float) -> np.ndarray | float:
    """Wrap radians to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


# ----------------------------------------------------------------------------- planar poses


def global_poses_to_local(poses_xyyaw: np.ndarray, ref_xyyaw: Sequence[float]) -> np.ndarray:
    """Express (N, 3) planar poses [x, y, yaw] of a right-handed global frame in the frame of ``ref``."""
    p = np.asarray(poses_xyyaw, dtype=np.float64).reshape(-1, 3)
    x0, y0, yaw0 = (float(v) for v in ref_xyyaw)
    c, s = math.cos(yaw0), math.sin(yaw0)
    dx, dy = p[:, 0] - x0, p[:, 1] - y0
    return np.stack([c * dx + s * dy, -s * dx + c * dy, wrap_angle(p[:, 2] - yaw0)], axis=1)


def global_points_to_local(points_xy: np.ndarray, ref_xyyaw: Sequence[float]) -> np.ndarray:
    """Express (N, 2) planar points of a right-handed global frame in the frame of ``ref`` -> (N, 2)."""
    p = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
    return global_poses_to_local(np.concatenate([p, np.zeros((len(p), 1))], axis=1), ref_xyyaw)[:, :2]


def local_poses_to_global(poses_xyyaw: np.ndarray, ref_xyyaw: Sequence[float]) -> np.ndarray:
    """Inverse of global_poses_to_local."""
    p = np.asarray(poses_xyyaw, dtype=np.float64).reshape(-1, 3)
    x0, y0, yaw0 = (float(v) for v in ref_xyyaw)
    c, s = math.cos(yaw0), math.sin(yaw0)
    return np.stack(
        [x0 + c * p[:, 0] - s * p[:, 1], y0 + s * p[:, 0] + c * p[:, 1], wrap_angle(p[:, 2] + yaw0)], axis=1
    )


def transform_to_pose(t: np.ndarray) -> np.ndarray:
    """Planar pose [x, y, yaw] of a 4x4 transform."""
    return np.array([t[0, 3], t[1, 3], math.atan2(t[1, 0], t[0, 0])])


# ----------------------------------------------------------------------------- ego <-> nuScenes LiDAR frame

# Nominal LIDAR_TOP mount in the nuScenes ego frame: ~(0.94, 0, 1.84) m, rotated -90 deg about z so that
# the LiDAR frame is x right, y forward. Real datasets carry their own calibration; this is the default.
NUSCENES_LIDAR2EGO = make_transform(rot_z(-math.pi / 2), (0.943713, 0.0, 1.84023))


def ego_xy_to_lidar_xy(xy: np.ndarray) -> np.ndarray:
    """Rotate (..., 2) ego-frame offsets (x forward, y left) to LiDAR axes (x right, y forward).

    Direction-only conversion (no translation): use for displacements and for trajectories of the LiDAR
    origin already expressed relative to it. For planning ground truth use ego_poses_to_lidar_xy.
    """
    xy = np.asarray(xy)
    return np.stack([-xy[..., 1], xy[..., 0]], axis=-1)


def lidar_xy_to_ego_xy(xy: np.ndarray) -> np.ndarray:
    """Inverse of ego_xy_to_lidar_xy."""
    xy = np.asarray(xy)
    return np.stack([xy[..., 1], -xy[..., 0]], axis=-1)


def ego_poses_to_lidar_xy(poses_xyyaw: np.ndarray, lidar2ego: np.ndarray = NUSCENES_LIDAR2EGO) -> np.ndarray:
    """Future ego poses (T, 3) in the current ego frame -> (T, 2) LiDAR positions in the current LiDAR frame.

    This is the planning-metric convention (ST-P3, UniAD, VAD): the trajectory of the LiDAR origin
    expressed in the current LiDAR frame (x right, y forward).
    """
    p = np.asarray(poses_xyyaw, dtype=np.float64).reshape(-1, 3)
    ego2lidar = invert_transform(lidar2ego)
    out = np.empty((p.shape[0], 2))
    for i, (x, y, yaw) in enumerate(p):
        t = compose(ego2lidar, pose_to_transform(x, y, yaw), lidar2ego)
        out[i] = t[:2, 3]
    return out


def ego_boxes_to_lidar(
    xyz: np.ndarray, yaw_rad: np.ndarray, lidar2ego: np.ndarray = NUSCENES_LIDAR2EGO
) -> tuple[np.ndarray, np.ndarray]:
    """Box centres (N, 3) and headings (N,) from the ego frame to the LiDAR frame."""
    ego2lidar = invert_transform(lidar2ego)
    lidar_yaw = math.atan2(ego2lidar[1, 0], ego2lidar[0, 0])
    return transform_points(ego2lidar, xyz), wrap_angle(np.asarray(yaw_rad) + lidar_yaw)


# ----------------------------------------------------------------------------- left-handed frames (CARLA, sim)


def carla_to_ego_frame(x: float, y: float, z: float, yaw_deg: float) -> tuple[float, float, float, float]:
    """CARLA (left-handed, y right, yaw degrees clockwise) -> right-handed (y left, yaw radians CCW)."""
    return float(x), -float(y), float(z), -math.radians(float(yaw_deg))


def ego_frame_to_carla(x: float, y: float, z: float, yaw_rad: float) -> tuple[float, float, float, float]:
    """Inverse of carla_to_ego_frame."""
    return float(x), -float(y), float(z), -math.degrees(float(yaw_rad))


def carla_steer_from_canonical(steer: float) -> float:
    """Canonical steer (positive turns left) -> CARLA steer (positive turns right)."""
    return -float(steer)


def canonical_steer_from_carla(steer: float) -> float:
    return -float(steer)


def sim_to_global(x: float, y: float, heading_rad: float) -> tuple[float, float, float]:
    """Embedded world (highway-env, y down) -> right-handed global frame (y up/left), yaw CCW."""
    return float(x), -float(y), float(wrap_angle(-float(heading_rad)))


def global_to_sim(x: float, y: float, yaw_rad: float) -> tuple[float, float, float]:
    """Inverse of sim_to_global."""
    return float(x), -float(y), float(wrap_angle(-float(yaw_rad)))


def sim_steering_from_canonical(angle_rad: float) -> float:
    """Canonical steering angle (positive turns left) -> highway-env's (its y-down plane turns right for positive)."""
    return -float(angle_rad)


def canonical_steering_from_sim(angle_rad: float) -> float:
    """Inverse of sim_steering_from_canonical."""
    return -float(angle_rad)


# ----------------------------------------------------------------------------- camera rig

NUSCENES_IMAGE_WH = (1600, 900)


@dataclass(frozen=True)
class CameraMount:
    """One camera of the rig at full nuScenes resolution (1600x900).

    Attributes:
        name: nuScenes channel name.
        xyz_m: position in the ego frame.
        yaw_deg: optical axis heading in the ego frame, CCW from x forward.
        pitch_deg: optical axis pitch, positive looks down.
        focal_px: focal length at 1600x900.
    """

    name: str
    xyz_m: tuple[float, float, float]
    yaw_deg: float
    pitch_deg: float
    focal_px: float

    def intrinsics(self, width: int = 1600, height: int = 900) -> np.ndarray:
        """(3, 3) pinhole matrix scaled to width x height (principal point at the image centre)."""
        cx, cy = (NUSCENES_IMAGE_WH[0] - 1) / 2, (NUSCENES_IMAGE_WH[1] - 1) / 2
        return scale_intrinsics(np.array([[self.focal_px, 0, cx], [0, self.focal_px, cy], [0, 0, 1]]), width, height)

    def cam2ego(self) -> np.ndarray:
        """(4, 4) transform from OpenCV camera axes to the ego frame."""
        return make_transform(camera_rotation(math.radians(self.yaw_deg), math.radians(self.pitch_deg)), self.xyz_m)


def camera_rotation(yaw_rad: float, pitch_rad: float = 0.0) -> np.ndarray:
    """Rotation from OpenCV camera axes (x right, y down, z forward) to the ego frame.

    The optical axis points at heading ``yaw_rad`` (CCW) and ``pitch_rad`` below the horizon.
    """
    cy, sy, cp, sp = math.cos(yaw_rad), math.sin(yaw_rad), math.cos(pitch_rad), math.sin(pitch_rad)
    forward = np.array([cy * cp, sy * cp, -sp])
    right = np.array([sy, -cy, 0.0])
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def scale_intrinsics(k: np.ndarray, width: int, height: int, src_wh: tuple[int, int] = NUSCENES_IMAGE_WH) -> np.ndarray:
    """Scale a pinhole matrix from an image of ``src_wh`` to ``width x height`` (pixel-centre convention)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size: got {width}x{height}, expected positive width and height")
    sx, sy = width / src_wh[0], height / src_wh[1]
    out = np.array(k, dtype=np.float64).copy()
    out[0, 0] *= sx
    out[0, 2] = (out[0, 2] + 0.5) * sx - 0.5
    out[1, 1] *= sy
    out[1, 2] = (out[1, 2] + 0.5) * sy - 0.5
    return out


# Nominal nuScenes mounts (rounded from the real calibration of the n015 car): front cameras ~65 deg
# horizontal FOV, the back camera ~90 deg.
NUSCENES_RIG: tuple[CameraMount, ...] = (
    CameraMount("CAM_FRONT", (1.70, 0.02, 1.51), 0.0, 0.0, 1266.0),
    CameraMount("CAM_FRONT_RIGHT", (1.55, -0.49, 1.50), -55.0, 0.0, 1260.0),
    CameraMount("CAM_FRONT_LEFT", (1.52, 0.49, 1.51), 55.0, 0.0, 1260.0),
    CameraMount("CAM_BACK", (0.03, 0.00, 1.58), 180.0, 0.0, 809.0),
    CameraMount("CAM_BACK_LEFT", (1.04, 0.49, 1.59), 110.0, 0.0, 1257.0),
    CameraMount("CAM_BACK_RIGHT", (1.02, -0.48, 1.56), -110.0, 0.0, 1260.0),
)
assert tuple(m.name for m in NUSCENES_RIG) == CAMERA_NAMES


def rig_calibration(width: int, height: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Intrinsics and cam2ego extrinsics of the nominal rig at a render resolution (float32)."""
    intr = {m.name: m.intrinsics(width, height).astype(np.float32) for m in NUSCENES_RIG}
    extr = {m.name: m.cam2ego().astype(np.float32) for m in NUSCENES_RIG}
    return intr, extr


# ----------------------------------------------------------------------------- projection


def project_points(
    points: np.ndarray, cam2frame: np.ndarray, intrinsics: np.ndarray, near_m: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project (N, 3) points of some frame into a camera whose pose in that frame is ``cam2frame``.

    Returns:
        uv: (N, 2) pixel coordinates (undefined where not valid).
        depth: (N,) depth along the optical axis, metres.
        valid: (N,) bool, depth > near_m.
    """
    pts_cam = transform_points(invert_transform(cam2frame), np.asarray(points, dtype=np.float64).reshape(-1, 3))
    depth = pts_cam[:, 2]
    valid = depth > near_m
    safe = np.where(valid, depth, 1.0)
    uvw = pts_cam @ np.asarray(intrinsics, dtype=np.float64).T
    uv = uvw[:, :2] / safe[:, None]
    return uv, depth, valid


def box_corners(xyz: np.ndarray, lwh: np.ndarray, yaw_rad: np.ndarray) -> np.ndarray:
    """(N, 8, 3) corners of boxes centred at xyz; bottom four first (counter-clockwise from front-left)."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    lwh = np.asarray(lwh, dtype=np.float64).reshape(-1, 3)
    yaw = np.asarray(yaw_rad, dtype=np.float64).reshape(-1)
    sx = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * 0.5
    sy = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5
    sz = np.array([-1, -1, -1, -1, 1, 1, 1, 1]) * 0.5
    local = np.stack([sx[None] * lwh[:, :1], sy[None] * lwh[:, 1:2], sz[None] * lwh[:, 2:3]], axis=-1)
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + xyz[:, None, :]


def box_footprint(xy: np.ndarray, length: float, width: float, yaw_rad: float) -> np.ndarray:
    """(4, 2) corners of a planar rectangle (front-left, rear-left, rear-right, front-right)."""
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    hl, hw = length / 2, width / 2
    local = np.array([[hl, hw], [-hl, hw], [-hl, -hw], [hl, -hw]])
    return local @ np.array([[c, s], [-s, c]]) + np.asarray(xy, dtype=np.float64)[None]


def project_boxes(
    xyz: np.ndarray,
    lwh: np.ndarray,
    yaw_rad: np.ndarray,
    cam2frame: np.ndarray,
    intrinsics: np.ndarray,
    image_wh: tuple[int, int],
    near_m: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Project boxes into a camera; cull boxes entirely behind it or outside the image.

    Returns:
        corners_uv: (N, 8, 2) pixel coordinates of the corners.
        visible: (N,) bool, at least one corner in front of the camera and the 2D box overlapping the image.
    """
    corners = box_corners(xyz, lwh, yaw_rad)
    n = corners.shape[0]
    uv, _, valid = project_points(corners.reshape(-1, 3), cam2frame, intrinsics, near_m)
    uv, valid = uv.reshape(n, 8, 2), valid.reshape(n, 8)
    w, h = image_wh
    visible = np.zeros(n, dtype=bool)
    for i in range(n):
        if valid[i].any():
            p = uv[i][valid[i]]
            visible[i] = p[:, 0].max() >= 0 and p[:, 0].min() < w and p[:, 1].max() >= 0 and p[:, 1].min() < h
    return uv, visible

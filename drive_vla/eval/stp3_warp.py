"""ST-P3's raster warp: how its trainer brings each future frame's label raster into the present frame.

ST-P3 draws the boxes of every future keyframe in that keyframe's own ego frame, then resamples those rasters
into the present frame before its metric reads them. This module gives the (2, 3) normalised affine of each
future step, for ``occupancy.warp_raster``, from the ego poses of the present and future keyframes:

- the motion from keyframe t to t+1 is inv(pose_{t+1}) @ pose_t in float32 with its last row reset
  (stp3/datas/NuscenesData.py ``get_future_egomotion``), stored as a 6-dof vector (``mat2pose_vec``);
- step k is warped by inv(M_0) @ inv(M_1) @ ... @ inv(M_{k-1}), each M rebuilt from its vector
  (stp3/utils/geometry.py ``cumulative_warp_features_reverse``, ``pose_vec2mat``, ``euler2mat``);
- only the z rotation and the x-y translation of that product enter the affine, the translation divided by
  the grid's half extent (50 m) and its forward part negated (``warp_features``).

The arithmetic is float32 torch, as in ST-P3, so that nearest-neighbour resampling picks the same cells.
"""

from __future__ import annotations

import numpy as np

STP3_HALF_EXTENT_M = (50.0, 50.0)  # stp3/trainer.py spatial_extent: half of the 100 m grid, x then y


def _pose_matrix_f32(ego2global: np.ndarray):
    """A (4, 4) pose as ST-P3's ``convert_egopose_to_matrix_numpy`` holds it: float32 rotation and translation."""
    m = np.zeros((4, 4), dtype=np.float32)
    m[:3, :3] = ego2global[:3, :3]
    m[:3, 3] = ego2global[:3, 3]
    m[3, 3] = 1.0
    return m


def _invert_rigid_f32(m: np.ndarray) -> np.ndarray:
    out = np.zeros((4, 4), dtype=np.float32)
    rot_t = m[:3, :3].T
    out[:3, :3] = rot_t
    out[:3, 3] = -np.dot(rot_t, m[:3, 3])
    out[3, 3] = 1.0
    return out


def _to_vec(m):
    """6-dof [tx, ty, tz, rx, ry, rz] of a (..., 4, 4) torch matrix (rotation = Rx @ Ry @ Rz)."""
    import torch

    rx = torch.atan2(-m[..., 1, 2], m[..., 2, 2])
    ry = torch.atan2(m[..., 0, 2], torch.sqrt(m[..., 1, 2] ** 2 + m[..., 2, 2] ** 2))
    rz = torch.atan2(-m[..., 0, 1], m[..., 0, 0])
    return torch.cat((m[..., :3, 3], torch.stack((rx, ry, rz), dim=-1)), dim=-1)


def _to_matrix(vec):
    """(4, 4) torch matrix of a 6-dof vector: translation and Rx(rx) @ Ry(ry) @ Rz(rz)."""
    import torch

    x, y, z = vec[3], vec[4], vec[5]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rz = torch.stack([torch.cos(z), -torch.sin(z), zero, torch.sin(z), torch.cos(z), zero, zero, zero, one]).view(3, 3)
    ry = torch.stack([torch.cos(y), zero, torch.sin(y), zero, one, zero, -torch.sin(y), zero, torch.cos(y)]).view(3, 3)
    rx = torch.stack([one, zero, zero, zero, torch.cos(x), -torch.sin(x), zero, torch.sin(x), torch.cos(x)]).view(3, 3)
    out = torch.zeros(4, 4, dtype=vec.dtype)
    out[:3, :3] = rx @ ry @ rz
    out[:3, 3] = vec[:3]
    out[3, 3] = 1.0
    return out


def _invert_rigid(m):
    import torch

    out = torch.zeros(4, 4, dtype=m.dtype)
    rot_t = m[:3, :3].T
    out[:3, :3] = rot_t
    out[:3, 3:] = -(rot_t @ m[:3, 3:])
    out[3, 3] = 1.0
    return out


def stp3_warps(present_ego2global: np.ndarray, future_ego2global: np.ndarray) -> np.ndarray:
    """(K, 2, 3) float32 affines that take the raster of each of K future keyframes into the present frame.

    Args:
        present_ego2global: (4, 4) ego pose of the present keyframe (its LIDAR_TOP capture).
        future_ego2global: (K, 4, 4) ego poses of the next K keyframes of the same scene.
    """
    import torch

    poses = [_pose_matrix_f32(np.asarray(present_ego2global))]
    poses += [_pose_matrix_f32(np.asarray(p)) for p in future_ego2global]
    motions = []
    for t in range(len(poses) - 1):
        m = _invert_rigid_f32(poses[t + 1]).dot(poses[t])
        m[3, :3], m[3, 3] = 0.0, 1.0
        motions.append(_to_vec(torch.from_numpy(m)))
    out = np.zeros((len(motions), 2, 3), dtype=np.float32)
    cum = None
    for k, vec in enumerate(motions):
        step = _invert_rigid(_to_matrix(vec))
        cum = step if cum is None else cum @ step
        v = _to_vec(cum)
        angle = v[5]
        tx = -(v[0] / STP3_HALF_EXTENT_M[0])  # the forward axis is inverted in the image
        ty = v[1] / STP3_HALF_EXTENT_M[1]
        c, s = torch.cos(angle), torch.sin(angle)
        out[k] = torch.stack([c, -s, ty, s, c, tx]).view(2, 3).numpy()
    return out

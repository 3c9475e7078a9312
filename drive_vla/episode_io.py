"""Recorded observations on disk: one ``.npz`` per frame (no pickle), written by the drive loop, read by explain."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drive_vla.types import CAMERA_NAMES, HISTORY_STEPS, Command, EgoState, Observation

FRAME_KEYS = (*CAMERA_NAMES, "intrinsics", "extrinsics", "ego", "history", "command", "instruction", "timestamp_s")
EGO_SOURCE_KEY = "ego_source"  # extra key: EgoState.as_vector keeps only whether the source is "can"
ROUTE_TARGET_KEY = "route_target"  # extra key, present only when the observation has a route target
SPEED_LIMIT_KEY = "speed_limit_mps"  # extra key, present only when the observation has a speed limit
JUNCTION_KEY = "junction_m"  # extra key, present only when the observation has a junction distance


def frame_path(episode_dir: str | Path, step: int) -> Path:
    """``episode_dir/frames/step_XXXXX.npz``, where the drive loop saves the observation of ``step``."""
    if int(step) < 0:
        raise ValueError(f"step: got {step}, expected a non-negative integer")
    return Path(episode_dir) / "frames" / f"step_{int(step):05d}.npz"


def save_observation(path: str | Path, obs: Observation) -> Path:
    """Write ``obs`` as a compressed ``.npz``.

    Keys: ``CAM_*`` (H, W, 3) uint8 RGB; ``intrinsics`` (6, 3, 3) and ``extrinsics`` (6, 4, 4) float32 in
    CAMERA_NAMES order; ``ego`` (6,) float32 (EgoState.as_vector); ``ego_source`` str; ``history`` (4, 3)
    float32; ``command`` int64; ``instruction`` str; ``timestamp_s`` float64; ``route_target`` (2, 2) float32
    ``speed_limit_mps`` and ``junction_m`` float64 when the observation has them. Strings are stored as numpy
    unicode arrays, so the file loads with ``allow_pickle=False``.

    Returns:
        The path written (``.npz`` appended when missing).
    """
    if not isinstance(obs, Observation):
        raise ValueError(f"obs: got {type(obs).__name__}, expected an Observation")
    out = Path(path)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {cam: np.ascontiguousarray(obs.images[cam], dtype=np.uint8) for cam in CAMERA_NAMES}
    arrays.update(
        intrinsics=np.stack([obs.intrinsics[c] for c in CAMERA_NAMES]).astype(np.float32),
        extrinsics=np.stack([obs.extrinsics[c] for c in CAMERA_NAMES]).astype(np.float32),
        ego=obs.ego.as_vector(),
        history=np.asarray(obs.history, dtype=np.float32),
        command=np.array(int(obs.command), dtype=np.int64),
        instruction=np.array(obs.instruction, dtype=np.str_),
        timestamp_s=np.array(float(obs.timestamp_s), dtype=np.float64),
    )
    arrays[EGO_SOURCE_KEY] = np.array(obs.ego.source, dtype=np.str_)
    if obs.route_target is not None:
        arrays[ROUTE_TARGET_KEY] = np.asarray(obs.route_target, dtype=np.float32)
    if obs.speed_limit_mps is not None:
        arrays[SPEED_LIMIT_KEY] = np.array(float(obs.speed_limit_mps), dtype=np.float64)
    if obs.junction_m is not None:
        arrays[JUNCTION_KEY] = np.array(float(obs.junction_m), dtype=np.float64)
    np.savez_compressed(out, **arrays)
    return out


def load_observation(path: str | Path) -> Observation:
    """Read an Observation written by ``save_observation`` (``np.load(allow_pickle=False)``).

    Raises:
        ValueError: the file is missing, not an npz of this layout, or holds invalid values.
    """
    src = Path(path)
    if not src.is_file():
        raise ValueError(f"path: {str(src)!r} does not exist, expected a frame .npz written by save_observation")
    try:
        with np.load(src, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"path: {str(src)!r} is not a readable npz without pickled objects ({exc})") from None
    missing = [k for k in FRAME_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{src}: missing keys {missing}, expected {list(FRAME_KEYS)}")
    for key, shape in (
        ("intrinsics", (6, 3, 3)),
        ("extrinsics", (6, 4, 4)),
        ("ego", (6,)),
        ("history", (HISTORY_STEPS, 3)),
    ):
        if arrays[key].shape != shape:
            raise ValueError(f"{src}: {key}: got shape {arrays[key].shape}, expected {shape}")
    ego = arrays["ego"].astype(np.float64)
    source = str(arrays[EGO_SOURCE_KEY]) if EGO_SOURCE_KEY in arrays else ("can" if ego[5] > 0.5 else "poses")
    return Observation(
        images={cam: arrays[cam] for cam in CAMERA_NAMES},
        intrinsics={cam: arrays["intrinsics"][i] for i, cam in enumerate(CAMERA_NAMES)},
        extrinsics={cam: arrays["extrinsics"][i] for i, cam in enumerate(CAMERA_NAMES)},
        ego=EgoState(
            speed_mps=float(ego[0]),
            accel_mps2=ego[1:3].astype(np.float32),
            yaw_rate_rps=float(ego[3]),
            steer=float(ego[4]),
            source=source,
        ),
        history=arrays["history"].astype(np.float32),
        command=Command.parse(int(arrays["command"])),
        instruction=str(arrays["instruction"]),
        timestamp_s=float(arrays["timestamp_s"]),
        route_target=arrays[ROUTE_TARGET_KEY].astype(np.float32) if ROUTE_TARGET_KEY in arrays else None,
        speed_limit_mps=float(arrays[SPEED_LIMIT_KEY]) if SPEED_LIMIT_KEY in arrays else None,
        junction_m=float(arrays[JUNCTION_KEY]) if JUNCTION_KEY in arrays else None,
    )

"""Client side: turn an Observation into the JSON body of POST /plan or /explain."""

from __future__ import annotations

from typing import Any

from drive_vla.serve.images import encode_image
from drive_vla.types import CAMERA_NAMES, Observation


def request_from_observation(
    obs: Observation,
    *,
    question: str | None = None,
    image_format: str = "png",
    with_calibration: bool = True,
) -> dict[str, Any]:
    """The JSON body for ``obs`` (images base64-encoded; calibration included unless told otherwise).

    Args:
        obs: the observation to send.
        question: added as ``question`` (for /explain) when given.
        image_format: "png" (lossless) or "jpeg".
        with_calibration: send the observation's intrinsics/extrinsics; without them the service uses the
            nominal rig at the images' size.
    """
    body: dict[str, Any] = {
        "images": {cam: encode_image(obs.images[cam], image_format) for cam in CAMERA_NAMES},
        "ego": {
            "speed_mps": float(obs.ego.speed_mps),
            "accel_mps2": [float(v) for v in obs.ego.accel_mps2],
            "yaw_rate_rps": float(obs.ego.yaw_rate_rps),
            "steer": float(obs.ego.steer),
            "source": obs.ego.source,
        },
        "instruction": obs.instruction,
        "command": obs.command.name,
        "history": [[float(v) for v in row] for row in obs.history],
        "timestamp_s": float(obs.timestamp_s),
    }
    if obs.route_target is not None:
        body["route_target"] = [[float(v) for v in p] for p in obs.route_target]
    if obs.speed_limit_mps is not None:
        body["speed_limit_mps"] = float(obs.speed_limit_mps)
    if obs.junction_m is not None:
        body["junction_m"] = float(obs.junction_m)
    if with_calibration:
        body["intrinsics"] = {cam: obs.intrinsics[cam].astype(float).tolist() for cam in CAMERA_NAMES}
        body["extrinsics"] = {cam: obs.extrinsics[cam].astype(float).tolist() for cam in CAMERA_NAMES}
    if question is not None:
        body["question"] = question
    return body

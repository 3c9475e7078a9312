"""Request and response schemas of the plan/explain service: strict pydantic models that name the bad field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
    model_validator,
)

from drive_vla.serve.images import MAX_IMAGE_WH, MIN_IMAGE_SIDE_PX, decode_image
from drive_vla.types import (
    CAMERA_NAMES,
    EGO_SOURCES,
    HISTORY_STEPS,
    JUNCTION_HORIZON_M,
    MAX_ROUTE_TARGET_M,
    MAX_SPEED_LIMIT_MPS,
    ROUTE_TARGET_POINTS,
)

MAX_TEXT_CHARS = 500  # instruction and question

# Strict: no string -> number coercion, no NaN/inf, unknown fields rejected.
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, arbitrary_types_allowed=True)

WireImage = Annotated[
    np.ndarray,
    BeforeValidator(decode_image),
    WithJsonSchema(
        {
            "type": "string",
            "contentEncoding": "base64",
            "contentMediaType": "image/png",
            "description": (
                f"base64 PNG or JPEG, RGB, at most {MAX_IMAGE_WH[0]}x{MAX_IMAGE_WH[1]} and at least "
                f"{MIN_IMAGE_SIDE_PX}x{MIN_IMAGE_SIDE_PX} pixels; all six cameras the same size"
            ),
        }
    ),
]
Row3 = Annotated[list[float], Field(min_length=3, max_length=3)]
Row4 = Annotated[list[float], Field(min_length=4, max_length=4)]
Matrix3x3 = Annotated[list[Row3], Field(min_length=3, max_length=3)]
Matrix4x4 = Annotated[list[Row4], Field(min_length=4, max_length=4)]


def _check_intrinsics(k: list[list[float]]) -> list[list[float]]:
    m = np.asarray(k, dtype=np.float64)
    if not (m[0, 0] > 0 and m[1, 1] > 0) or not np.allclose(m[2], [0.0, 0.0, 1.0]) or m[1, 0] != 0:
        raise ValueError(f"got {k}, expected a pinhole matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
    return k


def _check_rigid(t: list[list[float]]) -> list[list[float]]:
    m = np.asarray(t, dtype=np.float64)
    r = m[:3, :3]
    with np.errstate(all="ignore"):  # huge entries overflow to inf and fail the check below, as they should
        rigid = np.allclose(r @ r.T, np.eye(3), atol=1e-3) and abs(np.linalg.det(r) - 1.0) < 1e-3
    if not rigid or not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"got {t}, expected a rigid 4x4 camera-to-ego transform (rotation, last row [0, 0, 0, 1])")
    if np.abs(m[:3, 3]).max() > 10.0:
        raise ValueError(f"got translation {m[:3, 3].tolist()}, expected a camera mount within 10 m of the ego origin")
    return t


class _Strict(BaseModel):
    model_config = _STRICT


class CameraImages(_Strict):
    """The six camera images, keyed by nuScenes channel name."""

    CAM_FRONT: WireImage
    CAM_FRONT_RIGHT: WireImage
    CAM_FRONT_LEFT: WireImage
    CAM_BACK: WireImage
    CAM_BACK_LEFT: WireImage
    CAM_BACK_RIGHT: WireImage

    @model_validator(mode="after")
    def _same_size(self) -> CameraImages:
        sizes = {cam: getattr(self, cam).shape[:2] for cam in CAMERA_NAMES}
        first = sizes[CAMERA_NAMES[0]]
        other = {cam: f"{w}x{h}" for cam, (h, w) in sizes.items() if (h, w) != first}
        if other:
            raise ValueError(
                f"cameras {other} differ from {CAMERA_NAMES[0]}'s {first[1]}x{first[0]}, expected one size"
            )
        return self

    def as_dict(self) -> dict[str, np.ndarray]:
        return {cam: getattr(self, cam) for cam in CAMERA_NAMES}

    @property
    def wh(self) -> tuple[int, int]:
        h, w = self.CAM_FRONT.shape[:2]
        return int(w), int(h)


def _matrices_model(name: str, matrix: Any, check: Any, doc: str) -> type[BaseModel]:
    """A strict model with one checked matrix per camera (errors land at ``<field>.<camera>``)."""
    fields: dict[str, Any] = {cam: (Annotated[matrix, AfterValidator(check)], ...) for cam in CAMERA_NAMES}
    return create_model(name, __base__=_Strict, __doc__=doc, **fields)


CameraIntrinsics = _matrices_model(
    "CameraIntrinsics", Matrix3x3, _check_intrinsics, "Per camera: 3x3 pinhole matrix for the sent image size."
)
CameraExtrinsics = _matrices_model(
    "CameraExtrinsics",
    Matrix4x4,
    _check_rigid,
    "Per camera: 4x4 camera-to-ego transform (OpenCV camera axes: x right, y down, z forward).",
)


class EgoStateIn(_Strict):
    """Ego state at the current time (canonical ego frame: x forward, y left)."""

    speed_mps: float = Field(ge=-20.0, le=100.0, description="forward speed, m/s")
    accel_mps2: Annotated[list[Annotated[float, Field(ge=-50.0, le=50.0)]], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.0, 0.0], description="(longitudinal, lateral) acceleration, m/s^2"
    )
    yaw_rate_rps: float = Field(default=0.0, ge=-10.0, le=10.0, description="yaw rate, rad/s, CCW positive")
    steer: float = Field(default=0.0, ge=-1.0, le=1.0, description="normalised steering, positive turns left")
    source: Literal[EGO_SOURCES] = "sensors"  # the same names EgoState accepts


History = Annotated[
    list[Annotated[list[Annotated[float, Field(ge=-1000.0, le=1000.0)]], Field(min_length=3, max_length=3)]],
    Field(min_length=HISTORY_STEPS, max_length=HISTORY_STEPS),
]

RouteTargetIn = Annotated[
    list[
        Annotated[
            list[Annotated[float, Field(ge=-MAX_ROUTE_TARGET_M, le=MAX_ROUTE_TARGET_M)]],
            Field(min_length=2, max_length=2),
        ]
    ],
    Field(min_length=ROUTE_TARGET_POINTS, max_length=ROUTE_TARGET_POINTS),
]


class PlanRequest(_Strict):
    """One observation: six images, ego state, navigation instruction and optional calibration."""

    images: CameraImages
    ego: EgoStateIn
    instruction: str = Field(
        min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"\S", description="navigation instruction (not blank)"
    )
    command: Literal["LEFT", "RIGHT", "STRAIGHT"] = "STRAIGHT"
    history: History | None = Field(
        default=None,
        description=f"{HISTORY_STEPS} past poses [x m, y m, yaw rad] in the current ego frame, oldest first "
        "(-2.0 ... -0.5 s); zeros when absent",
    )
    intrinsics: CameraIntrinsics | None = Field(  # type: ignore[valid-type]
        default=None, description="default: the nominal nuScenes rig scaled to the images' size"
    )
    extrinsics: CameraExtrinsics | None = Field(  # type: ignore[valid-type]
        default=None, description="default: the nominal nuScenes rig mounts"
    )
    timestamp_s: float = Field(default=0.0, ge=0.0, description="time of the observation, seconds")
    route_target: RouteTargetIn | None = Field(
        default=None,
        description=f"the next {ROUTE_TARGET_POINTS} route points [x m, y m] in the ego frame, nearest first; "
        "absent where no route is known",
    )
    speed_limit_mps: float | None = Field(
        default=None,
        gt=0.0,
        le=MAX_SPEED_LIMIT_MPS,
        description="the speed limit where the car is, m/s (a map's or CARLA's get_speed_limit() / 3.6); "
        "absent where unknown",
    )
    junction_m: float | None = Field(
        default=None,
        ge=0.0,
        le=JUNCTION_HORIZON_M,
        description="the distance along the route to the next junction entry, m (the first global-plan "
        f"waypoint whose RoadOption is LEFT, RIGHT or STRAIGHT); {JUNCTION_HORIZON_M:.0f} when none is nearer; "
        "absent where unknown",
    )


class ExplainRequest(PlanRequest):
    """An observation plus a question; without a question the policy asks its default one."""

    question: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"\S")


# ----------------------------------------------------------------------------- responses


class TrajectoryOut(BaseModel):
    xy: list[list[float]] = Field(description="(6, 2) waypoints, metres, ego frame (x forward, y left), 0.5 ... 3.0 s")
    yaw_rad: list[float]
    dt_s: float
    frame: str


class ControlOut(BaseModel):
    steer: float = Field(description="[-1, 1], positive turns left")
    throttle: float
    brake: float


class PlanOut(BaseModel):
    """``Plan.to_dict()``."""

    trajectory: TrajectoryOut
    controls: ControlOut | None
    text: str | None
    meta_action: str | None
    timings_ms: dict[str, float] = Field(description="the policy's own stage timings")


class PlanResponse(BaseModel):
    plan: PlanOut
    meta_action: str | None
    model: str
    timings_ms: dict[str, float] = Field(
        description="service timings: validate (JSON, image decoding, checks), wait (for the model lock), policy, total (from the body's arrival)"
    )


class ExplainResponse(PlanResponse):
    answer: str
    question: str | None = Field(description="the question asked; null means the policy's default question")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model: str
    uptime_s: float
    requests_served: int = Field(description="successful /plan and /explain answers")
    requests_rejected: int = Field(description="/plan and /explain requests answered 4xx")
    policy_errors: int = Field(description="/plan and /explain requests answered 500")
    requests_busy: int = Field(default=0, description="/plan and /explain requests answered 503 (model busy)")
    temporal_memory: str = Field(description="how the policy's temporal memory is handled between requests")


class FieldErrorOut(BaseModel):
    field: str = Field(description="dotted path of the offending field, e.g. 'images.CAM_FRONT' or 'ego.steer'")
    message: str
    type: str


class ErrorResponse(BaseModel):
    error: str = Field(description="validation_error | payload_too_large | policy_error | not_supported")
    message: str
    fields: list[FieldErrorOut] = Field(default_factory=list)

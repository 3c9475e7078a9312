"""The plan/explain HTTP app: one shared policy behind a lock, strict validation, errors that name the field.

Temporal memory: the service is stateless. Every /plan and /explain call runs ``policy.reset()`` before
it predicts (under the same lock), so answers depend only on the request: clients that want history send
it in ``history``. A policy with memory across frames is driven frame by frame through the library (the
drive loop), not over HTTP.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from drive_vla import geometry
from drive_vla.data.labels import meta_action_from_text
from drive_vla.serve.schemas import (
    ErrorResponse,
    ExplainRequest,
    ExplainResponse,
    HealthResponse,
    PlanRequest,
    PlanResponse,
)
from drive_vla.types import CAMERA_NAMES, HISTORY_STEPS, Command, EgoState, Observation, Plan

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 48 * 1024 * 1024  # six 1600x900 PNGs in base64 fit
DEFAULT_MAX_WAITING = 8  # requests allowed to wait for the model; the next one is answered 503 at once
DEFAULT_WAIT_TIMEOUT_S = 10.0  # a request that waited this long for the model is answered 503
BODY_READ_AT = "drive_vla_body_read_at"
TEMPORAL_MEMORY = "reset before every request (stateless service; send history in the request)"
_ERRORS = {
    413: {"model": ErrorResponse, "description": "body larger than the limit"},
    422: {"model": ErrorResponse, "description": "invalid request; `fields` names each bad field"},
    500: {"model": ErrorResponse, "description": "the policy failed; the service stays up"},
    503: {"model": ErrorResponse, "description": "busy: too many requests wait for the model; see Retry-After"},
}


class Busy(RuntimeError):
    """The model is taken and the wait queue is full, or the wait timed out (answered 503)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FieldError(ValueError):
    """A request field that passed the schema but not a cross-field check."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# ----------------------------------------------------------------------------- body size limit


class BodyLimitMiddleware:
    """Answer 413 to any request body over ``max_body_bytes`` before the app parses it.

    The body is read (up to 8x the limit, so well-behaved clients get a clean response) and replayed to
    the app; chunked bodies without a Content-Length are counted too.
    """

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        total, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            more = bool(message.get("more_body", False))
            if total > self.max_body_bytes:
                if total > 8 * self.max_body_bytes:
                    break
                continue
            chunks.append(body)
        if total > self.max_body_bytes:
            err = ErrorResponse(
                error="payload_too_large",
                message=f"body: got more than {self.max_body_bytes} bytes ({total} read), "
                f"expected at most {self.max_body_bytes}",
                fields=[{"field": "body", "message": "request body too large", "type": "too_large"}],
            )
            await JSONResponse(err.model_dump(), status_code=413)(scope, receive, send)
            return
        replay = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        scope.setdefault("state", {})[BODY_READ_AT] = time.perf_counter()  # start of the service timings
        sent = False

        async def replay_receive() -> MutableMapping[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return replay
            return await receive()

        await self.app(scope, replay_receive, send)


# ----------------------------------------------------------------------------- errors


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _validation_fields(exc: RequestValidationError) -> list[dict[str, str]]:
    fields = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":  # loc is (body, character offset)
            loc, msg = ("body",), f"{msg} at character {loc[-1]}"
        field = _field_name(loc)
        # Never echo image payloads; show short values so the client sees what it sent.
        kind = str(err.get("type", "value_error"))
        if field == "body" and kind == "missing":
            msg = "empty body, expected a JSON object"
        quiet = field.startswith("images") or kind == "missing" or "input" not in err
        shown = "" if quiet else f" (got {_short(err['input'])})"
        fields.append({"field": field, "message": msg + shown, "type": kind})
    return fields


def _error(status: int, error: str, message: str, fields: list[dict[str, str]] | None = None) -> JSONResponse:
    body = ErrorResponse(error=error, message=message, fields=fields or [])
    return JSONResponse(body.model_dump(), status_code=status)


# ----------------------------------------------------------------------------- request -> Observation


def to_observation(req: PlanRequest) -> Observation:
    """Build the Observation of a validated request (nominal rig calibration where none is sent).

    Raises:
        FieldError: a cross-field check failed (e.g. a principal point outside the image).
    """
    images = req.images.as_dict()
    w, h = req.images.wh
    intr, extr = geometry.rig_calibration(w, h)
    if req.intrinsics is not None:
        for cam in CAMERA_NAMES:
            k = np.asarray(getattr(req.intrinsics, cam), dtype=np.float32)
            if not (0 <= k[0, 2] <= w and 0 <= k[1, 2] <= h):
                raise FieldError(
                    f"intrinsics.{cam}",
                    f"got principal point ({k[0, 2]:.1f}, {k[1, 2]:.1f}), expected inside the {w}x{h} image",
                )
            intr[cam] = k
    if req.extrinsics is not None:
        extr = {cam: np.asarray(getattr(req.extrinsics, cam), dtype=np.float32) for cam in CAMERA_NAMES}
    history = (
        np.zeros((HISTORY_STEPS, 3), dtype=np.float32)
        if req.history is None
        else np.asarray(req.history, dtype=np.float32)
    )
    ego = req.ego
    try:
        return Observation(
            images=images,
            intrinsics=intr,
            extrinsics=extr,
            ego=EgoState(
                speed_mps=ego.speed_mps,
                accel_mps2=np.asarray(ego.accel_mps2, dtype=np.float32),
                yaw_rate_rps=ego.yaw_rate_rps,
                steer=ego.steer,
                source=ego.source,
            ),
            history=history,
            command=Command[req.command],
            instruction=req.instruction,
            timestamp_s=req.timestamp_s,
            route_target=None if req.route_target is None else np.asarray(req.route_target, dtype=np.float32),
            speed_limit_mps=req.speed_limit_mps,
            junction_m=req.junction_m,
        )
    except ValueError as exc:  # the library's own checks name the field before the colon
        field, _, message = str(exc).partition(": ")
        raise FieldError(field.removeprefix("observation."), message or str(exc)) from None


# ----------------------------------------------------------------------------- the shared policy


class PolicyService:
    """One policy instance shared by all requests; a lock serialises every call into it.

    At most ``max_waiting`` requests wait for the lock, each for at most ``wait_timeout_s``; beyond that a
    request is refused with ``Busy`` (HTTP 503 with Retry-After) instead of queueing without end. A call
    that holds the model runs to its end (a thread cannot be stopped safely); the bounded wait is what
    keeps latency bounded.
    """

    def __init__(
        self,
        policy: Any,
        model_name: str,
        max_waiting: int = DEFAULT_MAX_WAITING,
        wait_timeout_s: float = DEFAULT_WAIT_TIMEOUT_S,
    ) -> None:
        if max_waiting < 0:
            raise ValueError(f"max_waiting: got {max_waiting}, expected >= 0")
        if not wait_timeout_s > 0:
            raise ValueError(f"wait_timeout_s: got {wait_timeout_s}, expected > 0")
        self.policy = policy
        self.model_name = model_name
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.stats = {"served": 0, "rejected": 0, "policy_errors": 0, "busy": 0}
        self.max_waiting, self.wait_timeout_s = max_waiting, float(wait_timeout_s)
        self._waiting = 0
        self._last_call_s = 0.1  # how long the model took last time (for Retry-After)

    def count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def _predict(self, obs: Observation) -> Plan:
        if hasattr(self.policy, "predict"):
            return self.policy.predict(obs)
        return self.policy.predict_batch([obs])[0]

    def plan(
        self, obs: Observation, question: str | None = None, explain: bool = False
    ) -> tuple[Plan, str | None, dict]:
        """Run the policy under the lock: reset, predict and, when asked, reset and explain."""
        t0 = time.perf_counter()
        with self._stats_lock:
            if self._waiting >= self.max_waiting and self._lock.locked():
                self.stats["busy"] += 1
                raise Busy(f"{self._waiting} requests already wait for the model", self._retry_after())
            self._waiting += 1
        try:
            acquired = self._lock.acquire(timeout=self.wait_timeout_s)
        finally:
            with self._stats_lock:
                self._waiting -= 1
        if not acquired:
            self.count("busy")
            raise Busy(f"waited {self.wait_timeout_s:g} s for the model", self._retry_after())
        try:
            t1 = time.perf_counter()
            self.policy.reset()
            plan = self._predict(obs)
            if not isinstance(plan, Plan):
                raise TypeError(f"policy returned {type(plan).__name__}, expected a Plan")
            answer = None
            if explain:
                self.policy.reset()
                answer = self.policy.explain(obs, question)
                if not isinstance(answer, str):
                    raise TypeError(f"policy.explain returned {type(answer).__name__}, expected str")
                if plan.meta_action is None:  # the meta-action the answer states (labels' sentence rule)
                    plan = dataclasses.replace(plan, meta_action=meta_action_from_text(answer))
            t2 = time.perf_counter()
            self._last_call_s = t2 - t1
        finally:
            self._lock.release()
        return plan, answer, {"wait": (t1 - t0) * 1e3, "policy": (t2 - t1) * 1e3}

    def _retry_after(self) -> int:
        """Seconds after which the queue ahead should have drained (at least 1)."""
        return max(1, math.ceil((self._waiting + 1) * self._last_call_s))


def _plan_json(plan: Plan) -> dict[str, Any]:
    out = plan.to_dict()
    out["timings_ms"] = {k: float(v) for k, v in out["timings_ms"].items() if math.isfinite(float(v))}
    return out


def create_app(
    policy: Any,
    *,
    model_name: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_waiting: int = DEFAULT_MAX_WAITING,
    wait_timeout_s: float = DEFAULT_WAIT_TIMEOUT_S,
) -> FastAPI:
    """The FastAPI app serving ``policy``.

    Args:
        policy: a DrivingPolicy or any object with ``predict(obs) -> Plan`` (or ``predict_batch``),
            ``reset()`` and, for /explain, ``explain(obs, question) -> str``.
        model_name: reported by /health and in every answer; default: the policy's class name.
        max_body_bytes: larger bodies are answered 413 before parsing.
        max_waiting: requests that may wait for the model at once; one more is answered 503.
        wait_timeout_s: a request that waited this long for the model is answered 503.

    Returns:
        The app; endpoints POST /plan, POST /explain, GET /health, docs at /docs and /openapi.json.
    """
    name = model_name or str(getattr(policy, "name", "") or type(policy).__name__)
    service = PolicyService(policy, name, max_waiting=max_waiting, wait_timeout_s=wait_timeout_s)
    app = FastAPI(
        title="drive-vla plan and rationale service",
        version="1",
        description="Six camera images, ego state and an instruction in; a plan (6 waypoints at 2 Hz in the "
        "ego frame, controls, meta-action) and on request an explanation out. "
        + f"Temporal memory: {TEMPORAL_MEMORY}.",
    )
    app.state.service = service
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)

    @app.middleware("http")
    async def _count_rejections(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        response = await call_next(request)
        if request.url.path in ("/plan", "/explain") and 400 <= response.status_code < 500:
            service.count("rejected")
        return response

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _validation_fields(exc)
        names = ", ".join(dict.fromkeys(f["field"] for f in fields))
        return _error(422, "validation_error", f"invalid request: {names}", fields)

    @app.exception_handler(FieldError)
    async def _on_field(request: Request, exc: FieldError) -> JSONResponse:
        return _error(
            422,
            "validation_error",
            f"invalid request: {exc.field}",
            [{"field": exc.field, "message": exc.message, "type": "value_error"}],
        )

    def run(request: Request, req: PlanRequest, question: str | None, explain: bool) -> dict[str, Any] | JSONResponse:
        # t0: body fully read; JSON parsing, base64/image decoding and validation happen before this handler.
        t0 = getattr(request.state, BODY_READ_AT, None) or time.perf_counter()
        obs = to_observation(req)
        t_decode = time.perf_counter()
        try:
            plan, answer, timings = service.plan(obs, question, explain)
        except Busy as exc:
            response = _error(503, "busy", f"the model is busy: {exc}; retry later")
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        except NotImplementedError as exc:
            return _error(501, "not_supported", f"the policy cannot do this: {exc}")
        except Exception as exc:  # a policy failure must not take the service down
            log.exception("policy failed")
            service.count("policy_errors")
            return _error(500, "policy_error", f"policy failed: {type(exc).__name__}: {exc}")
        service.count("served")
        timings = {"validate": (t_decode - t0) * 1e3, **timings, "total": (time.perf_counter() - t0) * 1e3}
        out: dict[str, Any] = {
            "plan": _plan_json(plan),
            "meta_action": plan.meta_action,
            "model": service.model_name,
            "timings_ms": timings,
        }
        if explain:
            out["answer"] = answer
            out["question"] = question
        return out

    # Plain (sync) endpoints run in the threadpool, so /health answers while a request holds the model.
    @app.post("/plan", response_model=PlanResponse, responses=_ERRORS, summary="Plan from one observation")
    def plan_endpoint(req: PlanRequest, request: Request) -> Any:
        return run(request, req, None, explain=False)

    @app.post("/explain", response_model=ExplainResponse, responses=_ERRORS, summary="Plan and explain")
    def explain_endpoint(req: ExplainRequest, request: Request) -> Any:
        if not hasattr(policy, "explain"):
            return _error(501, "not_supported", f"{name} has no explain(); it only plans")
        return run(request, req, req.question, explain=True)

    # async: answered on the event loop even when every worker thread waits for the model lock.
    @app.get("/health", response_model=HealthResponse, summary="Liveness and counters")
    async def health() -> Any:
        with service._stats_lock:
            stats = dict(service.stats)
        return {
            "status": "ok",
            "model": service.model_name,
            "uptime_s": time.monotonic() - service.started,
            "requests_served": stats["served"],
            "requests_rejected": stats["rejected"],
            "policy_errors": stats["policy_errors"],
            "requests_busy": stats["busy"],
            "temporal_memory": TEMPORAL_MEMORY,
        }

    return app

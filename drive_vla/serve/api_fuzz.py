"""Fuzz the HTTP service from its own OpenAPI document (schemathesis) on a real loopback server.

Every operation in ``/openapi.json`` gets ``examples`` generated requests (hypothesis, derandomized: the same
requests every run). Checked: no 5xx; every 422 body names at least one field (``fields[].field``); every other 4xx
has an ``error`` and a ``message``; ``/health`` answers afterwards. The served planner is drive-vla's
constant-velocity baseline, so the campaign needs no weights; policy failures are covered by the tests.
schemathesis is a test extra (``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from drive_vla.baselines.constant_velocity import ConstantVelocityPlanner
from drive_vla.serve.app import create_app
from drive_vla.serve.server import BackgroundServer


@dataclass
class ApiCampaignResult:
    """Counts of an HTTP campaign (``server_errors``, ``unnamed_4xx`` and ``health_after`` are the verdict)."""

    requests: int = 0
    server_errors: int = 0
    unnamed_4xx: int = 0
    health_after: bool = False
    status_counts: dict[int, int] = field(default_factory=dict)
    per_operation: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _check(response: Any, result: ApiCampaignResult, where: str) -> None:
    code = int(response.status_code)
    result.requests += 1
    result.status_counts[code] = result.status_counts.get(code, 0) + 1
    if code >= 500:
        result.server_errors += 1
        result.examples.append(f"{where}: {code} {response.text[:200]}")
    elif code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {}
        named = bool(body.get("error")) and bool(body.get("message"))
        if code == 422:
            named = named and bool(body.get("fields")) and all(f.get("field") for f in body["fields"])
        if not named:
            result.unnamed_4xx += 1
            result.examples.append(f"{where}: {code} without a named field: {response.text[:200]}")


def _campaign_for(op: Any, where: str, examples: int, result: ApiCampaignResult) -> Any:
    """A hypothesis test that sends ``examples`` generated requests to operation ``op``."""
    from hypothesis import HealthCheck, given, settings

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy())
    def one(case: Any) -> None:
        result.per_operation[where] = result.per_operation.get(where, 0) + 1
        _check(case.call(timeout=30), result, where)

    return one


def run_api_campaign(examples: int, planner: Any = None) -> ApiCampaignResult:
    """``examples`` generated requests per operation against a fresh loopback server."""
    import schemathesis

    result = ApiCampaignResult()
    app = create_app(planner or ConstantVelocityPlanner(), model_name="constant-velocity")
    t0 = time.perf_counter()
    with BackgroundServer(app) as srv:
        schema = schemathesis.openapi.from_url(srv.url + "/openapi.json")
        for operation in schema.get_all_operations():
            op = operation.ok()
            _campaign_for(op, f"{op.method.upper()} {op.path}", examples, result)()
        result.health_after = httpx.get(srv.url + "/health", timeout=10).status_code == 200
    result.seconds = time.perf_counter() - t0
    return result

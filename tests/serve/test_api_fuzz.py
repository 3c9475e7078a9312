"""The HTTP campaign (a seeded sample of `drive-vla bench robustness`): schemathesis on a loopback server."""

from __future__ import annotations

import pytest

pytest.importorskip("schemathesis")

from drive_vla.serve.api_fuzz import run_api_campaign  # noqa: E402


def test_generated_requests_get_no_5xx_and_every_4xx_names_its_field():
    result = run_api_campaign(60)
    assert set(result.per_operation) == {"POST /plan", "POST /explain", "GET /health"}
    assert result.requests == 121 and result.server_errors == 0 and result.unnamed_4xx == 0, result.examples
    assert result.health_after


def test_the_check_counts_5xx_and_4xx_bodies_that_name_no_field():
    """A campaign that cannot fail proves nothing: the verdict counts a 500 and a 422 without fields."""
    from drive_vla.serve.api_fuzz import ApiCampaignResult, _check

    class Response:
        def __init__(self, code: int, body: dict) -> None:
            self.status_code, self._body, self.text = code, body, str(body)

        def json(self) -> dict:
            return self._body

    result = ApiCampaignResult()
    _check(Response(500, {"error": "policy_error", "message": "boom"}), result, "POST /plan")
    _check(Response(422, {"error": "validation_error", "message": "invalid", "fields": []}), result, "POST /plan")
    _check(Response(422, {"error": "validation_error", "message": "x", "fields": [{"field": "ego"}]}), result, "x")
    _check(Response(413, {"error": "too_large", "message": "body over 1 MiB"}), result, "POST /plan")
    assert (result.requests, result.server_errors, result.unnamed_4xx) == (4, 1, 1)

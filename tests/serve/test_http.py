"""The plan/explain service over real HTTP on loopback: success paths, many bad requests, errors, the lock."""

from __future__ import annotations

import base64
import copy
import io
import json
import threading

import httpx
import numpy as np
import pytest
from PIL import Image

from drive_vla import geometry
from drive_vla.serve import TEMPORAL_MEMORY, encode_image, request_from_observation
from drive_vla.types import CAMERA_NAMES

FAIL_INSTRUCTION = "make the policy raise"


def _png(w: int, h: int, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (90, 90, 90)).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def _post(server, path: str, body=None, content: bytes | str | None = None) -> httpx.Response:
    if content is not None:
        return httpx.post(server.url + path, content=content, headers={"content-type": "application/json"}, timeout=30)
    return httpx.post(server.url + path, json=body, timeout=30)


def _assert_good(server, body) -> dict:
    r = _post(server, "/plan", body)
    assert r.status_code == 200, r.text
    return r.json()


# ----------------------------------------------------------------------------- success


def test_plan_returns_plan_dict_meta_action_and_timings(server, good_body, stub_policy):
    out = _assert_good(server, good_body)
    xy = np.array(out["plan"]["trajectory"]["xy"])
    assert xy.shape == (6, 2)
    assert np.allclose(xy[:, 0], 5.0 * 0.5 * np.arange(1, 7))  # constant velocity at 5 m/s
    assert out["plan"]["controls"] == {"steer": 0.0, "throttle": pytest.approx(0.3), "brake": 0.0}
    assert out["meta_action"] == "keep speed, straight" == out["plan"]["meta_action"]
    assert out["model"] == "stub-constant-velocity"
    timings = out["timings_ms"]
    assert set(timings) == {"validate", "wait", "policy", "total"}
    assert timings["total"] >= timings["validate"] + timings["wait"] + timings["policy"] - 1e-6
    assert timings["policy"] >= 20.0  # the stub sleeps 20 ms inside the lock
    assert out["plan"]["timings_ms"] == {"total": 1.5}


def test_plan_decodes_images_losslessly_and_defaults_to_nominal_rig(server, good_body, stub_policy, make_obs):
    _assert_good(server, good_body)
    obs, sent = stub_policy.last_obs, make_obs()
    for cam in CAMERA_NAMES:
        assert np.array_equal(obs.images[cam], sent.images[cam])
    intr, extr = geometry.rig_calibration(64, 36)
    assert np.allclose(obs.intrinsics["CAM_BACK"], intr["CAM_BACK"])
    assert np.allclose(obs.extrinsics["CAM_FRONT_LEFT"], extr["CAM_FRONT_LEFT"])
    assert np.allclose(obs.history, sent.history) and obs.timestamp_s == 12.5


def test_plan_passes_the_route_target_and_refuses_a_far_one(server, good_body, stub_policy):
    _assert_good(server, good_body)
    assert stub_policy.last_obs.route_target is None
    body = {**good_body, "route_target": [[12.0, 0.5], [22.0, 1.0]]}
    _assert_good(server, body)
    np.testing.assert_allclose(stub_policy.last_obs.route_target, [[12.0, 0.5], [22.0, 1.0]])
    r = _post(server, "/plan", {**good_body, "route_target": [[1e6, 0.0], [1.0, 0.0]]})
    assert r.status_code == 422 and "route_target" in r.text


def test_plan_passes_the_speed_limit_and_refuses_a_bad_one(server, good_body, stub_policy):
    _assert_good(server, good_body)
    assert stub_policy.last_obs.speed_limit_mps is None
    _assert_good(server, {**good_body, "speed_limit_mps": 13.9})
    assert stub_policy.last_obs.speed_limit_mps == pytest.approx(13.9)
    for bad in (0.0, -5.0, 1e6, "fast"):
        r = _post(server, "/plan", {**good_body, "speed_limit_mps": bad})
        assert r.status_code == 422 and "speed_limit_mps" in r.text, bad


def test_plan_passes_the_junction_distance_and_refuses_a_bad_one(server, good_body, stub_policy):
    _assert_good(server, {**good_body, "junction_m": 23.5})
    assert stub_policy.last_obs.junction_m == pytest.approx(23.5)
    for bad in (-1.0, 1e6, "near"):
        r = _post(server, "/plan", {**good_body, "junction_m": bad})
        assert r.status_code == 422 and "junction_m" in r.text, bad


def test_plan_uses_sent_calibration_and_jpeg(server, make_obs, stub_policy):
    obs = make_obs()
    body = request_from_observation(obs, image_format="jpeg")
    body["intrinsics"]["CAM_FRONT"][0][0] = 77.0
    _assert_good(server, body)
    assert stub_policy.last_obs.intrinsics["CAM_FRONT"][0, 0] == pytest.approx(77.0)
    assert stub_policy.last_obs.images["CAM_FRONT"].shape == (36, 64, 3)


def test_explain_answers_with_plan_and_passes_the_question(server, good_body, stub_policy):
    body = dict(good_body, question="Why not overtake?")
    r = _post(server, "/explain", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["answer"] == "I keep 5.0 m/s straight because the lane ahead is clear."
    assert out["question"] == "Why not overtake?" and stub_policy.questions[-1] == "Why not overtake?"
    assert len(out["plan"]["trajectory"]["xy"]) == 6
    r = _post(server, "/explain", good_body)  # no question: the policy's default (None)
    assert r.status_code == 200 and r.json()["question"] is None and stub_policy.questions[-1] is None


def test_health_counts_requests(server, good_body):
    before = httpx.get(server.url + "/health").json()
    _assert_good(server, good_body)
    after = httpx.get(server.url + "/health").json()
    assert after["status"] == "ok" and after["model"] == "stub-constant-velocity"
    assert after["requests_served"] == before["requests_served"] + 1
    assert after["uptime_s"] >= before["uptime_s"] > 0
    assert after["temporal_memory"] == TEMPORAL_MEMORY


def test_openapi_and_docs(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/plan", "/explain", "/health"} <= set(spec["paths"])
    images = spec["components"]["schemas"]["CameraImages"]
    assert set(images["properties"]) == set(CAMERA_NAMES) and set(images["required"]) == set(CAMERA_NAMES)
    assert images["additionalProperties"] is False
    assert "422" in spec["paths"]["/plan"]["post"]["responses"]
    docs = httpx.get(server.url + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_requests_are_serialised_and_memory_reset_each_time(server, good_body, stub_policy):
    resets0, predicts0 = stub_policy.resets, stub_policy.predicts
    codes: list[int] = []

    def call() -> None:
        codes.append(_post(server, "/plan", good_body).status_code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 6
    assert stub_policy.max_inside == 1  # never two requests inside the policy at once
    assert stub_policy.predicts - predicts0 == 6 and stub_policy.resets - resets0 == 6


# ----------------------------------------------------------------------------- bad requests


def _set(path: str, value):
    def mutate(body: dict) -> None:
        *parents, leaf = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        node[leaf] = value

    return mutate


def _delete(path: str):
    def mutate(body: dict) -> None:
        *parents, leaf = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        del node[leaf]

    return mutate


def _bad_intrinsics(body: dict) -> None:
    k = geometry.rig_calibration(64, 36)[0]
    body["intrinsics"] = {cam: k[cam].astype(float).tolist() for cam in CAMERA_NAMES}
    body["intrinsics"]["CAM_FRONT"][2] = [0.0, 1.0, 1.0]


def _bad_extrinsics(body: dict) -> None:
    e = geometry.rig_calibration(64, 36)[1]
    body["extrinsics"] = {cam: e[cam].astype(float).tolist() for cam in CAMERA_NAMES}
    body["extrinsics"]["CAM_BACK"][0][0] = 3.0


def _principal_point_outside(body: dict) -> None:
    k = geometry.rig_calibration(64, 36)[0]
    body["intrinsics"] = {cam: k[cam].astype(float).tolist() for cam in CAMERA_NAMES}
    body["intrinsics"]["CAM_FRONT_RIGHT"][0][2] = 500.0


BAD_JSON = [  # (id, path, mutate, expected field)
    ("missing-camera", "/plan", _delete("images.CAM_BACK"), "images.CAM_BACK"),
    ("extra-camera", "/plan", _set("images.CAM_TOP", _png(64, 36)), "images.CAM_TOP"),
    ("bad-base64", "/plan", _set("images.CAM_FRONT", "%%%not base64%%%"), "images.CAM_FRONT"),
    (
        "not-an-image",
        "/plan",
        _set("images.CAM_FRONT", base64.b64encode(b"GIF? no, text" * 9).decode()),
        "images.CAM_FRONT",
    ),
    ("gif-format", "/plan", _set("images.CAM_FRONT_LEFT", _png(64, 36, "GIF")), "images.CAM_FRONT_LEFT"),
    ("different-sizes", "/plan", _set("images.CAM_BACK_LEFT", _png(80, 40)), "images"),
    ("image-too-large", "/plan", _set("images.CAM_FRONT", _png(1601, 900)), "images.CAM_FRONT"),
    ("image-too-small", "/plan", _set("images.CAM_BACK", _png(12, 12)), "images.CAM_BACK"),
    ("image-not-string", "/plan", _set("images.CAM_FRONT", [1, 2, 3]), "images.CAM_FRONT"),
    ("speed-nan-string", "/plan", _set("ego.speed_mps", "NaN"), "ego.speed_mps"),
    ("speed-out-of-range", "/plan", _set("ego.speed_mps", 500.0), "ego.speed_mps"),
    ("speed-wrong-type", "/plan", _set("ego.speed_mps", "fast"), "ego.speed_mps"),
    ("speed-bool", "/plan", _set("ego.speed_mps", True), "ego.speed_mps"),
    ("steer-out-of-range", "/plan", _set("ego.steer", 1.5), "ego.steer"),
    ("accel-wrong-length", "/plan", _set("ego.accel_mps2", [0.0, 0.0, 0.0]), "ego.accel_mps2"),
    ("ego-source-unknown", "/plan", _set("ego.source", "lidar"), "ego.source"),
    ("ego-missing", "/plan", _delete("ego"), "ego"),
    ("ego-unknown-field", "/plan", _set("ego.velocity", 3.0), "ego.velocity"),
    ("instruction-too-long", "/plan", _set("instruction", "go " * 200), "instruction"),
    ("instruction-wrong-type", "/plan", _set("instruction", 42), "instruction"),
    ("instruction-empty", "/plan", _set("instruction", ""), "instruction"),
    ("unknown-field", "/plan", _set("speed", 3.0), "speed"),
    ("command-unknown", "/plan", _set("command", "UP"), "command"),
    ("history-wrong-rows", "/plan", _set("history", [[0.0, 0.0, 0.0]] * 3), "history"),
    ("history-wrong-cols", "/plan", _set("history", [[0.0, 0.0]] * 4), "history.0"),
    ("history-not-list", "/plan", _set("history", "4x3"), "history"),
    ("timestamp-negative", "/plan", _set("timestamp_s", -1.0), "timestamp_s"),
    ("intrinsics-not-pinhole", "/plan", _bad_intrinsics, "intrinsics.CAM_FRONT"),
    ("extrinsics-not-rigid", "/plan", _bad_extrinsics, "extrinsics.CAM_BACK"),
    ("principal-point-outside", "/plan", _principal_point_outside, "intrinsics.CAM_FRONT_RIGHT"),
    ("question-too-long", "/explain", _set("question", "why? " * 101), "question"),
    ("question-wrong-type", "/explain", _set("question", ["why"]), "question"),
    ("question-blank", "/explain", _set("question", "   "), "question"),
    ("instruction-blank", "/plan", _set("instruction", " \t "), "instruction"),
    ("question-on-plan", "/plan", _set("question", "why?"), "question"),
]


@pytest.mark.parametrize(("path", "mutate", "field"), [c[1:] for c in BAD_JSON], ids=[c[0] for c in BAD_JSON])
def test_bad_request_names_the_field(server, good_body, path, mutate, field):
    body = copy.deepcopy(good_body)
    mutate(body)
    r = _post(server, path, body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["error"] == "validation_error"
    assert field in [f["field"] for f in err["fields"]], err
    assert field in err["message"]
    assert len(r.content) < 20_000  # images are never echoed back


def _raw(good_body: dict, replace: tuple[str, str]) -> str:
    text = json.dumps(good_body)
    assert replace[0] in text
    return text.replace(replace[0], replace[1], 1)


BAD_RAW = [  # (id, raw body builder, expected field)
    ("empty-body", lambda b: "", "body"),
    ("invalid-json", lambda b: '{"images": {', "body"),
    ("json-array", lambda b: "[1, 2, 3]", "body"),
    ("speed-huge-number", lambda b: _raw(b, ('"speed_mps": 5.0', '"speed_mps": 1e999')), "ego.speed_mps"),
    ("speed-nan-literal", lambda b: _raw(b, ('"speed_mps": 5.0', '"speed_mps": NaN')), "ego.speed_mps"),
    ("steer-infinity-literal", lambda b: _raw(b, ('"steer": 0.0', '"steer": -Infinity')), "ego.steer"),
]


@pytest.mark.parametrize(("build", "field"), [c[1:] for c in BAD_RAW], ids=[c[0] for c in BAD_RAW])
def test_bad_raw_body_names_the_field(server, good_body, build, field):
    r = _post(server, "/plan", content=build(good_body))
    assert r.status_code == 422, r.text
    assert field in [f["field"] for f in r.json()["fields"]]


def test_body_too_large_is_413(server, good_body):
    body = dict(good_body, instruction="x" * (1024 * 1024 + 10))
    r = _post(server, "/plan", body)
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large" and r.json()["fields"][0]["field"] == "body"


def test_policy_error_is_500_and_service_stays_up(server, good_body):
    before = httpx.get(server.url + "/health").json()
    r = _post(server, "/plan", dict(good_body, instruction=FAIL_INSTRUCTION))
    assert r.status_code == 500
    assert r.json()["error"] == "policy_error" and "simulated failure inside the model" in r.json()["message"]
    health = httpx.get(server.url + "/health").json()
    assert health["policy_errors"] == before["policy_errors"] + 1
    _assert_good(server, good_body)


def test_still_up_after_bad_requests(server, good_body):
    before = httpx.get(server.url + "/health").json()
    for content in ("", "{", "[]", json.dumps({"images": {}})):
        assert _post(server, "/plan", content=content).status_code == 422
    after = httpx.get(server.url + "/health").json()
    assert after["requests_rejected"] == before["requests_rejected"] + 4
    out = _assert_good(server, good_body)
    assert len(out["plan"]["trajectory"]["xy"]) == 6
    assert httpx.get(server.url + "/nothing-here").status_code == 404


def test_encode_image_matches_wire_format(make_obs):
    obs = make_obs()
    body = request_from_observation(obs)
    assert body["images"]["CAM_FRONT"] == encode_image(obs.images["CAM_FRONT"])
    assert len(body["intrinsics"]) == 6 and np.array(body["extrinsics"]["CAM_BACK"]).shape == (4, 4)


class BlockingPolicy:
    """Holds the model (``entered`` is set) until ``release`` is set, then fails or plans 2 m per step."""

    def __init__(self, fail: bool) -> None:
        self.entered, self.release, self.fail = threading.Event(), threading.Event(), fail

    def reset(self) -> None:
        pass

    def predict(self, obs):
        self.entered.set()
        self.release.wait(10)
        if self.fail:
            raise RuntimeError("released")
        from drive_vla.types import Plan, Trajectory

        return Plan(trajectory=Trajectory(np.arange(1, 7, dtype=np.float32)[:, None] * np.float32([[2.0, 0.0]])))


def test_health_answers_while_the_model_is_busy(good_body):
    from drive_vla.serve import BackgroundServer, create_app

    policy = BlockingPolicy(fail=True)
    entered, release = policy.entered, policy.release

    with BackgroundServer(create_app(policy, model_name="blocking")) as srv:
        worker = threading.Thread(target=lambda: httpx.post(srv.url + "/plan", json=good_body, timeout=30))
        worker.start()
        try:
            assert entered.wait(10)
            r = httpx.get(srv.url + "/health", timeout=2)
            assert r.status_code == 200 and r.json()["model"] == "blocking"
            r = httpx.post(srv.url + "/explain", json=good_body, timeout=5)  # no explain(): 501, not a hang
            assert r.status_code == 501 and r.json()["error"] == "not_supported"
        finally:
            release.set()
            worker.join(10)


def test_a_full_wait_queue_answers_503_with_retry_after_and_a_long_wait_times_out(good_body):
    """One request holds the model; with max_waiting=1 one more may wait, the next is refused at once, and
    the waiting one is refused when its wait times out. /health counts them; the server keeps serving."""
    from drive_vla.serve import BackgroundServer, create_app

    policy = BlockingPolicy(fail=False)
    entered, release = policy.entered, policy.release
    app = create_app(policy, model_name="blocking", max_waiting=1, wait_timeout_s=1.0)
    with BackgroundServer(app) as srv:
        results: dict[str, httpx.Response] = {}

        def post(key: str) -> None:
            results[key] = httpx.post(srv.url + "/plan", json=good_body, timeout=30)

        holder = threading.Thread(target=post, args=("holder",))
        holder.start()
        try:
            assert entered.wait(10)
            waiter = threading.Thread(target=post, args=("waiter",))
            waiter.start()
            deadline = threading.Event()
            while app.state.service._waiting < 1 and not deadline.wait(0.01):
                pass
            refused = httpx.post(srv.url + "/plan", json=good_body, timeout=5)
            assert refused.status_code == 503 and refused.json()["error"] == "busy"
            assert int(refused.headers["Retry-After"]) >= 1
            waiter.join(10)
            assert results["waiter"].status_code == 503 and "waited 1 s" in results["waiter"].json()["message"]
        finally:
            release.set()
            holder.join(10)
        assert results["holder"].status_code == 200
        health = httpx.get(srv.url + "/health", timeout=5).json()
        assert health["requests_busy"] == 2 and health["requests_served"] == 1
        assert httpx.post(srv.url + "/plan", json=good_body, timeout=10).status_code == 200

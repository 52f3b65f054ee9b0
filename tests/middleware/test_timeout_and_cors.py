"""Per-request timeout (504) and CORS (off unless origins are set), on one real server."""

import httpx
import pytest

from tests import onnx_models

ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.slow(), repo, "slow")
    return repo


@pytest.fixture(scope="module")
def url(repo, module_server):
    return module_server(repo, args=["--request-timeout-s", "0.25", "--cors-allow-origins", ORIGIN])


def slow_infer(url: str, iterations: int) -> httpx.Response:
    body = {"inputs": [{"name": "iterations", "shape": [], "datatype": "INT64", "data": [iterations]}]}
    return httpx.post(f"{url}/v2/models/slow/infer", json=body, timeout=60)


def test_a_request_over_the_timeout_is_504(url):
    # 5,000 matmuls of 256 x 256 take seconds here (0.85 ms each), over a second on any CPU:
    # several times the 0.25 s allowed. Not more: the abandoned run holds a core until it
    # ends, and the server's shutdown waits for it (20,000 was 17 s of CPU and a killed server).
    response = slow_infer(url, 5_000)
    assert response.status_code == 504
    assert response.json() == {"error": "request did not complete within 0.25 s"}


def test_a_request_within_the_timeout_answers(url):
    response = slow_infer(url, 1)
    assert response.status_code == 200 and response.json()["outputs"][0]["name"] == "y"


def test_cors_preflight_and_response_headers_for_an_allowed_origin(url):
    preflight = httpx.options(f"{url}/v2/models/slow/infer", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    response = httpx.get(f"{url}/v2/models/slow", headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


def test_cors_says_nothing_to_other_origins(url):
    response = httpx.get(f"{url}/v2/models/slow", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_cors_is_off_by_default(repo, serve_repository):
    url = serve_repository(repo)
    response = httpx.get(f"{url}/v2/models/slow", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers
    preflight = httpx.options(f"{url}/v2/models/slow/infer", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers

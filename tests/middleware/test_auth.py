"""API keys against a real server, through tritonclient's headers and plain httpx."""

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from service.middleware.auth import ADMIN_KEY_NEEDED, CONTROL_DISABLED
from tests import onnx_models
from tests.middleware.access_log import line_for, log_path

API_KEY, OTHER_API_KEY, ADMIN_KEY = "k-infer-7f3a", "k-infer-2b9c", "k-admin-51d0"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.identity("FP32"), repo, "ident")
    return repo


@pytest.fixture(scope="module")
def url(repo, module_server):
    """Inference and admin keys set; the access log on, at info, so the test can read every line."""
    return module_server(repo, env={
        "MODELSERVE_API_KEYS": f"{API_KEY},{OTHER_API_KEY}",
        "MODELSERVE_ADMIN_KEYS": ADMIN_KEY,
        "MODELSERVE_LOG_LEVEL": "info",
        "MODELSERVE_ACCESS_LOG": "true",
    })


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def passed_auth(response: httpx.Response) -> bool:
    """The request reached its route: whatever the route answered, auth did not refuse it."""
    if response.status_code == 401:
        return False
    return response.status_code != 403 or response.json()["error"] not in (ADMIN_KEY_NEEDED, CONTROL_DISABLED)


def triton_infer(url: str, headers: dict[str, str] | None) -> np.ndarray:
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        tensor = triton.InferInput("input", [2, 3], "FP32")
        tensor.set_data_from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3), binary_data=True)
        return client.infer("ident", [tensor], headers=headers).as_numpy("output")
    finally:
        client.close()


@pytest.mark.parametrize("key", [API_KEY, OTHER_API_KEY, ADMIN_KEY])
def test_tritonclient_with_a_right_key_infers(url, key):
    np.testing.assert_array_equal(triton_infer(url, bearer(key)), np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize("headers", [None, bearer("wrong"), {"Authorization": f"Basic {API_KEY}"}, bearer("")])
def test_tritonclient_without_a_right_key_is_refused(url, headers):
    with pytest.raises(InferenceServerException) as raised:
        triton_infer(url, headers)
    assert "401" in str(raised.value.status()) or "API key" in raised.value.message()


@pytest.mark.parametrize("path", ["/v2/models/ident", "/v2/models/ident/ready", "/v2/models/ident/versions/1",
                                  "/v2/models/nonexistent", "/v1/models/ident"])
def test_model_routes_need_a_key(url, path):
    response = httpx.get(url + path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "API key" in response.json()["error"]
    assert httpx.get(url + path, headers=bearer("nope")).json() == {"error": "invalid API key"}


def test_scheme_is_case_insensitive(url):
    response = httpx.get(url + "/v2/models/ident", headers={"Authorization": f"bearer {API_KEY}"})
    assert response.status_code == 200 and response.json()["name"] == "ident"


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/v2", "/metrics", "/", "/web/app.js"])
def test_probes_and_metrics_stay_open(url, path):
    assert httpx.get(url + path).status_code == 200


def test_model_control_needs_the_admin_key(url):
    load = f"{url}/v2/repository/models/ident/load"
    assert httpx.post(load).status_code == 401
    refused = httpx.post(load, headers=bearer(API_KEY))
    assert refused.status_code == 403 and refused.json() == {"error": ADMIN_KEY_NEEDED}
    assert passed_auth(httpx.post(load, headers=bearer(ADMIN_KEY)))
    index = f"{url}/v2/repository/index"
    assert httpx.post(index, headers=bearer(API_KEY)).status_code == 403
    assert passed_auth(httpx.post(index, headers=bearer(ADMIN_KEY)))


def test_keys_never_reach_the_log(url, repo):
    httpx.get(url + "/v2/models/ident", headers={**bearer(API_KEY), "X-Request-ID": "with-key"})
    httpx.get(url + "/v2/models/ident", headers={**bearer("k-wrong-guess-0000"), "X-Request-ID": "bad-key"})
    path = log_path(repo, url)
    # The requests were logged...
    assert line_for(path, "with-key")["status"] == 200 and line_for(path, "bad-key")["status"] == 401
    log = path.read_text()
    for secret in (API_KEY, OTHER_API_KEY, ADMIN_KEY, "k-wrong-guess-0000"):
        assert secret not in log  # ...but not their keys


def test_model_control_is_off_without_admin_keys(repo, serve_repository):
    url = serve_repository(repo)  # no keys at all: inference is open, control is not
    assert httpx.get(url + "/v2/models/ident").status_code == 200
    for action in ("load", "unload"):
        refused = httpx.post(f"{url}/v2/repository/models/ident/{action}")
        assert refused.status_code == 403 and refused.json() == {"error": CONTROL_DISABLED}
    assert passed_auth(httpx.post(f"{url}/v2/repository/index"))


def test_model_control_can_be_allowed_explicitly(repo, serve_repository):
    url = serve_repository(repo, args=["--allow-model-control-without-admin-keys"])
    assert passed_auth(httpx.post(f"{url}/v2/repository/models/ident/load"))


def test_metrics_can_require_a_key(repo, serve_repository):
    url = serve_repository(repo, env={"MODELSERVE_ADMIN_KEYS": ADMIN_KEY, "MODELSERVE_METRICS_REQUIRE_KEY": "true"})
    assert httpx.get(url + "/metrics").status_code == 401
    assert httpx.get(url + "/metrics", headers=bearer(ADMIN_KEY)).status_code == 200
    assert httpx.get(url + "/v2/models/ident").status_code == 200  # no inference keys: open
    assert httpx.get(url + "/v2/health/ready").status_code == 200

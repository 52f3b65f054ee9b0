"""One JSON line per request with its id, model, version, status and duration; no bodies. Off
by default, where every answer still carries its X-Request-ID."""

import json
import re
import time

import httpx
import pytest

from tests import onnx_models
from tests.middleware.access_log import access_lines, line_for, log_path


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_server):
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.identity("BYTES"), repo, "text")
    url = module_server(repo, env={"MODELSERVE_LOG_LEVEL": "info"}, args=["--access-log"])
    return url, log_path(repo, url)


def test_every_log_line_is_json(server):
    url, path = server
    httpx.get(url + "/v2/health/live", headers={"X-Request-ID": "live-1"})
    line_for(path, "live-1")
    lines = path.read_text().splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)  # uvicorn's own too


def test_an_inference_is_logged_with_its_id_model_and_status(server):
    url, path = server
    body = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "BYTES", "data": ["s3cr3t-payload", "b", "c"]}]}
    response = httpx.post(f"{url}/v2/models/text/versions/1/infer", json=body, headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "trace-42"
    line = line_for(path, "trace-42")
    assert {k: line[k] for k in ("method", "path", "model", "version", "status", "level")} == {
        "method": "POST", "path": "/v2/models/text/versions/1/infer", "model": "text", "version": "1",
        "status": 200, "level": "info",
    }
    assert line["duration_ms"] >= 0
    assert "s3cr3t-payload" not in path.read_text()


def test_an_id_is_made_when_the_client_sends_none(server):
    url, path = server
    first, second = httpx.get(url + "/v2/models/text"), httpx.get(url + "/v2/models/text")
    ids = [r.headers["x-request-id"] for r in (first, second)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and ids[0] != ids[1]
    assert line_for(path, ids[0])["model"] == "text"


@pytest.mark.parametrize("given", [b"x" * 500, b"tab\there", "naïve".encode()])
def test_an_unsafe_client_id_is_replaced(server, given):
    response = httpx.get(server[0] + "/v2/health/live", headers={"X-Request-ID": given})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_errors_are_logged_with_their_status_and_model(server):
    url, path = server
    httpx.get(url + "/v2/models/missing/versions/3", headers={"X-Request-ID": "e-404"})
    line = line_for(path, "e-404")
    assert (line["status"], line["model"], line["version"]) == (404, "missing", "3")
    response = httpx.post(url + "/v2/models/text/infer", content=b"{not json", headers={"X-Request-ID": "e-400"})
    assert response.status_code == 400 and line_for(path, "e-400")["status"] == 400


def test_lines_keep_their_shape_whatever_the_id_and_path_hold(server):
    # A quote and a backslash are printable ASCII, so a client's id keeps them; an unknown
    # model's name may hold anything its path can carry.
    url, path = server
    request_id = 'q"uote\\back'
    response = httpx.post(url + "/v2/models/na\u00efve\"x/versions/2/infer", content=b"{}", headers={"X-Request-ID": request_id})
    assert response.status_code == 404
    line = line_for(path, request_id)
    assert list(line) == ["time", "level", "logger", "message", "request_id", "method", "path", "model", "version",
                          "status", "duration_ms"]
    assert (line["model"], line["version"], line["status"]) == ("na\u00efve\"x", "2", 404)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert isinstance(line["duration_ms"], float) and round(line["duration_ms"], 3) == line["duration_ms"]


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory, module_server):
    """The default settings: no access log."""
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.identity("FP32"), repo, "m")
    url = module_server(repo, env={"MODELSERVE_LOG_LEVEL": "info"})
    return url, log_path(repo, url)


def test_by_default_no_line_is_written_and_every_answer_has_its_id(quiet_server):
    url, path = quiet_server
    body = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    answers = [
        httpx.post(f"{url}/v2/models/m/infer", json=body, headers={"X-Request-ID": "quiet-1"}),  # the fast path
        httpx.post(f"{url}/v2/models/m/infer?x=1", json=body),  # a query string: the ASGI route
        httpx.post(f"{url}/v2/models/m/infer", content=b"{not json"),  # a 400 on the fast path
        httpx.get(f"{url}/v2/models/missing"),  # a 404 through the app
    ]
    assert [a.status_code for a in answers] == [200, 200, 400, 404]
    assert answers[0].headers["x-request-id"] == "quiet-1"
    ids = [a.headers["x-request-id"] for a in answers[1:]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == 3
    time.sleep(0.3)  # past the access log's 50 ms batch, were it on
    assert access_lines(path) == []
    assert "Application startup complete" in path.read_text()  # other info lines still are

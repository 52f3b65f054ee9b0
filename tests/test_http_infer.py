"""V2 infer on the HTTP protocol's fast path (service.http_infer): HTTP/1.1 framing, keep-alive,
pipelining, and what the middlewares decide, through a real server on 127.0.0.1."""

import json
import re
import socket
import time

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests import onnx_models
from tests.middleware import raw_http
from tests.middleware.access_log import line_for, log_path
from tests.middleware.raw_http import Reader

KEY = "fast-path-key"
INFER = "/v2/models/m/infer"
LIMIT = 4096  # --max-request-bytes (its floor is 1024)


def body_for(value: float) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [value]}]}).encode()


def request(value: float, path: str = INFER, version: str = "1.1", **headers: str) -> bytes:
    body = body_for(value)
    head = {"Host": "test", "Authorization": f"Bearer {KEY}", "Content-Type": "application/json",
            "Content-Length": str(len(body)), **{k.replace("_", "-"): v for k, v in headers.items()}}
    lines = [f"POST {path} HTTP/{version}", *(f"{k}: {v}" for k, v in head.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def answer(body: bytes) -> float:
    [output] = json.loads(body)["outputs"]
    return output["data"][0]


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_server):
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.add_constant(1.0), repo, "m")
    url = module_server(repo, env={"MODELSERVE_LOG_LEVEL": "info"},
                        args=["--access-log", "--api-keys", KEY, "--max-request-bytes", str(LIMIT)])
    return url, log_path(repo, url)


@pytest.fixture
def connection(server):
    sock = raw_http.connect(server[0], timeout=10)
    yield sock, Reader(sock)
    sock.close()


def test_tritonclient_infers_json_and_binary(server):
    client = triton.InferenceServerClient(server[0].removeprefix("http://"))
    try:
        for binary in (False, True):
            tensor = triton.InferInput("x", [2, 1], "FP32")
            tensor.set_data_from_numpy(np.array([[1.0], [2.5]], np.float32), binary_data=binary)
            output = triton.InferRequestedOutput("y", binary_data=binary)
            result = client.infer("m", [tensor], outputs=[output], headers={"Authorization": f"Bearer {KEY}"})
            np.testing.assert_array_equal(result.as_numpy("y"), [[2.0], [3.5]])
    finally:
        client.close()


def test_pipelined_requests_are_answered_in_order(connection):
    sock, reader = connection
    health = b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n"  # an ASGI route between them
    sock.sendall(request(1.0) + request(2.0) + health + request(3.0) + request(4.0, path="/v2/models/m/versions/1/infer"))
    answers = [reader.response() for _ in range(5)]
    assert [status for status, _, _ in answers] == [200] * 5
    assert [answer(body) for i, (_, _, body) in enumerate(answers) if i != 2] == [2.0, 3.0, 4.0, 5.0]
    assert json.loads(answers[2][2]) == {"live": True}


def test_a_request_in_many_small_writes(connection):
    sock, reader = connection
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = request(7.0)
    for i in range(0, len(data), 9):  # head and body cut anywhere, each piece its own segment
        sock.sendall(data[i:i + 9])
        time.sleep(0.002)
    status, _, body = reader.response()
    assert status == 200 and answer(body) == 8.0


def test_keep_alive_serves_many_requests_on_one_connection(connection):
    sock, reader = connection
    for value in range(5):
        sock.sendall(request(float(value)))
        status, headers, body = reader.response()
        assert status == 200 and answer(body) == value + 1 and headers.get("connection") != "close"


@pytest.mark.parametrize("asked", [{"Connection": "close"}, {"version": "1.0"}], ids=["connection-close", "http-1.0"])
def test_an_answer_then_a_close_when_asked(connection, asked):
    sock, reader = connection
    sock.sendall(request(1.0, **asked))
    status, headers, body = reader.response()
    assert status == 200 and answer(body) == 2.0 and headers["connection"] == "close"
    assert reader.closed()


def test_a_declared_length_over_the_limit_is_413(connection):
    sock, reader = connection
    head = f"POST {INFER} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {LIMIT + 1}\r\n\r\n"
    sock.sendall(head.encode())  # no body: refused on the head alone
    status, _, body = reader.response()
    assert status == 413 and re.search(rf"\b{LIMIT}\b", json.loads(body)["error"])


def test_a_body_without_content_length_is_served(connection):
    sock, reader = connection
    body = body_for(5.0)
    raw_http.send_head(sock, "POST", INFER, {"Authorization": f"Bearer {KEY}", "Transfer-Encoding": "chunked"})
    raw_http.send_chunk(sock, body[:10])
    raw_http.send_chunk(sock, body[10:])
    sock.sendall(b"0\r\n\r\n")
    status, _, answered = reader.response()
    assert status == 200 and answer(answered) == 6.0


def test_a_missing_or_wrong_key_is_refused(server, connection):
    sock, reader = connection
    for authorization in ("", "Bearer wrong"):
        sock.sendall(request(1.0, Authorization=authorization) if authorization else
                     request(1.0).replace(f"Authorization: Bearer {KEY}\r\n".encode(), b""))
        status, headers, body = reader.response()
        assert status == 401 and headers["www-authenticate"] == "Bearer" and "API key" in json.loads(body)["error"]
    client = triton.InferenceServerClient(server[0].removeprefix("http://"))
    tensor = triton.InferInput("x", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[1.0]], np.float32))
    with pytest.raises(InferenceServerException, match="API key"):
        client.infer("m", [tensor])
    client.close()


def test_errors_come_from_the_one_renderer(connection):
    sock, reader = connection
    sock.sendall(request(1.0, path="/v2/models/nope/infer"))
    status, headers, body = reader.response()
    assert status == 404 and headers["content-type"] == "application/json" and "nope" in json.loads(body)["error"]
    bad = b'{"inputs": [}'
    sock.sendall(f"POST {INFER} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {len(bad)}\r\n\r\n".encode() + bad)
    status, _, body = reader.response()
    assert status == 400 and "malformed JSON" in json.loads(body)["error"]
    sock.sendall(request(2.0))  # the connection carries on
    assert answer(reader.response()[2]) == 3.0


def test_the_request_id_is_echoed_and_logged(server, connection):
    path = server[1]
    sock, reader = connection
    sock.sendall(request(1.0, X_Request_ID="fast-7", path="/v2/models/m/versions/1/infer"))
    status, headers, _ = reader.response()
    assert status == 200 and headers["x-request-id"] == "fast-7"
    line = line_for(path, "fast-7")
    assert set(line) == {"time", "level", "logger", "message", "request_id", "method", "path", "model", "version",
                         "status", "duration_ms"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert {k: line[k] for k in ("level", "logger", "message", "method", "path", "model", "version", "status")} == {
        "level": "info", "logger": "modelserve.access", "message": "request", "method": "POST",
        "path": "/v2/models/m/versions/1/infer", "model": "m", "version": "1", "status": 200,
    }
    assert 0 <= line["duration_ms"] < 10_000
    sock.sendall(request(1.0))  # none given: one is made
    assert re.fullmatch(r"[0-9a-f]{32}", reader.response()[1]["x-request-id"])


def test_an_infer_from_a_browser_gets_its_cors_headers(tmp_path, serve_repository):
    onnx_models.save(onnx_models.add_constant(1.0), tmp_path / "repo", "m")
    url = serve_repository(tmp_path / "repo", args=["--cors-allow-origins", "https://app.example"])
    sock = raw_http.connect(url, timeout=10)
    reader = Reader(sock)
    try:
        sock.sendall(request(1.0, Origin="https://app.example"))  # CORS's answer, by CORS's code
        status, headers, body = reader.response()
        assert status == 200 and answer(body) == 2.0
        assert headers["access-control-allow-origin"] == "https://app.example"
        sock.sendall(request(2.0))  # no Origin: nothing for CORS to say
        status, headers, body = reader.response()
        assert status == 200 and answer(body) == 3.0 and "access-control-allow-origin" not in headers
    finally:
        sock.close()

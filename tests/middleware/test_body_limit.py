"""413 on every route, before the body is read: declared lengths and chunked bodies alike."""

import json

import httpx
import pytest

from tests import onnx_models
from tests.middleware import raw_http

LIMIT = 4096


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.identity("FP32"), repo, "ident")
    return module_server(repo, args=["--max-request-bytes", str(LIMIT)])


def infer_body(rows: int) -> bytes:
    data = [[0.5, 1.5, 2.5]] * rows
    return json.dumps({"inputs": [{"name": "input", "shape": [rows, 3], "datatype": "FP32", "data": data}]}).encode()


@pytest.mark.parametrize("path", ["/v2/models/ident/infer", "/v2/models/ident", "/v2/health/live",
                                  "/v2/repository/index", "/no/such/route"])
def test_declared_length_over_the_limit_is_refused_before_the_body_is_sent(url, path):
    with raw_http.connect(url) as sock:
        # Declare 1 GB and send none of it: the answer must come without waiting for the body.
        raw_http.send_head(sock, "POST", path, {"Content-Type": "application/json", "Content-Length": str(2**30)})
        status, headers, body = raw_http.read_response(sock)
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": f"request body of {2**30} bytes is over the limit of {LIMIT} bytes"}


def test_chunked_body_is_refused_at_the_chunk_that_crosses_the_limit(url):
    # (A route that never reads its body answers without it; only a reader can cross the limit.)
    with raw_http.connect(url) as sock:
        raw_http.send_head(sock, "POST", "/v2/models/ident/infer", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        raw_http.send_chunk(sock, b" " * (LIMIT // 2))
        raw_http.send_chunk(sock, b" " * LIMIT)  # no final chunk: the rest never comes
        status, _, body = raw_http.read_response(sock)
    assert status == 413
    assert json.loads(body) == {"error": f"request body is over the limit of {LIMIT} bytes"}


def test_chunked_body_over_the_limit_through_httpx(url):
    def chunks():
        for _ in range(4):
            yield b" " * (LIMIT // 2)  # 2 x LIMIT in all

    response = httpx.post(f"{url}/v2/models/ident/infer", content=chunks())
    assert response.status_code == 413 and "over the limit" in response.json()["error"]


def test_bodies_within_the_limit_pass(url):
    body = infer_body(40)
    assert len(body) < LIMIT
    response = httpx.post(f"{url}/v2/models/ident/infer", content=body)
    assert response.status_code == 200 and response.json()["outputs"][0]["shape"] == [40, 3]

    def chunks():  # the same body, chunked: counted, and under the limit
        yield body[:1000]
        yield body[1000:]

    response = httpx.post(f"{url}/v2/models/ident/infer", content=chunks())
    assert response.status_code == 200 and response.json()["outputs"][0]["data"][:3] == [0.5, 1.5, 2.5]


def test_an_infer_body_over_the_limit_is_413_through_httpx(url):
    body = infer_body(300)
    assert len(body) > LIMIT
    response = httpx.post(f"{url}/v2/models/ident/infer", content=body)
    assert response.status_code == 413

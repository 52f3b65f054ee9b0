"""generate_stream on the HTTP protocol's fast path (service.http_stream): the same events,
headers and errors as the ASGI route, HTTP/1.1 chunked framing, keep-alive and pipelining, a
client that leaves, the deadline and the access log, through a real server on 127.0.0.1 with the
trained translation model."""

import gzip
import json
import re
import shutil
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server
from tests.middleware import raw_http
from tests.middleware.access_log import line_for, log_path
from tests.middleware.raw_http import Reader
from tests.test_shutdown import wait_refused

ROOT = Path(__file__).resolve().parents[1]
MODEL = "en-fr-numbers"
TRAINED = ROOT / "models" / MODEL
KEY = "stream-key"
STREAM = f"/v2/models/{MODEL}/generate_stream"
# A query string takes a request off the fast path (http_infer._NOT_PLAIN): the ASGI route
# answers it, so each check can compare the two.
ASGI = STREAM + "?via=asgi"

pytestmark = pytest.mark.skipif(not TRAINED.is_dir(), reason="models/en-fr-numbers is not trained")


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_server):
    repo = tmp_path_factory.mktemp("stream") / "models"
    shutil.copytree(TRAINED, repo / MODEL)
    url = module_server(repo, env={"MODELSERVE_LOG_LEVEL": "info"},
                        args=["--access-log", "--api-keys", KEY, "--request-timeout-s", "2"])
    return url, log_path(repo, url)


@pytest.fixture
def connection(server):
    sock = raw_http.connect(server[0], timeout=20)
    yield sock, Reader(sock)
    sock.close()


def request(text: str | None = "twelve", path: str = STREAM, body: bytes | None = None, version: str = "1.1",
            **headers: str) -> bytes:
    if body is None:
        body = json.dumps({"text_input": text}).encode()
    head = {"Host": "test", "Authorization": f"Bearer {KEY}", "Content-Type": "application/json",
            "Content-Length": str(len(body)), **{k.replace("_", "-"): v for k, v in headers.items()}}
    lines = [f"POST {path} HTTP/{version}", *(f"{k}: {v}" for k, v in head.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def events(body: bytes) -> list[dict]:
    assert body.endswith(b"\n\n")
    parts = body[:-2].split(b"\n\n")
    assert all(p.startswith(b"data: ") for p in parts), body
    return [json.loads(p.removeprefix(b"data: ")) for p in parts]


SSE_HEADERS = ("content-type", "cache-control", "x-accel-buffering")


@pytest.mark.parametrize("parameters", [{}, {"attention": True}, {"max_tokens": 3}, {"temperature": 0.8, "seed": 5},
                                        {"beam_width": 3}, {"stop": "mille"}],
                         ids=["greedy", "attention", "max-tokens", "sampled", "beam", "stop"])
def test_the_fast_path_streams_what_the_asgi_route_streams(connection, parameters):
    sock, reader = connection
    body = json.dumps({"text_input": "four hundred thousand and one", "parameters": parameters}).encode()
    answers = []
    for path in (STREAM, ASGI):
        sock.sendall(request(path=path, body=body, X_Request_ID=f"same-{len(answers)}"))
        answers.append(reader.response())
    (fast_status, fast_headers, fast_body), (status, headers, asgi_body) = answers
    assert fast_status == status == 200
    assert fast_headers["content-type"] == "text/event-stream; charset=utf-8"
    assert {h: fast_headers[h] for h in SSE_HEADERS} == {h: headers[h] for h in SSE_HEADERS}
    assert (fast_headers["x-request-id"], headers["x-request-id"]) == ("same-0", "same-1")
    assert fast_headers["transfer-encoding"] == "chunked" and "content-length" not in fast_headers
    assert fast_body == asgi_body  # byte for byte: events, their order and their bytes
    streamed = events(fast_body)
    assert streamed[-1]["event"] == "done" and streamed[-1]["output"] == "".join(e["text_output"] for e in streamed)


def test_errors_are_the_asgi_routes_and_the_connection_carries_on(connection):
    sock, reader = connection
    cases = [
        ({"path": "/v2/models/nope/generate_stream"}, 404, "nope"),
        ({"body": b'{"text_input": '}, 400, "malformed JSON"),
        ({"body": b'["twelve"]'}, 400, "must be a JSON object"),
        ({"text": "twelve apples"}, 400, "apples"),
        ({"body": b'{"text_input": "six", "parameters": {"beam_width": 99}}'}, 400, "beam_width"),
        ({"body": b'{"text_input": "six", "colour": "red"}'}, 400, "colour"),
    ]
    for case, expected, named in cases:
        answers = []
        for fast in (True, False):
            path = case.get("path", STREAM)
            sock.sendall(request(**{**case, "path": path if fast else path + "?via=asgi"}))
            answers.append(reader.response())
        (status, headers, body), (asgi_status, _, asgi_body) = answers
        assert status == asgi_status == expected, (case, body)
        assert headers["content-type"] == "application/json" and body == asgi_body
        assert named in json.loads(body)["error"]
    sock.sendall(request("six"))
    assert events(reader.response()[2])[-1]["output"] == "six"


def test_streams_keep_alive_and_pipeline_in_order(connection):
    sock, reader = connection
    health = b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n"  # an ASGI route between them
    sock.sendall(request("twelve") + request("eighty") + health + request("six") + request("twelve", path=ASGI))
    answers = [reader.response() for _ in range(5)]
    assert [status for status, _, _ in answers] == [200] * 5
    assert [events(body)[-1]["output"] for i, (_, _, body) in enumerate(answers) if i != 2] == [
        "douze", "quatre-vingts", "six", "douze"]
    assert json.loads(answers[2][2]) == {"live": True}
    assert all(headers.get("connection") != "close" for _, headers, _ in answers)


@pytest.mark.parametrize("asked", [{"Connection": "close"}, {"version": "1.0"}], ids=["connection-close", "http-1.0"])
def test_a_stream_then_a_close_when_asked(connection, asked):
    sock, reader = connection
    sock.sendall(request("twelve", **asked))
    status, _headers, body = reader.response()  # HTTP/1.0: no chunks, the body ends at the close
    assert status == 200 and events(body)[-1]["output"] == "douze"
    assert reader.closed()


def test_a_compressed_body_and_a_body_in_pieces(connection):
    sock, reader = connection
    packed = gzip.compress(json.dumps({"text_input": "eighty"}).encode())
    sock.sendall(request(body=packed, Content_Encoding="gzip"))
    assert events(reader.response()[2])[-1]["output"] == "quatre-vingts"
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = request("six")
    for i in range(0, len(data), 7):  # head and body cut anywhere
        sock.sendall(data[i:i + 7])
        time.sleep(0.002)
    assert events(reader.response()[2])[-1]["output"] == "six"


def test_a_missing_key_is_refused_before_any_stream(connection):
    sock, reader = connection
    sock.sendall(request("six").replace(f"Authorization: Bearer {KEY}\r\n".encode(), b""))
    status, headers, body = reader.response()
    assert status == 401 and headers["www-authenticate"] == "Bearer" and "API key" in json.loads(body)["error"]


def test_a_body_that_never_comes_is_a_408_and_a_close(connection):
    sock, reader = connection
    sock.sendall(request("six")[:-5])  # the head and most of the body; the rest never comes
    started = time.monotonic()
    status, headers, body = reader.response()
    assert status == 408 and "request body not received within 2 s" in json.loads(body)["error"]
    assert 1.5 < time.monotonic() - started < 10
    assert headers["connection"] == "close" and reader.closed()


def test_the_stream_is_logged_with_its_request_id(server, connection):
    sock, reader = connection
    sock.sendall(request("twelve", X_Request_ID="stream-9"))
    status, headers, _ = reader.response()
    assert status == 200 and headers["x-request-id"] == "stream-9"
    line = line_for(server[1], "stream-9")
    assert {k: line[k] for k in ("method", "path", "model", "status")} == {
        "method": "POST", "path": STREAM, "model": MODEL, "status": 200}
    sock.sendall(request("six"))  # none given: one is made
    assert re.fullmatch(r"[0-9a-f]{32}", reader.response()[1]["x-request-id"])


def test_a_finished_stream_counts_as_a_success(server, connection):
    url = server[0]
    headers = {"Authorization": f"Bearer {KEY}"}
    before = [_series(url, headers, "modelserve_inference_request_success_total"),
              _series(url, headers, "modelserve_inference_request_failure_total", 'reason="cancelled"')]
    sock, reader = connection
    for path in (STREAM, ASGI):
        sock.sendall(request("twelve", path=path))
        assert events(reader.response()[2])[-1]["output"] == "douze"
    after = [_series(url, headers, "modelserve_inference_request_success_total"),
             _series(url, headers, "modelserve_inference_request_failure_total", 'reason="cancelled"')]
    assert after == [before[0] + 2, before[1]]


def test_a_client_that_leaves_stops_its_stream(server):
    """The sequence leaves its batch as a cancelled request, with no error on the way: the
    protocol cancels the stream where it waits (a write to the closed connection would fail)."""
    url, log = server
    headers = {"Authorization": f"Bearer {KEY}"}
    cancelled = _series(url, headers, "modelserve_inference_request_failure_total", 'reason="cancelled"')
    with httpx.Client(timeout=20, headers=headers) as client:  # a few long sequences: steps take a while
        busy = [client.build_request("POST", url + STREAM, json={"text_input": TEXTS_LONG}) for _ in range(8)]
        streams = [client.send(r, stream=True) for r in busy]
        sock = raw_http.connect(url, timeout=20)
        reader = Reader(sock)
        try:
            sock.sendall(request(TEXTS_LONG))
            reader._until(b"data: ")  # the head and the first token's chunk have come
        finally:
            sock.close()  # mid-stream
        for answer in streams:
            assert events(answer.read())[-1]["output"].startswith("sept cent")
            answer.close()
    deadline = time.monotonic() + 10
    while _series(url, headers, "modelserve_running_sequences") > 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _series(url, headers, "modelserve_running_sequences") == 0
    assert _series(url, headers, "modelserve_inference_request_failure_total", 'reason="cancelled"') == cancelled + 1
    assert [line for line in log.read_text().splitlines() if '"level":"error"' in line or "Traceback" in line] == []
    with httpx.stream("POST", url + STREAM, json={"text_input": "twelve"}, headers=headers, timeout=20) as answer:
        assert answer.status_code == 200  # the server is fine, and so is the next stream
        assert events(answer.read())[-1]["output"] == "douze"


TEXTS_LONG = "seven hundred and ninety-seven thousand, seven hundred and ninety-seven"


def _series(url: str, headers: dict, name: str, *labels: str) -> float:
    """The model's series `name` with `labels` among its labels (in whatever order), or 0."""
    for line in httpx.get(f"{url}/metrics", headers=headers).text.splitlines():
        if line.startswith(name + "{") and all(
                label in line for label in (f'model="{MODEL}"', 'version="1"', *labels)):
            return float(line.split()[-1])
    return 0.0


def test_a_stream_in_flight_at_sigterm_finishes_then_the_server_exits(tmp_path):
    repo = tmp_path / "models"
    shutil.copytree(TRAINED, repo / MODEL)
    server = Server(repo, env={"MODELSERVE_LOG_LEVEL": "info"})
    try:
        server.wait_ready()
        sock = raw_http.connect(server.url, timeout=20)
        data = request(TEXTS_LONG).replace(f"Authorization: Bearer {KEY}\r\n".encode(), b"")
        sock.sendall(data[:-1])  # all but the body's last byte: the request is in flight
        assert httpx.get(server.url + "/v2/health/live").status_code == 200  # our head has been read
        server.process.send_signal(signal.SIGTERM)
        wait_refused(server)
        assert server.process.poll() is None  # still serving the stream in flight
        sock.sendall(data[-1:])
        reader = Reader(sock)
        status, headers, body = reader.response()
        assert status == 200 and headers["connection"] == "close"
        assert events(body)[-1]["output"].startswith("sept cent")
        assert reader.closed()
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        server.stop()

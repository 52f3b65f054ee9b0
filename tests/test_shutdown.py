"""SIGTERM: stop accepting, let in-flight requests finish (within a bound), then exit."""

import json
import signal
import socket
import time

import httpx
import pytest

from tests import onnx_models
from tests.conftest import Server
from tests.middleware import raw_http


@pytest.fixture
def repo(tmp_path):
    onnx_models.save(onnx_models.slow(), tmp_path / "repo", "slow")
    return tmp_path / "repo"


def start_held_request(server: Server, iterations: int) -> tuple[socket.socket, bytes]:
    """Send an inference's head and all but the last byte of its body; return the rest."""
    body = json.dumps({"inputs": [{"name": "iterations", "shape": [], "datatype": "INT64", "data": [iterations]}]}).encode()
    sock = raw_http.connect(server.url)
    raw_http.send_head(sock, "POST", "/v2/models/slow/infer",
                       {"Content-Type": "application/json", "Content-Length": str(len(body))})
    sock.sendall(body[:-1])
    # Another request answered after ours was sent means the server has read our head: it
    # polls every ready socket each turn of its loop.
    assert httpx.get(server.url + "/v2/health/live").status_code == 200
    return sock, body[-1:]


def wait_refused(server: Server, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.05)
    raise AssertionError("the server still accepts connections after SIGTERM")


def test_in_flight_request_finishes_after_sigterm_and_new_ones_are_refused(repo):
    server = Server(repo, env={"MODELSERVE_LOG_LEVEL": "info"})
    try:
        server.wait_ready()
        sock, rest = start_held_request(server, iterations=5_000)
        server.process.send_signal(signal.SIGTERM)
        wait_refused(server)
        assert server.process.poll() is None  # still serving the request in flight
        sock.sendall(rest)
        status, headers, body = raw_http.read_response(sock)
        assert status == 200, body
        assert json.loads(body)["outputs"][0]["name"] == "y"
        assert headers.get("connection") == "close"
        sock.close()
        # uvicorn re-raises the signal once it has shut down cleanly: exit by SIGTERM is normal.
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.log()
    finally:
        server.stop()


def test_shutdown_waits_no_longer_than_its_bound(repo):
    server = Server(repo, args=["--shutdown-timeout-s", "0.5"])
    try:
        server.wait_ready()
        sock, _ = start_held_request(server, iterations=1)  # the rest of the body never comes
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)  # raises if the held request kept the server up
        try:  # uvicorn cancels it: a 500, or the connection closed without an answer
            status = raw_http.read_response(sock)[0]
        except OSError:
            status = None
        assert status in (500, None)
        sock.close()
    finally:
        server.stop()


def test_an_idle_kept_alive_connection_does_not_hold_shutdown(tmp_path):
    # A connection's fast requests are answered by one task that waits for its next request:
    # closing the idle connection at shutdown ends it, so uvicorn has nothing left to wait for.
    onnx_models.save(onnx_models.add_constant(1.0), tmp_path / "repo", "m")
    server = Server(tmp_path / "repo", env={"MODELSERVE_LOG_LEVEL": "info"}, args=["--shutdown-timeout-s", "20"])
    try:
        server.wait_ready()
        sock = raw_http.connect(server.url)
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}).encode()
        for _ in range(2):
            raw_http.send_head(sock, "POST", "/v2/models/m/infer",
                               {"Content-Type": "application/json", "Content-Length": str(len(body))})
            sock.sendall(body)
            status, _, answer = raw_http.read_response(sock)
            assert status == 200 and json.loads(answer)["outputs"][0]["data"] == [2.0]
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 10
        assert "running task(s)" not in server.log()  # none cancelled at the bound
        sock.close()
    finally:
        server.stop()

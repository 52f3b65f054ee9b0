"""Clients that connect and send nothing, trickle their headers or body, or leave mid-body:
the server closes them on bounded timeouts, gives their sockets back, and serves others."""

import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests import onnx_models
from tests.conftest import Server
from tests.middleware.raw_http import connect, read_response, send_head
from tests.reliability.load import ONE, wait_for

# Short bounds, so the test waits for them; the assertions are "closed", never "closed in time".
ARGS = ["--request-head-timeout-s", "1", "--request-timeout-s", "1", "--keep-alive-timeout-s", "1"]
INFER = "/v2/models/m/infer"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.add_constant(1.0), repo, "m")
    # The access log on (off by default): a client that leaves mid-body must be a 499 line, not a 500.
    server = Server(repo, env={"MODELSERVE_LOG_LEVEL": "info", "MODELSERVE_ACCESS_LOG": "true"}, args=ARGS)
    server.wait_ready()
    yield server
    server.stop()


def open_sockets(pid: int) -> int:
    """Sockets the server process holds: its listener, and one per open connection."""
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:  # closed while we looked
            pass
    return count


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection: EOF, or a reset, before any answer."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def served(url: str) -> bool:
    with httpx.Client(timeout=30) as client:
        return client.post(f"{url}{INFER}", json=ONE).json()["outputs"][0]["data"] == [2.0]


def settle(pid: int, baseline: int) -> None:
    wait_for(lambda: open_sockets(pid) <= baseline, what="the server gives the sockets back")


def test_connections_that_send_no_complete_head_are_closed(server):
    pid = server.process.pid
    baseline = open_sockets(pid)
    silent = [connect(server.url) for _ in range(20)]
    trickling = [connect(server.url) for _ in range(5)]
    wait_for(lambda: open_sockets(pid) > baseline, what="the count sees the connections")
    assert served(server.url)  # others are served meanwhile
    for sock in trickling:  # a slowloris: headers a few bytes at a time, never finished
        sock.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n")
    for _ in range(3):
        time.sleep(0.3)
        for sock in trickling:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:  # already closed by the server
                pass
    for sock in silent + trickling:
        assert closed_by_server(sock)
        sock.close()
    settle(pid, baseline)
    assert served(server.url)


def test_an_idle_kept_alive_connection_is_closed(server):
    sock = connect(server.url)
    body = httpx.Request("POST", f"{server.url}{INFER}", json=ONE).content
    send_head(sock, "POST", INFER, {"Content-Type": "application/json", "Content-Length": str(len(body))})
    sock.sendall(body)
    status, headers, _ = read_response(sock)
    assert status == 200 and headers.get("connection") != "close"
    assert closed_by_server(sock)  # after --keep-alive-timeout-s of silence
    sock.close()


def test_a_later_head_on_a_kept_alive_connection_has_its_own_deadline(server):
    # One timer per connection: requests answered well within the deadline keep the
    # connection open, and a head that then trickles is still closed.
    sock = connect(server.url)
    body = httpx.Request("POST", f"{server.url}{INFER}", json=ONE).content
    for _ in range(3):
        send_head(sock, "POST", INFER, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        sock.sendall(body)
        status, headers, _ = read_response(sock)
        assert status == 200 and headers.get("connection") != "close"
        time.sleep(0.4)  # the three span more than the 1 s head timeout
    sock.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n")  # and never finishes
    assert closed_by_server(sock)
    sock.close()


def test_a_body_slower_than_the_timeout_is_408_and_closed(server):
    pid = server.process.pid
    baseline = open_sockets(pid)
    sock = connect(server.url)
    send_head(sock, "POST", INFER, {"Content-Type": "application/json", "Content-Length": "1000"})
    sock.sendall(b'{"inputs": [')
    status, headers, body = read_response(sock)
    assert status == 408 and headers["connection"] == "close"
    assert b"request body not received within 1 s" in body
    assert closed_by_server(sock)
    sock.close()
    settle(pid, baseline)
    assert served(server.url)


@pytest.mark.parametrize("path", [INFER, "/v1/models/m:predict", "/v2/repository/index"])
def test_clients_that_leave_mid_body_are_not_errors_of_ours(server, path):
    pid = server.process.pid
    baseline = open_sockets(pid)
    logged = len(server.log())
    for _ in range(10):
        sock = connect(server.url)
        send_head(sock, "POST", path, {"Content-Type": "application/json", "Content-Length": "1000"})
        sock.sendall(b'{"inputs": [{"name": "x", ')
        time.sleep(0.05)  # let the route start reading the body
        sock.close()
    settle(pid, baseline)
    assert served(server.url)
    wait_for(lambda: server.log().count('"status":', logged) >= 11, what="the access log lines")
    log = server.log()[logged:]
    assert "Traceback" not in log and "unhandled error" not in log and '"status":500' not in log

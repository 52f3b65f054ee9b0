"""Shared fixtures: a real service process on 127.0.0.1 serving a given repository."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerURL(str):
    """A server's base URL, which also knows the address of its gRPC port (`.grpc`)."""

    grpc: str


class Server:
    """A `python -m service` process; `url` is its base address, `grpc_address` its gRPC one."""

    def __init__(
        self, repository: Path, env: dict[str, str] | None = None, args: list[str] | None = None,
        prefix: list[str] | None = None,
    ):
        """`prefix` runs the server under another command (setpriv, unshare...)."""
        self.port = free_port()
        self.grpc_port = free_port()
        self.url = ServerURL(f"http://127.0.0.1:{self.port}")
        self.url.grpc = self.grpc_address = f"127.0.0.1:{self.grpc_port}"
        self.log_path = repository.parent / f"server-{self.port}.log"
        environment = {**os.environ, "MODELSERVE_LOG_LEVEL": "warning", **(env or {})}
        command = [*(prefix or []), sys.executable, "-m", "service", "--model-repository", str(repository),
                   "--host", "127.0.0.1", "--port", str(self.port),
                   "--grpc-port", str(self.grpc_port), *(args or [])]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _starter(servers: list[Server]) -> Callable[..., str]:
    def start(repository: Path, env: dict[str, str] | None = None, args: list[str] | None = None) -> str:
        server = Server(Path(repository), env, args)
        servers.append(server)
        server.wait_ready()
        return server.url

    return start


@pytest.fixture
def serve_repository(tmp_path_factory) -> Iterator[Callable[..., str]]:
    """Start the real service on a repository folder; returns its base URL. Stopped at teardown."""
    servers: list[Server] = []
    yield _starter(servers)
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def module_server(request) -> Callable[..., str]:
    """Like serve_repository, but one server for a whole test module."""
    servers: list[Server] = []
    request.addfinalizer(lambda: [s.stop() for s in servers])
    return _starter(servers)

"""Shared fixtures: a real service process on 127.0.0.1 serving a given repository."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
MISSING_TOOL = "missing tool: "  # a skip reason starting so is counted in the run's last lines


def skip_for_missing_tool(tool: str, how: str) -> NoReturn:
    """Skip: `tool` is not installed; `how` says where it comes from. Listed at the end of the run."""
    __tracebackhide__ = True  # the skip is reported at the caller's line
    pytest.skip(f"{MISSING_TOOL}{tool} ({how})")


def pytest_terminal_summary(terminalreporter, config) -> None:
    """One plain list of the tests skipped for want of a tool, and how to get them."""
    missing = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(MISSING_TOOL):
            missing[reason.removeprefix(MISSING_TOOL)] += 1
    if not missing:
        return
    terminalreporter.section("skipped for want of a tool", sep="-")
    for tool, count in sorted(missing.items()):
        terminalreporter.line(f"{count:4d} {'test' if count == 1 else 'tests'}: {tool}")
    terminalreporter.line("`make test-tools` installs them (apt-get, as root); CI (CI=true) does so "
                          "and runs every test.")


# The files that take longest, longest first: a module fixture trains every model or the
# translator, thousands of digits are sampled, many servers start, a browser waits on streams.
# Run first, parallel workers (make test: pytest-xdist, --dist loadfile) start them at once and
# share out the rest, instead of one finishing them alone at the end.
SLOW_FIRST = ["tests/training/test_quick.py", "tests/training/test_quick_translation.py",
              "tests/training/test_committed_models.py", "tests/test_model_control.py",
              "tests/web/test_playground.py", "tests/reliability/test_openapi_conformance.py",
              "tests/deploy/test_topology.py"]


def pytest_collection_modifyitems(config, items) -> None:
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable
    # schemathesis (with pytest 9) gives every operation's test the same node id, differing only
    # in the name ("test_x[GET /v2]"). pytest-xdist schedules by node id and ran 1 of those 30
    # tests: give each the id pytest itself derives from parent and name (private: no public way).
    ids = Counter(item.nodeid for item in items)
    for item in items:
        if ids[item.nodeid] > 1 and item.parent is not None:
            item._id = item.parent.id.child(item.name)


def linked_committed_models(folder: Path) -> Path:
    """`folder` holding a link to each committed model: a server on it writes its log beside
    the folder, not into the checkout's models/."""
    for model in (ROOT / "models").iterdir():
        if model.is_dir():
            (folder / model.name).symlink_to(model.resolve(), target_is_directory=True)
    return folder


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
        self.repository = repository
        self.environment = {**os.environ, "MODELSERVE_LOG_LEVEL": "warning", **(env or {})}
        self.prefix, self.args = prefix or [], args or []
        self._start()

    def _start(self) -> None:
        self.port = free_port()
        self.grpc_port = free_port()
        self.url = ServerURL(f"http://127.0.0.1:{self.port}")
        self.url.grpc = self.grpc_address = f"127.0.0.1:{self.grpc_port}"
        self.log_path = self.repository.parent / f"server-{self.port}.log"
        command = [*self.prefix, sys.executable, "-m", "service", "--model-repository", str(self.repository),
                   "--host", "127.0.0.1", "--port", str(self.port),
                   "--grpc-port", str(self.grpc_port), *self.args]
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (open for the server's whole life)
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.environment, stdout=self._log,
                                        stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        retries = 3
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if retries and ("address already in use" in self.log() or "gRPC could not listen" in self.log()):
                    # Another process (a parallel test worker) bound the port between free_port()
                    # and the server's own bind: start again on a new one.
                    retries -= 1
                    self._log.close()
                    self._start()
                    continue
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


@pytest.fixture(scope="session")
def session_server(request) -> Callable[..., str]:
    """Like module_server, for a server that many modules only read (one per pytest worker)."""
    servers: list[Server] = []
    request.addfinalizer(lambda: [s.stop() for s in servers])
    return _starter(servers)

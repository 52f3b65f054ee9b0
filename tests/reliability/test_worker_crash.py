"""--workers 2: a worker killed with SIGKILL is replaced, and while one worker can serve,
readiness says ready and no request is refused (only those on the killed worker are lost)."""

import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Self

import httpx
import pytest

from tests import onnx_models
from tests.conftest import Server
from tests.reliability.load import ONE, wait_for

MODELS = 30  # enough that a replacement worker spends a while loading


def workers(parent: int) -> set[int]:
    """The parent's worker processes (multiprocessing spawns them; its resource tracker is not one)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in command:
            found.add(int(entry.name))
    return found


class Traffic:
    """Threads on fresh connections (so the kernel spreads them over the workers), counting outcomes."""

    def __init__(self, url: str, path: str, body: dict | None, threads: int = 3):
        self.outcomes: Counter = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url + path, body), daemon=True) for _ in range(threads)]

    def _run(self, url: str, body: dict | None) -> None:
        while not self._stop.is_set():
            try:
                with httpx.Client(timeout=30) as client:
                    response = client.post(url, json=body) if body is not None else client.get(url)
                self.outcomes[response.status_code] += 1
            except httpx.TransportError:  # in flight on the killed worker
                self.outcomes["lost"] += 1

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


@pytest.fixture
def server(tmp_path):
    repo = tmp_path / "models"
    for i in range(MODELS):
        onnx_models.save(onnx_models.add_constant(float(i)), repo, f"m{i:02d}")
    server = Server(repo, args=["--workers", "2"])
    server.wait_ready()
    wait_for(lambda: len(workers(server.process.pid)) == 2, what="two workers")
    yield server
    server.stop()


def test_a_killed_worker_is_replaced_and_the_others_keep_serving(server):
    parent = server.process.pid
    first = workers(parent)
    last_model = f"/v2/models/m{MODELS - 1:02d}/infer"  # loaded last by a new worker
    with Traffic(server.url, last_model, ONE) as infer, Traffic(server.url, "/v2/health/ready", None, 1) as ready:
        wait_for(lambda: infer.outcomes[200] > 20, what="traffic on both workers")
        for victim in sorted(first):  # one, then the other once its replacement serves
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda v=victim: v not in workers(parent) and len(workers(parent)) == 2, what="a replacement")
            served = infer.outcomes[200]
            wait_for(lambda n=served: infer.outcomes[200] > n + 20, what="traffic after the replacement")
    assert workers(parent).isdisjoint(first)  # both originals gone, both replaced
    # Lost: at most the requests in flight on a killed worker, one per client thread.
    assert set(infer.outcomes) <= {200, "lost"} and infer.outcomes["lost"] <= 2 * 3, infer.outcomes
    assert set(ready.outcomes) <= {200, "lost"} and ready.outcomes["lost"] <= 2, ready.outcomes

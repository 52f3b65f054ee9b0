"""Steady concurrent traffic for fault tests: threads that post infer requests and keep every answer."""

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Self

import httpx

ONE = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}


@dataclass
class Answer:
    path: str
    status: int
    value: float | None


@dataclass
class Load:
    """`threads` clients per path, each posting ONE in a loop until the block ends."""

    url: str
    paths: list[str]
    threads: int = 2
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Self:
        for path in self.paths:
            for _ in range(self.threads):
                worker = threading.Thread(target=self._post_until_stopped, args=(path,), daemon=True)
                worker.start()
                self._workers.append(worker)
        self.wait_for_answers(10)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _post_until_stopped(self, path: str) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(path, json=ONE)
                except httpx.HTTPError as exc:  # a dropped connection is a failure too
                    self.answers.append(Answer(path, 0, None))
                    print(f"{path}: {exc!r}")
                    continue
                value = response.json()["outputs"][0]["data"][0] if response.status_code == 200 else None
                self.answers.append(Answer(path, response.status_code, value))

    def wait_for_answers(self, more: int, timeout: float = 30.0) -> None:
        """Block until `more` further answers came back: the load really ran across a change."""
        target = len(self.answers) + more
        deadline = time.monotonic() + timeout
        while len(self.answers) < target:
            assert time.monotonic() < deadline, "the load stalled"
            time.sleep(0.01)

    def statuses(self, path: str) -> Counter:
        return Counter(a.status for a in self.answers if a.path == path)

    def values(self, path: str) -> list[float]:
        return [a.value for a in self.answers if a.path == path and a.status == 200]


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met in {timeout}s"
        time.sleep(0.05)

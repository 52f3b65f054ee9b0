"""Per model-version statistics in the shape of Triton's statistics extension.

Prometheus keeps the process-wide series; these counters answer `GET /v2/models/.../stats`
for one loaded version and reset when it is reloaded, as Triton's do.
"""

import threading
import time
from collections import defaultdict


class _Duration:
    __slots__ = ("count", "ns")

    def __init__(self) -> None:
        self.count = 0
        self.ns = 0

    def as_dict(self) -> dict:
        return {"count": self.count, "ns": self.ns}


class ModelStats:
    """Counters updated from request handlers and worker threads alike (hence the lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_inference_ms = 0
        self.inference_count = 0
        self.execution_count = 0
        self.success = _Duration()
        self.fail = _Duration()
        self.queue = _Duration()
        self.compute = _Duration()
        self.batches: dict[int, _Duration] = defaultdict(_Duration)

    def request_done(self, ok: bool, seconds: float, items: int = 0) -> None:
        with self._lock:
            outcome = self.success if ok else self.fail
            outcome.count += 1
            outcome.ns += int(seconds * 1e9)
            if ok:
                self.inference_count += items
            self.last_inference_ms = int(time.time() * 1000)

    def requests_succeeded(self, count: int, seconds: float, items: int) -> None:
        """`count` requests succeeded, taking `seconds` in all: request_done's success, once per batch."""
        with self._lock:
            self.success.count += count
            self.success.ns += int(seconds * 1e9)
            self.inference_count += items
            self.last_inference_ms = int(time.time() * 1000)

    def queued(self, seconds: float, requests: int = 1) -> None:
        """`requests` more requests left the queue, having waited `seconds` in all."""
        with self._lock:
            self.queue.count += requests
            self.queue.ns += int(seconds * 1e9)

    def executed(self, rows: int, seconds: float) -> None:
        ns = int(seconds * 1e9)
        with self._lock:
            self.execution_count += 1
            self.compute.count += 1
            self.compute.ns += ns
            self.batches[rows].count += 1
            self.batches[rows].ns += ns

    def executed_runs(self, runs: list[tuple[int, float]]) -> None:
        """`executed` for each (rows, seconds) of `runs`, under one lock."""
        with self._lock:
            self.execution_count += len(runs)
            self.compute.count += len(runs)
            for rows, seconds in runs:
                ns = int(seconds * 1e9)
                self.compute.ns += ns
                self.batches[rows].count += 1
                self.batches[rows].ns += ns

    def as_dict(self, name: str, version: int) -> dict:
        zero = {"count": 0, "ns": 0}
        with self._lock:
            return {
                "name": name,
                "version": str(version),
                "last_inference": self.last_inference_ms,
                "inference_count": self.inference_count,
                "execution_count": self.execution_count,
                "inference_stats": {
                    "success": self.success.as_dict(),
                    "fail": self.fail.as_dict(),
                    "queue": self.queue.as_dict(),
                    "compute_input": zero,
                    "compute_infer": self.compute.as_dict(),
                    "compute_output": zero,
                    "cache_hit": zero,
                    "cache_miss": zero,
                },
                "batch_stats": [
                    {"batch_size": size, "compute_input": zero, "compute_infer": d.as_dict(), "compute_output": zero}
                    for size, d in sorted(self.batches.items())
                ],
            }

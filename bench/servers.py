"""Starting a modelserve (or other) server for the smaller benchmarks (diffusion, translation,
gRPC against HTTP), and the MLP request bodies they send. bench/run.py has its own, with CPU
accounting and logs, for the side-by-side table."""

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _modelserve(repository: Path, workers: int) -> list[str]:
    return [PYTHON, "-m", "service", "--model-repository", str(repository), "--port", "{port}",
            "--log-level", "warning", "--workers", str(workers), "--no-access-log", "--grpc-port", "0"]


def _sample(rows: int) -> np.ndarray:
    return np.random.default_rng(0).random((rows, 64)).astype(np.float32).round(4)


def _json_body(x: np.ndarray) -> bytes:
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}
    return orjson.dumps({"inputs": [tensor]})


def _binary_body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps({
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    })
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}


class _Server:
    def __init__(self, command: list[str], cwd: Path = ROOT):
        self.cwd = cwd  # the source tree it runs (another checkout's, to compare code)
        with __import__("socket").socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.command = [part.replace("{port}", str(self.port)) for part in command]

    def __enter__(self) -> str:
        self.process = subprocess.Popen(self.command, cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env={**os.environ, "MODELSERVE_LOG_LEVEL": "warning"})
        url = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                httpx.get(url + "/v2/health/ready", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(1.0)  # let models finish loading and warm up
        return url

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)



@contextlib.contextmanager
def served(url: str | None) -> Iterator[str]:
    """`url` when a server is already running; else a server started over models/ for the run,
    on the CPU whatever the machine has, stopped and its log removed afterwards."""
    if url is not None:
        yield url
        return
    from tests.conftest import Server  # a real server process, as the tests start it

    server = Server(ROOT / "models", env={"MODELSERVE_PROVIDERS": "CPUExecutionProvider"})
    try:
        server.wait_ready(120)
        yield server.url
    finally:
        server.stop()
        server.log_path.unlink(missing_ok=True)


def report(result: dict, path: Path | None) -> None:
    """Print a measurement's JSON, and write it to `path` too when given."""
    text = json.dumps(result, indent=1)
    print(text)
    if path:
        path.write_text(text + "\n")

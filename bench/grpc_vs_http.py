"""gRPC ModelInfer beside HTTP binary and JSON, on the same server, in one run.

    .venv/bin/python bench/grpc_vs_http.py [--seconds 8] [--concurrency 1,8,64]

One modelserve process serves the benchmark's MLP (bench/models.py) with dynamic batching on
both ports. HTTP is loaded with wrk (as bench/run.py does); gRPC with grpcio's client in this
process, sending one pre-serialized ModelInferRequest as wrk sends one prepared body, so neither
side pays for building requests (perf_analyzer, Triton's load tool, would drive both; its pip
package ships no binary for this machine). Prints a markdown table of rows/s for 1-row and
64-row requests at each concurrency (connections for wrk, calls in flight on one HTTP/2
connection for gRPC). The floor the issue sets: gRPC 64-row rows/s >= HTTP binary 64-row.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent))  # this checkout's service/, run from anywhere
import wrk
from servers import _binary_body, _json_body, _sample

import models
from service.grpc.protocol import pb

ROOT = Path(__file__).resolve().parent.parent
INFER = "/inference.GRPCInferenceService/ModelInfer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", default="1,8,64")
    args = parser.parse_args()
    if not wrk.available():
        sys.exit("wrk is missing: apt-get install wrk")
    levels = [int(c) for c in args.concurrency.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as folder, _Server(models.write_repository(Path(folder), True)) as server:
        target = f"{server.url}/v2/models/mlp/infer"
        for size in (1, 64):
            x = _sample(size)
            binary, binary_headers = _binary_body(x)
            message = _grpc_request(x)
            json_headers = {"Content-Type": "application/json"}
            for c in levels:
                for kind, measure, load in (
                    ("gRPC", _grpc_load, (server.grpc, message)),
                    ("HTTP binary", _wrk, (target, binary, binary_headers)),
                    ("HTTP JSON", _wrk, (target, _json_body(x), json_headers)),
                ):
                    requests_per_s, p50, p99, errors = measure(*load, c, args.seconds)
                    rows.append((kind, size, c, requests_per_s * size, p50, p99, errors))
    _print(rows, args)


def _grpc_request(x: np.ndarray) -> bytes:
    request = pb.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    return request.SerializeToString()


def _grpc_load(address: str, message: bytes, concurrency: int, seconds: float):
    """`concurrency` calls in flight on one channel for `seconds`: (requests/s, p50 ms, p99 ms,
    errors). grpc's own threads issue each next call from the last one's completion, so the
    client spends little Python per call (grpc.aio's client cost twice as much CPU here)."""
    latencies: list[float] = []
    errors = 0
    finished = threading.Semaphore(0)
    with grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", -1)]) as channel:
        call = channel.unary_unary(INFER)  # bytes in, bytes out: no client-side (de)serializing
        for _ in range(20):  # warm-up
            call(message)
        deadline = time.perf_counter() + seconds

        def issue() -> None:
            started = time.perf_counter()
            if started >= deadline:
                finished.release()
                return
            call.future(message).add_done_callback(lambda future: done(future, started))

        def done(future, started: float) -> None:
            nonlocal errors
            if future.exception() is None:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1
            issue()

        began = time.perf_counter()
        for _ in range(concurrency):
            issue()
        for _ in range(concurrency):
            finished.acquire()
        elapsed = time.perf_counter() - began
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000 if latencies else (0.0, 0.0)
    return len(latencies) / elapsed, p50, p99, errors


def _wrk(url: str, body: bytes, headers: dict, connections: int, seconds: float):
    result = wrk.run(url, body, headers, connections, seconds)
    return result.requests_per_s, result.p50_ms, result.p99_ms, result.errors


class _Server:
    def __init__(self, repository: Path):
        self.repository = repository
        self.port, self.grpc_port = _free_port(), _free_port()
        self.url, self.grpc = f"http://127.0.0.1:{self.port}", f"127.0.0.1:{self.grpc_port}"

    def __enter__(self):
        command = [sys.executable, "-m", "service", "--model-repository", str(self.repository),
                   "--port", str(self.port), "--grpc-port", str(self.grpc_port), "--no-access-log"]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env={**os.environ, "MODELSERVE_LOG_LEVEL": "warning"})
        for _ in range(300):
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        time.sleep(1.0)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _print(rows, args) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, onnxruntime {ort.__version__}, grpcio {grpc.__version__}; "
          f"{args.seconds:g} s per row; model: bench/models.py MLP, dynamic batching (max 64)\n")
    print("| transport | rows per request | concurrent | rows/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, size, c, rate, p50, p99, errors in rows:
        print(f"| {kind} | {size} | {c} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {errors} |")
    best = {kind: max(r[3] for r in rows if r[0] == kind and r[1] == 64) for kind in ("gRPC", "HTTP binary")}
    verdict = "met" if best["gRPC"] >= best["HTTP binary"] else "NOT met"
    print(f"\nfloor (gRPC 64-row rows/s >= HTTP binary 64-row rows/s, best over concurrency): "
          f"{best['gRPC']:,.0f} vs {best['HTTP binary']:,.0f}: {verdict}")


if __name__ == "__main__":
    main()

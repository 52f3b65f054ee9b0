"""The benchmark: modelserve against the HTTP ceiling, a hand-written endpoint and ORT itself.

    .venv/bin/python bench/run.py [--seconds 8] [--connections 1,8,64] [--workers 1]

Everything runs on this machine in one go: servers are started here, loaded with wrk, and
stopped. Prints a markdown table; docs/BENCHMARKS.md holds one and says how to read it.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import orjson

sys.path.insert(0, str(Path(__file__).parent))
import diffusion
import wrk

import models

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--workers", type=int, default=1, help="modelserve worker processes")
    parser.add_argument("--diffusion", default="models/digits-diffusion", help="diffusion model folder ('' to skip)")
    args = parser.parse_args()
    if not wrk.available():
        sys.exit("wrk is missing: apt-get install wrk")
    connections = [int(c) for c in args.connections.split(",")]
    rows: list[tuple[str, int, wrk.Result | None, float]] = []

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        plain, batched = models.write_repository(root, False), models.write_repository(root, True)
        model_path = plain / "mlp" / "1" / "model.onnx"
        one, sixty_four = _sample(1), _sample(64)
        json_1, json_64 = _json_body(one), _json_body(sixty_four)
        binary_64, binary_headers = _binary_body(sixty_four)

        limit_1, limit_64 = _ort_in_process(model_path)
        rows.append(("ONNX Runtime in process, batch 1 (the limit)", 1, None, limit_1))
        rows.append(("ONNX Runtime in process, batch 64, rows/s", 1, None, limit_64))

        servers = {
            "bare uvicorn constant endpoint (HTTP ceiling)": [PYTHON, "bench/bare_uvicorn.py", "{port}"],
            "hand-written FastAPI + pydantic + ORT (baseline)": [PYTHON, "bench/baseline_fastapi.py", str(model_path), "{port}"],
            "modelserve V2, no batching": _modelserve(plain, args.workers),
            "modelserve V2, dynamic batching": _modelserve(batched, args.workers),
        }
        for label, command in servers.items():
            with _Server(command) as url:
                target = f"{url}/v2/models/mlp/infer"
                for c in connections:
                    rows.append((f"{label}: JSON, 1 row", c, wrk.run(target, json_1, {"Content-Type": "application/json"}, c, args.seconds), 1))
                if label.startswith("modelserve"):
                    c = max(connections)
                    rows.append((f"{label}: JSON, 64 rows, rows/s", c, wrk.run(target, json_64, {"Content-Type": "application/json"}, c, args.seconds), 64))
                    rows.append((f"{label}: binary, 64 rows, rows/s", c, wrk.run(target, binary_64, binary_headers, c, args.seconds), 64))
        diffusion_rows = _diffusion(Path(args.diffusion), root, args) if args.diffusion else []
    _print_table(rows, args)
    _print_diffusion(diffusion_rows)


def _diffusion(source: Path, root: Path, args) -> list[tuple[str, int, float]]:
    rows = []
    for label, repo in diffusion.write_repositories(source, root / "diffusion").items():
        with _Server(_modelserve(repo, args.workers)) as url:
            for concurrency in (1, 4, 16):
                rate = diffusion.samples_per_second(url, source.name, concurrency, args.seconds)
                rows.append((label, concurrency, rate))
    return rows


def _print_diffusion(rows) -> None:
    if not rows:
        return
    solo = next(rate for label, c, rate in rows if label == "no step batching" and c == 1)
    print(f"\nDiffusion: {diffusion.REQUEST['num_samples']} sample(s) per request, "
          f"{diffusion.REQUEST['steps']} {diffusion.REQUEST['sampler']} steps\n")
    print("| generation | concurrent requests | samples/s | × one at a time |")
    print("|---|---:|---:|---:|")
    for label, concurrency, rate in rows:
        print(f"| {label} | {concurrency} | {rate:.1f} | {rate / solo:.2f} |")


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


def _ort_in_process(model_path: Path, seconds: float = 2.0) -> tuple[float, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    rates = []
    for rows in (1, 64):
        x = _sample(rows)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            session.run(None, {"input": x})
            count += 1
        rates.append(count * rows / (time.perf_counter() - started))
    return rates[0], rates[1]


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


def _print_table(rows, args) -> None:
    def rate(label, result, per_request):
        return result.requests_per_s * per_request if result else per_request

    baseline = {c: r.requests_per_s for label, c, r, _ in rows if r and label.startswith("hand-written")}
    ceiling = {c: r.requests_per_s for label, c, r, _ in rows if r and label.startswith("bare uvicorn")}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, onnxruntime {ort.__version__}; {args.seconds:.0f} s per row, "
          f"modelserve workers: {args.workers}\n")
    print("| what | connections | req/s (rows/s) | p50 ms | p90 ms | p99 ms | errors | × baseline | × ceiling |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, c, result, per_request in rows:
        value = rate(label, result, per_request)
        if result is None:
            print(f"| {label} | – | {value:,.0f} | | | | | | |")
            continue
        rps = result.requests_per_s
        vs_base = f"{rps / baseline[c]:.2f}" if c in baseline and per_request == 1 else ""
        vs_ceiling = f"{rps / ceiling[c]:.2f}" if c in ceiling and per_request == 1 else ""
        print(f"| {label} | {c} | {value:,.0f} | {result.p50_ms:.2f} | {result.p90_ms:.2f} | {result.p99_ms:.2f} "
              f"| {result.errors} | {vs_base} | {vs_ceiling} |")


if __name__ == "__main__":
    main()

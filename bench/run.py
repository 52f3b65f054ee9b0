"""The benchmark: modelserve beside a hand-written endpoint and NVIDIA Triton, every answer checked.

    .venv/bin/python bench/run.py [--seconds 5] [--connections 1,8,64] [--no-triton] [--workers [--workers-rounds N]]

Each server runs pinned with `taskset` to --server-cpus (default core 0); this process, the load
generator, pins itself to --client-cpus (default core 1). Load is bench/loadgen.py: closed
loops over keep-alive connections, requests rotating through distinct inputs, and a sample of
the answers (every --check-every-th, and the first of every connection) compared with ONNX
Runtime's own output: one wrong answer fails the run. All rows of the table come from that
checked load. `--workers` puts the servers and the load generator on every core together; there
the load is wrk with a Lua script that compares every answer with a verified one
(bench/workers.py, bench/wrk_checked.py), as a Python client's CPU would be taken from the
servers'. wrk without checks is used only for the optional diffusion section.
Triton rows need bench/triton_setup.sh run once (its own venv). docs/BENCHMARKS.md has a run.
"""

import argparse
import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
import cases
import diffusion
import loadgen
import procstat
import report
import triton
import workers as workers_section

import models

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each row")
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--check-every", type=int, default=4, help="compare every Nth answer with ONNX Runtime")
    parser.add_argument("--server-cpus", default="0", help="taskset list for the servers")
    parser.add_argument("--client-cpus", default="1", help="CPUs this load generator pins itself to")
    parser.add_argument("--provider", default="CPUExecutionProvider", help="execution provider for every server")
    parser.add_argument("--only", action="append", help="run only servers whose label starts with this (repeatable)")
    parser.add_argument("--no-triton", action="store_true", help="skip Triton (or when bench/triton_setup.sh was not run)")
    parser.add_argument("--access-log", action="store_true",
                        help="also run modelserve with --access-log, to price the per-request log (off by default)")
    parser.add_argument("--workers", action="store_true",
                        help="also measure --workers 2 against one worker at the widest connections, all on every core")
    parser.add_argument("--workers-rounds", type=int, default=1, help="1 and 2 workers in turn, this many times (medians)")
    parser.add_argument("--diffusion", default="", help="diffusion model folder for the samples/s section (wrk, unchecked)")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    client_cpus = cpu_list(args.client_cpus)
    os.sched_setaffinity(0, client_cpus)
    widest = max(connections)

    with tempfile.TemporaryDirectory(prefix="modelserve-bench-") as folder:
        root = Path(folder)
        plain, batched = models.write_repository(root, False), models.write_repository(root, True)
        model_path = plain / "mlp" / "1" / "model.onnx"
        cases.set_provider([plain, batched], args.provider)
        session = cases.session(model_path, args.provider)
        limits = cases.ort_in_process(session)
        requests = {kind: cases.build(session, kind) for kind in ("json1", "json64", "binary64")}

        servers = _servers(args, root, plain, batched, model_path)
        rows: list[report.Row] = []
        versions = {"python": platform.python_version(), "onnxruntime": ort.__version__}
        for label, (command, env, kinds) in servers.items():
            if args.only and not any(label.startswith(prefix) for prefix in args.only):
                continue
            ready = "/docs" if label.startswith(report.BASELINE) else "/v2/models/mlp/ready"  # the baseline has one route
            with _Server(["taskset", "-c", args.server_cpus, *command], env, root / "logs", ready) as server:
                if label.startswith("Triton"):
                    versions["Triton"] = httpx.get(server.url + "/v2").json()["version"]
                for kind, conns in kinds(connections):
                    print(f"  {label}: {kind} at {conns} connections", file=sys.stderr, flush=True)
                    result = loadgen.run(server.url, requests[kind], conns, args.seconds,
                                         args.warmup, args.check_every, server.cpu)
                    server.check_listening()  # the answers timed were this server's
                    rows.append(report.Row(label, kind, conns, result))
        workers = _workers(args, batched, requests["json1"], widest, root) if args.workers else []
        diffusion_rows = _diffusion(Path(args.diffusion), root, args.seconds, args.server_cpus) if args.diffusion else []

    print(report.header(args, client_cpus, versions))
    print(report.table(rows, limits))
    print(workers_section.table(workers, widest))
    print(report.targets(rows, workers_section.medians(workers), widest, diffusion_rows))
    report.print_diffusion(diffusion_rows)


def cpu_list(text: str) -> set[int]:
    """taskset's list syntax: '1', '0,2', '4-7'."""
    found = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


# ------------------------------------------------------------------------------ servers

def _modelserve(repository: Path, *flags: str) -> list[str]:
    """modelserve as a user starts it: the repository, an address, nothing else unless asked. The
    gRPC server stays on, on a free port of its own (8001 may be another server's)."""
    return [PYTHON, "-m", "service", "--model-repository", str(repository), "--port", "{port}", "--grpc-port", "{grpc_port}",
            *flags]


def _servers(args, root: Path, plain: Path, batched: Path, model_path: Path) -> dict:
    """label -> (command, environment, which (kind, connections) to run)."""
    env = dict(os.environ)
    one_row = lambda conns: [("json1", c) for c in conns]
    wide = lambda conns: [*one_row(conns), ("json64", max(conns)), ("binary64", max(conns))]
    servers = {"hand-written FastAPI + ORT": (
        [PYTHON, "bench/baseline_fastapi.py", str(model_path), "{port}", args.provider], env, one_row)}
    venv = None if args.no_triton else triton.venv()
    if venv is None and not args.no_triton:
        sys.exit("Triton's venv is missing: run `bash bench/triton_setup.sh` once, or pass --no-triton")
    if venv is not None:
        for batching, label, kinds in ((False, "Triton python backend + ORT, no batching", wide),
                                       (True, "Triton python backend + ORT, dynamic batching 2 ms max 32", one_row)):
            repository = triton.write_repository(root, model_path, batching, args.provider)
            command, triton_env = triton.command(venv, repository, root / "triton-backends")
            servers[label] = (command, triton_env, kinds)
    servers["modelserve, no batching"] = (_modelserve(plain), env, wide)
    servers["modelserve, max_batch_size 64, max_queue_delay_ms 0"] = (_modelserve(batched), env, wide)
    if args.access_log:
        servers["modelserve, max_batch_size 64, --access-log"] = (
            _modelserve(batched, "--access-log"), env, one_row)
    return servers


class _Server:
    """A server process on a free port: started, waited on until ready, stopped."""

    def __init__(self, command: list[str], env: dict[str, str], logs: Path, ready: str = "/v2/models/mlp/ready"):
        with socket.socket() as sock, socket.socket() as other:
            sock.bind(("127.0.0.1", 0))
            other.bind(("127.0.0.1", 0))
            port, grpc_port = sock.getsockname()[1], other.getsockname()[1]
        self.command = [part.replace("{port}", str(port)).replace("{grpc_port}", str(grpc_port)) for part in command]
        self.url = f"http://127.0.0.1:{port}"
        self.env, self.ready = env, ready
        logs.mkdir(exist_ok=True)
        self.log = logs / f"server-{port}.log"  # a user's terminal or container log: the server writes it

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=self.log.open("wb"),
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"server exited: {' '.join(self.command)}\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.ready, timeout=1).status_code == 200:
                    self.check_listening()
                    return self
            time.sleep(0.2)
        self.__exit__()
        sys.exit(f"server not ready in 120 s: {' '.join(self.command)}\n{self.log.read_text()[-3000:]}")

    def check_listening(self) -> None:
        """Fail unless the port answering is this server's: the port was free when picked, but
        another process on a shared machine may take it before the server binds it, and its
        answers (another model's, or a server that has since exited) would be timed and checked
        as this server's."""
        port = int(self.url.rsplit(":", 1)[1])
        if self.process.poll() is not None:
            self.__exit__()
            sys.exit(f"server exited during the run: {' '.join(self.command)}\n{self.log.read_text()[-3000:]}")
        if not procstat.listens(self.process.pid, port):
            self.__exit__()
            sys.exit(f"port {port} is answered by another process than {' '.join(self.command)}")

    def cpu(self) -> float:
        return procstat.cpu_seconds(self.process.pid)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _workers(args, batched: Path, cases, conns: int, root: Path) -> list[workers_section.Row]:
    """modelserve --workers 1 and 2 with the servers and wrk (checking every answer) on every core."""
    def start(workers: int) -> _Server:
        print(f"  modelserve --workers {workers}: json1 at {conns} connections (wrk, checked)", file=sys.stderr, flush=True)
        return _Server(_modelserve(batched, "--workers", str(workers)), dict(os.environ), root / "logs")

    return workers_section.measure(start, cases, conns, args.seconds, args.warmup, args.workers_rounds)


def _diffusion(source: Path, root: Path, seconds: float, cpus: str) -> list[tuple[str, int, float]]:
    """Samples/s with 1, 4 and 16 concurrent generations (wrk on the other cores, unchecked)."""
    rows = []
    for label, repo in diffusion.write_repositories(source, root / "diffusion").items():
        with _Server(["taskset", "-c", cpus, *_modelserve(repo, "--no-access-log")], dict(os.environ), root / "logs",
                     f"/v2/models/{source.name}/ready") as server:
            for concurrency in (1, 4, 16):
                rows.append((label, concurrency, diffusion.samples_per_second(server.url, source.name, concurrency, seconds)))
    return rows


if __name__ == "__main__":
    try:
        main()
    except loadgen.WrongAnswer as exc:
        sys.exit(f"FAILED: a server answered wrong: {exc}")

"""The benchmark: modelserve beside a hand-written endpoint and NVIDIA Triton, every answer checked.

    .venv/bin/python bench/run.py [--seconds 5] [--connections 1,8,64] [--no-triton] [--workers]

Each server runs pinned with `taskset` to --server-cpus (default core 0); this process, the load
generator, pins itself to --client-cpus (default core 1). Load is bench/loadgen.py: closed
loops over keep-alive connections, requests rotating through distinct inputs, and a sample of
the answers (every --check-every-th, and the first of every connection) compared with ONNX
Runtime's own output: one wrong answer fails the run. All rows of the table come from that
checked load; wrk (which checks nothing) is used only for the optional diffusion section.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx
import numpy as np
import onnxruntime as ort
import orjson

sys.path.insert(0, str(Path(__file__).parent))
import diffusion
import loadgen
import procstat
import triton

import models

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
POOL = 64  # distinct inputs per request kind: a server that swaps rows between requests is caught


@dataclass
class Row:
    server: str
    kind: str  # "json1", "json64", "binary64"
    connections: int
    result: loadgen.Result

    @property
    def rows_per_request(self) -> int:
        return 1 if self.kind == "json1" else 64


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
                        help="also run modelserve with --no-access-log, to price the default per-request log")
    parser.add_argument("--workers", action="store_true",
                        help="also measure --workers 2 against one worker at the widest connections, all on every core")
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
        _set_provider([plain, batched], args.provider)
        session = _session(model_path, args.provider)
        limits = _ort_in_process(session)
        cases = {kind: _cases(session, kind) for kind in ("json1", "json64", "binary64")}

        servers = _servers(args, root, plain, batched, model_path)
        rows: list[Row] = []
        versions = {"python": platform.python_version(), "onnxruntime": ort.__version__}
        for label, (command, env, kinds) in servers.items():
            if args.only and not any(label.startswith(prefix) for prefix in args.only):
                continue
            ready = "/docs" if label.startswith(BASELINE) else "/v2/models/mlp/ready"  # the baseline has one route
            with _Server(["taskset", "-c", args.server_cpus, *command], env, root / "logs", ready) as server:
                if label.startswith("Triton"):
                    versions["Triton"] = httpx.get(server.url + "/v2").json()["version"]
                for kind, conns in kinds(connections):
                    print(f"  {label}: {kind} at {conns} connections", file=sys.stderr, flush=True)
                    result = loadgen.run(server.url, cases[kind], conns, args.seconds,
                                         args.warmup, args.check_every, server.cpu)
                    rows.append(Row(label, kind, conns, result))
        workers = _workers(args, batched, cases["json1"], widest, root) if args.workers else []
        diffusion_rows = _diffusion(Path(args.diffusion), root, args.seconds, args.server_cpus) if args.diffusion else []

    print(_header(args, client_cpus, versions))
    print(_table(rows, limits))
    print(_workers_table(workers))
    print(_targets(rows, workers, widest))
    _print_diffusion(diffusion_rows)


def cpu_list(text: str) -> set[int]:
    """taskset's list syntax: '1', '0,2', '4-7'."""
    found = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


# ------------------------------------------------------------------------------ servers

def _modelserve(repository: Path, *flags: str) -> list[str]:
    """modelserve as a user starts it: the repository, an address, nothing else unless asked."""
    return [PYTHON, "-m", "service", "--model-repository", str(repository), "--port", "{port}", *flags]


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
        servers["modelserve, max_batch_size 64, --no-access-log"] = (
            _modelserve(batched, "--no-access-log"), env, one_row)
    return servers


class _Server:
    """A server process on a free port: started, waited on until ready, stopped."""

    def __init__(self, command: list[str], env: dict[str, str], logs: Path, ready: str = "/v2/models/mlp/ready"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.command = [part.replace("{port}", str(port)) for part in command]
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
                    return self
            time.sleep(0.2)
        self.__exit__()
        sys.exit(f"server not ready in 120 s: {' '.join(self.command)}\n{self.log.read_text()[-3000:]}")

    def cpu(self) -> float:
        return procstat.cpu_seconds(self.process.pid)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _workers(args, batched: Path, cases, conns: int, root: Path) -> list[tuple[int, loadgen.Result]]:
    """modelserve --workers 1 and 2 with the server and this load generator both on every core."""
    everything = set(range(os.cpu_count()))
    os.sched_setaffinity(0, everything)
    found = []
    try:
        for workers in (1, 2):
            with _Server(_modelserve(batched, "--workers", str(workers)), dict(os.environ), root / "logs") as server:
                print(f"  modelserve --workers {workers}: json1 at {conns} connections", file=sys.stderr, flush=True)
                found.append((workers, loadgen.run(server.url, cases, conns, args.seconds,
                                                   args.warmup, args.check_every, server.cpu)))
    finally:
        os.sched_setaffinity(0, cpu_list(args.client_cpus))
    return found


# ------------------------------------------------------------------------------ requests

def _set_provider(repositories: list[Path], provider: str) -> None:
    if provider != "CPUExecutionProvider":
        for repo in repositories:
            config = repo / "mlp" / "config.yaml"
            config.write_text(config.read_text() + f"providers: [{provider}]\nrequire_first_provider: true\n")


def _session(model_path: Path, provider: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(model_path), options, providers=[provider])


def _cases(session: ort.InferenceSession, kind: str) -> list[loadgen.Case]:
    """POOL requests with distinct inputs, each with ONNX Runtime's answer to it."""
    rng = np.random.default_rng(0)
    rows = 1 if kind == "json1" else 64
    found = []
    for _ in range(POOL):
        x = rng.random((rows, 64)).astype(np.float32).round(4)  # 4 decimals: JSON carries them exactly
        (expected,) = session.run(None, {"input": x})
        if kind == "binary64":
            body, headers = _binary_body(x)
            decode = loadgen.decode_binary("logits")
        else:
            body, headers = _json_body(x), {"Content-Type": "application/json"}
            decode = loadgen.decode_json("logits")
        request = loadgen.http_request("127.0.0.1", 0, "/v2/models/mlp/infer", body, headers)
        found.append(loadgen.Case(request, expected, decode))
    return found


def _json_body(x: np.ndarray) -> bytes:
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}
    return orjson.dumps({"inputs": [tensor]})


def _binary_body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps({
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    })
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}


def _ort_in_process(session: ort.InferenceSession, seconds: float = 1.0) -> dict[str, float]:
    """Rows/s of ONNX Runtime alone at batch 1 and 64, on this (the client's) core: the limit.

    On a GPU also with I/O binding: the input copied to the device once and the output left
    there, which is what a server keeping tensors on the device could reach."""
    rates = {}
    on_device = session.get_providers()[0] == "CUDAExecutionProvider"
    for rows in (1, 64):
        x = np.random.default_rng(0).random((rows, 64)).astype(np.float32)
        rates[f"batch {rows}"] = rows * _rate(lambda x=x: session.run(None, {"input": x}), seconds)
        if on_device:
            binding = session.io_binding()
            binding.bind_ortvalue_input("input", ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            binding.bind_output("logits", "cuda", 0)
            rates[f"batch {rows}, I/O binding on the device"] = rows * _rate(
                lambda b=binding: session.run_with_iobinding(b), seconds)
    return rates


def _rate(call, seconds: float) -> float:
    call()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        count += 1
    return count / (time.perf_counter() - started)


# ------------------------------------------------------------------------------ report

KIND_LABEL = {"json1": "V2 JSON, 1 row", "json64": "V2 JSON, 64 rows, rows/s", "binary64": "V2 binary, 64 rows, rows/s"}
BASELINE, TRITON_BATCHING, TRITON_PLAIN = "hand-written", "Triton python backend + ORT, dynamic", "Triton python backend + ORT, no"


def _header(args, client_cpus: set[int], versions: dict[str, str]) -> str:
    load = os.getloadavg()
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"{', '.join(f'{k} {v}' for k, v in versions.items())}, provider {args.provider}; servers pinned with `taskset -c "
            f"{args.server_cpus}`, load generator (this process) on CPU(s) {sorted(client_cpus)}; "
            f"{args.seconds:g} s measured per row after {args.warmup:g} s warm-up; every {args.check_every}th answer "
            f"(and each connection's first) checked against ONNX Runtime; load average at the end "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}\n")


def _find(rows: list[Row], prefix: str, kind: str, conns: int | None = None) -> Row | None:
    return next((r for r in rows if r.server.startswith(prefix) and r.kind == kind
                 and (conns is None or r.connections == conns)), None)


def _table(rows: list[Row], limits: dict[str, float]) -> str:
    baseline_best = max((r.result.requests_per_s for r in rows if r.server.startswith(BASELINE) and r.kind == "json1"),
                        default=None)
    limit = ", ".join(f"{rate:,.0f} at {label}" for label, rate in limits.items())
    lines = [f"ONNX Runtime in process on the client's core (the limit), rows/s: {limit}.\n",
             ("| server | request | conns | req/s (rows/s) | p50 ms | p90 ms | p99 ms | errors | checked "
             "| req per server CPU-s | server CPU % | client CPU % | × baseline same conns | × baseline best "
             "| × Triton batching | × Triton no batching |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        r, rate = row.result, row.result.requests_per_s
        base = _find(rows, BASELINE, row.kind, row.connections)
        tb, tp = _find(rows, TRITON_BATCHING, row.kind, row.connections), _find(rows, TRITON_PLAIN, row.kind, row.connections)

        def ratio(other, mine=rate):
            return f"{mine / other:.2f}" if other else ""

        per_cpu = f"{r.requests / r.server_cpu_s:,.0f}" if r.server_cpu_s else ""
        server_pct = f"{100 * r.server_cpu_s / r.seconds:.0f}" if r.server_cpu_s is not None else ""
        lines.append(
            f"| {row.server} | {KIND_LABEL[row.kind]} | {row.connections} | {rate * row.rows_per_request:,.0f} "
            f"| {r.percentile(50):.2f} | {r.percentile(90):.2f} | {r.percentile(99):.2f} | {r.errors} | {r.checked:,} "
            f"| {per_cpu} | {server_pct} | {100 * r.client_cpu_s / r.seconds:.0f} "
            f"| {ratio(base.result.requests_per_s if base else None)} "
            f"| {ratio(baseline_best) if row.kind == 'json1' else ''} "
            f"| {ratio(tb.result.requests_per_s if tb else None)} | {ratio(tp.result.requests_per_s if tp else None)} |")
    return "\n".join(lines)


def _workers_table(workers: list[tuple[int, loadgen.Result]]) -> str:
    if not workers:
        return ""
    one = workers[0][1].requests_per_s
    lines = [("\nmodelserve `--workers N` (default flags otherwise), max_batch_size 64, V2 JSON 1 row; server and load generator both on "
              f"every core ({os.cpu_count()}), unpinned:\n"),
             "| workers | conns | req/s | p50 ms | p99 ms | errors | checked | server CPU % | client CPU % | × one worker |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, r in workers:
        lines.append(f"| {n} | {r.connections} | {r.requests_per_s:,.0f} | {r.percentile(50):.2f} "
                     f"| {r.percentile(99):.2f} | {r.errors} | {r.checked:,} | {100 * r.server_cpu_s / r.seconds:.0f} "
                     f"| {100 * r.client_cpu_s / r.seconds:.0f} | {r.requests_per_s / one:.2f} |")
    return "\n".join(lines)


def _targets(rows: list[Row], workers, widest: int) -> str:
    ms = "modelserve, max_batch_size 64, max_queue"
    lines = ["\n| target (issue 16) | measured | met |", "|---|---|---|"]

    def add(name, mine: Row | None, other: Row | None, need: float, unit="req/s") -> None:
        if mine and other:
            value = mine.result.requests_per_s / other.result.requests_per_s
            lines.append(f"| {name} | {value:.2f}× ({mine.result.requests_per_s * mine.rows_per_request:,.0f} vs "
                         f"{other.result.requests_per_s * other.rows_per_request:,.0f} {unit}) | {'yes' if value >= need else 'no'} |")

    add(f"V2 JSON 1 row, {widest} conns, modelserve batching ≥ Triton batching", _find(rows, ms, "json1", widest),
        _find(rows, TRITON_BATCHING, "json1", widest), 1.0)
    mine, triton_row = _find(rows, ms, "json1", widest), _find(rows, TRITON_BATCHING, "json1", widest)
    if mine and triton_row and mine.result.server_cpu_s and triton_row.result.server_cpu_s:
        ours, theirs = (r.result.requests / r.result.server_cpu_s for r in (mine, triton_row))
        lines.append(f"| (not a target) requests per server CPU-second there, modelserve / Triton batching "
                     f"| {ours / theirs:.2f}× ({ours:,.0f} vs {theirs:,.0f}) | |")
    if mine:
        p50, p99 = mine.result.percentile(50), mine.result.percentile(99)
        lines.append(f"| p99 ≤ 2× p50 there | {p99:.1f} vs {p50:.1f} ms ({p99 / p50:.2f}×) | {'yes' if p99 <= 2 * p50 else 'no'} |")
    add("V2 JSON 1 row, 1 conn, modelserve batching ≥ Triton batching", _find(rows, ms, "json1", 1),
        _find(rows, TRITON_BATCHING, "json1", 1), 1.0)
    for label, name in (("modelserve, no batching", "no batching"), (ms, "max_batch_size 64")):
        add(f"modelserve {name}: binary 64 rows ≥ 3× JSON 64 rows", _find(rows, label, "binary64"),
            _find(rows, label, "json64"), 3.0, "rows/s")
    for row in rows:  # the default per-request access log, priced against --no-access-log
        quiet = _find(rows, "modelserve, max_batch_size 64, --no-access-log", row.kind, row.connections)
        if row.server.startswith(ms) and quiet:
            cost = 1 - row.result.requests_per_s / quiet.result.requests_per_s
            lines.append(f"| the default access log costs ≤ 5% ({row.connections} conns) | {cost:.1%} "
                         f"({row.result.requests_per_s:,.0f} with vs {quiet.result.requests_per_s:,.0f} req/s without) "
                         f"| {'yes' if cost <= 0.05 else 'no'} |")
    if len(workers) == 2:
        (_, one), (_, two) = workers
        value = two.requests_per_s / one.requests_per_s
        lines.append(f"| --workers 2 ≥ 1.7× one worker, {widest} conns | {value:.2f}× ({two.requests_per_s:,.0f} vs "
                     f"{one.requests_per_s:,.0f} req/s) | {'yes' if value >= 1.7 else 'no'} |")
    return "\n".join(lines)


def _diffusion(source: Path, root: Path, seconds: float, cpus: str) -> list[tuple[str, int, float]]:
    """Samples/s with 1, 4 and 16 concurrent generations (wrk on the other cores, unchecked)."""
    rows = []
    for label, repo in diffusion.write_repositories(source, root / "diffusion").items():
        with _Server(["taskset", "-c", cpus, *_modelserve(repo, "--no-access-log")], dict(os.environ), root / "logs",
                     f"/v2/models/{source.name}/ready") as server:
            for concurrency in (1, 4, 16):
                rows.append((label, concurrency, diffusion.samples_per_second(server.url, source.name, concurrency, seconds)))
    return rows


def _print_diffusion(rows) -> None:
    if not rows:
        return
    solo = next(rate for label, c, rate in rows if label == "no step batching" and c == 1)
    print(f"\nDiffusion (wrk, answers not checked): {diffusion.REQUEST['num_samples']} sample(s) per request, "
          f"{diffusion.REQUEST['steps']} {diffusion.REQUEST['sampler']} steps\n")
    print("| generation | concurrent requests | samples/s | × one at a time |")
    print("|---|---:|---:|---:|")
    for label, concurrency, rate in rows:
        print(f"| {label} | {concurrency} | {rate:.1f} | {rate / solo:.2f} |")


if __name__ == "__main__":
    try:
        main()
    except loadgen.WrongAnswer as exc:
        sys.exit(f"FAILED: a server answered wrong: {exc}")

"""gRPC ModelInfer beside HTTP binary and JSON, on the same server, in one run.

    .venv/bin/python bench/grpc_vs_http.py [--seconds 8] [--concurrency 1,8,64]
                                           [--server-cpus 0] [--client-cpus 1] [--no-floors]
                                           [--grpc-transports grpcio,asyncio] [--h2load]

One modelserve process per gRPC transport (--grpc-transport) serves the benchmark's MLP
(bench/models.py) with dynamic batching on both ports, all pinned with taskset to --server-cpus; the load comes from --client-cpus (this
process pins itself there, and wrk inherits it), so a Python client never takes the server's
core. HTTP is loaded with wrk (as bench/run.py does); gRPC with grpcio's client in this process,
sending one pre-serialized ModelInferRequest as wrk sends one prepared body, so neither side
pays for building requests (perf_analyzer, Triton's load tool, would drive both; its pip
package ships no binary for this machine). Prints a markdown table of rows/s for 1-row and
64-row requests at each concurrency (connections for wrk, calls in flight on one HTTP/2
connection for gRPC), with the CPU each call cost the server and the client (from /proc and
getrusage), the rows per execution of the model (its batching, from its statistics) and the rows
one server CPU-second gives (the rate a core of its own would reach: on a machine shared with
other work a server gets only a share of its core, and how big a share depends on the
scheduler, not on the transport), then the two transports' floors with 64-row
messages on the same core, neither running a model: gRPC servers answering a prepared reply
(bench/grpc_echo.py: grpc.aio, grpcio's synchronous server, that server handing each call to
a coroutine on an event loop as modelserve's grpcio transport does, hyper-h2 on the event loop,
and modelserve's asyncio transport) and a bare uvicorn app (bench/bare_uvicorn.py).
The floor the issue sets: gRPC 64-row rows/s >= HTTP binary 64-row; it is printed both as
measured and per server CPU-second. grpcio's Python client spends 100-200 µs of CPU a call
against wrk's 15-25, so where other work shares the client's core it, not the server, can set
gRPC's rows/s; --h2load adds rows (and floor lines) loaded by h2load, a client in C as wrk is.
"""

import argparse
import contextlib
import datetime
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent))  # this checkout's service/, run from anywhere
import procstat
import wrk
from run import cpu_list
from servers import _binary_body, _json_body, _sample

import models
from service.grpc.protocol import pb

ROOT = Path(__file__).resolve().parent.parent
INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class Row:
    kind: str
    size: int
    concurrency: int
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_us: float  # server CPU per call (all its threads), microseconds
    server_share: float  # of one core, over the run
    client_us: float  # load generator CPU per call
    rows_per_execution: float | None = None  # the model's executions, from its statistics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--server-cpus", default="0", help="taskset list for the servers")
    parser.add_argument("--client-cpus", default="1", help="CPUs this load generator (and wrk) pins itself to")
    parser.add_argument("--grpc-transports", default="grpcio,asyncio",
                        help="modelserve's --grpc-transport values to measure, each on a server of its own")
    parser.add_argument("--no-floors", action="store_true", help="skip the echo and bare-uvicorn rows")
    parser.add_argument("--h2load", action="store_true", help="also load gRPC with h2load (nghttp2's HTTP/2 load "
                        "tool, in C as wrk is: apt-get install nghttp2-client), one connection, the calls in flight "
                        "as streams; its rows get floor lines of their own")
    parser.add_argument("--profile", type=Path, help="also py-spy the server under 64-row calls, 8 in flight, "
                        "over gRPC and HTTP binary: collapsed stacks into this folder, shares printed")
    args = parser.parse_args()
    if not wrk.available():
        sys.exit("wrk is missing: apt-get install wrk")
    if args.h2load and shutil.which("h2load") is None:
        sys.exit("h2load is missing: apt-get install nghttp2-client")
    os.sched_setaffinity(0, cpu_list(args.client_cpus))
    levels = [int(c) for c in args.concurrency.split(",")]
    started, load_before = datetime.datetime.now(datetime.UTC), os.getloadavg()
    rows: list[Row] = []
    transports = args.grpc_transports.split(",")
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        repository = models.write_repository(Path(folder), True)
        command = [sys.executable, "-m", "service", "--model-repository", str(repository), "--port", "{port}",
                   "--grpc-port", "{grpc_port}", "--no-access-log"]
        # One server per gRPC transport, all on the same core; only the one under load runs.
        # HTTP is measured on the first.
        servers = {t: stack.enter_context(_Server([*command, "--grpc-transport", t], args.server_cpus))
                   for t in transports}
        server = servers[transports[0]]
        target = f"{server.url}/v2/models/mlp/infer"
        for size in (1, 64):
            x = _sample(size)
            binary, binary_headers = _binary_body(x)
            message = _grpc_request(x)
            json_headers = {"Content-Type": "application/json"}
            for c in levels:
                loads = [(servers[t], f"gRPC ({t})", _grpc_load, (servers[t].grpc, message)) for t in transports]
                if args.h2load:
                    loads += [(servers[t], f"gRPC ({t}), h2load", _h2load, (servers[t].grpc, message))
                              for t in transports]
                loads += [(server, "HTTP binary", _wrk, (target, binary, binary_headers)),
                          (server, "HTTP JSON", _wrk, (target, _json_body(x), json_headers))]
                for measured, kind, measure, load in loads:
                    rows.append(_measure(measured, kind, size, c, measure, load, args.seconds))
        # What a user's client costs: tritonclient.grpc's synchronous infer, numpy in and out.
        for t in transports:
            _tritonclient_load(servers[t].grpc, _sample(64), 1, 0.5)  # its channel opened and warm
            rows.append(_measure(servers[t], f"gRPC ({t}), tritonclient.grpc client", 64, 1, _tritonclient_load,
                                 (servers[t].grpc, _sample(64)), args.seconds))
        if args.profile:
            x = _sample(64)
            binary, binary_headers = _binary_body(x)
            profiles = {f"grpc-{t}": (servers[t], _grpc_load, (servers[t].grpc, _grpc_request(x))) for t in transports}
            profiles["http-binary"] = (server, _wrk, (target, binary, binary_headers))
            for name, (measured, measure, load) in profiles.items():
                _profile(measured, args.profile / f"{name}.txt", measure, load, args.seconds)
        stack.close()
        if not args.no_floors:
            x = _sample(64)
            binary, binary_headers = _binary_body(x)
            bare = [sys.executable, str(ROOT / "bench" / "bare_uvicorn.py"), "{port}"]
            for kind, label in _ECHOES.items():
                echo = [sys.executable, str(ROOT / "bench" / "grpc_echo.py"), "{grpc_port}", "64", kind]
                with _Server(echo, args.server_cpus, ready="grpc") as server:
                    for c in levels:
                        rows.append(_measure(server, f"gRPC floor ({label})", 64, c, _grpc_load,
                                             (server.grpc, _grpc_request(x)), args.seconds))
            with _Server(bare, args.server_cpus, ready="tcp") as server:
                for c in levels:
                    rows.append(_measure(server, "HTTP floor (bare uvicorn)", 64, c, _wrk,
                                         (server.url + "/", binary, binary_headers), args.seconds))
    _print(rows, args, transports, started, load_before, os.getloadavg())
    if args.profile:
        for name in [*(f"grpc-{t}" for t in transports), "http-binary"]:
            _print_profile(args.profile / f"{name}.txt")


_ECHOES = {  # bench/grpc_echo.py's servers
    "aio": "grpc.aio echo",
    "sync": "synchronous server echo",
    "bridge": "synchronous server, reply from the event loop",
    "h2": "hyper-h2 on the event loop",
    "asyncio": "modelserve's asyncio transport",
}


def _measure(server: "_Server", kind: str, size: int, concurrency: int, measure, load, seconds: float) -> Row:
    """One row: the load's rates, and the CPU the server and the client spent per call."""
    counts_before = server.counts()
    server_before, began = procstat.cpu_seconds(server.process.pid), time.perf_counter()
    client_before = _client_cpu()
    requests_per_s, p50, p99, errors = measure(*load, concurrency, seconds)
    elapsed = time.perf_counter() - began
    server_cpu = procstat.cpu_seconds(server.process.pid) - server_before
    client_cpu = _client_cpu() - client_before
    calls = max(requests_per_s * elapsed, 1.0)
    per_execution = None
    if counts_before is not None:  # the batching the calls got (a gRPC load's 20 warm-up calls among them)
        (rows_before, executions_before), (rows_after, executions_after) = counts_before, server.counts()
        per_execution = (rows_after - rows_before) / max(executions_after - executions_before, 1)
    return Row(kind, size, concurrency, requests_per_s * size, p50, p99, errors,
               server_cpu / calls * 1e6, server_cpu / elapsed, client_cpu / calls * 1e6, per_execution)


def _client_cpu() -> float:
    """This process (the gRPC client and its threads) plus the wrk runs it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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


def _h2load(address: str, message: bytes, concurrency: int, seconds: float):
    """h2load's `concurrency` streams in flight on one connection for `seconds`, each POSTing the
    same gRPC-framed message, as wrk sends one prepared body: (requests/s, p50 ms, p99 ms, errors).
    h2load reads no trailers, so one call through grpcio first checks that the message is answered
    OK; a status other than 200 counts as an error."""
    with grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", -1)]) as channel:
        channel.unary_unary(INFER)(message, timeout=30)  # raises unless grpc-status is OK
    with tempfile.TemporaryDirectory() as folder:
        body, log = Path(folder) / "body", Path(folder) / "log"
        body.write_bytes(b"\0" + len(message).to_bytes(4, "big") + message)
        out = subprocess.run(
            ["h2load", "-D", f"{seconds:g}", "-c", "1", "-m", str(concurrency), "-t", "1", "-d", str(body),
             "-H", "content-type: application/grpc", "-H", "te: trailers", "--log-file", str(log),
             f"http://{address}{INFER}"],
            capture_output=True, text=True, check=True,
        )
        # Per request: start (µs since the epoch), HTTP status, µs until the end of the response.
        entries = [line.split("\t") for line in log.read_text().splitlines() if line]
    latencies = np.array([int(e[2]) for e in entries if e[1] == "200"], dtype=float) / 1000
    errors = sum(e[1] != "200" for e in entries)
    rate = next(float(line.split(", ")[1].split()[0]) for line in out.stdout.splitlines() if line.startswith("finished in"))
    p50, p99 = np.percentile(latencies, [50, 99]) if len(latencies) else (0.0, 0.0)
    return rate, p50, p99, errors


def _tritonclient_load(address: str, x: np.ndarray, concurrency: int, seconds: float):
    """One call at a time with tritonclient.grpc, building the request from numpy and reading
    the answer into numpy, as a user's code does: (requests/s, p50 ms, p99 ms, errors)."""
    import tritonclient.grpc as tg

    assert concurrency == 1, "the synchronous client makes one call at a time"
    client = _TRITON_CLIENTS.get(address) or _TRITON_CLIENTS.setdefault(address, tg.InferenceServerClient(address))
    latencies, errors, deadline = [], 0, time.perf_counter() + seconds
    began = time.perf_counter()
    while (started := time.perf_counter()) < deadline:
        tensor = tg.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        try:
            client.infer("mlp", [tensor]).as_numpy("logits")
            latencies.append(time.perf_counter() - started)
        except tg.InferenceServerException:
            errors += 1
    elapsed = time.perf_counter() - began
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000 if latencies else (0.0, 0.0)
    return len(latencies) / elapsed, p50, p99, errors


_TRITON_CLIENTS: dict = {}  # one channel per address, opened (and warmed) before the timed row


# Where a sample's time goes, first match wins: (label, test on (thread, frames)).
_PROFILE_PARTS = [
    ("ONNX Runtime's run", lambda thread, frames: any("onnxruntime_inference_collection.py" in f for f in frames)),
    ("grpc's poller thread", lambda thread, frames: "_poll_wrapper" in thread),
    ("gRPC servicer and codec (service/grpc/)", lambda thread, frames: any("service/grpc/" in f for f in frames)),
    ("HTTP route and codec (service/http_protocol.py, protocol/)",
     lambda thread, frames: any("service/http_protocol.py" in f or "service/protocol/" in f for f in frames)),
    ("native code under the event loop (leaf Runner.run: uvloop, grpc's Cython core, sockets)",
     lambda thread, frames: frames[-1].startswith("Runner.run")),
    ("the rest (batcher, runner, metrics, asyncio, uvicorn)", lambda thread, frames: True),
]


def _profile(server: "_Server", out: Path, measure, load, seconds: float) -> None:
    """py-spy (not pausing the server) while 8 calls are kept in flight; collapsed stacks to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    recorder = subprocess.Popen([spy, "record", "--pid", str(server.process.pid), "--duration", str(int(seconds)),
                                 "--rate", "200", "--nonblocking", "--threads", "--format", "raw", "--output",
                                 str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attaches
    measure(*load, 8, seconds)
    _, err = recorder.communicate(timeout=60)
    if recorder.returncode != 0:
        sys.exit(f"py-spy failed: {err.decode()[-2000:]}")


def _print_profile(path: Path) -> None:
    shares, total = {label: 0 for label, _ in _PROFILE_PARTS}, 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        thread, *frames = stack.split(";")
        total += int(count)
        label = next(label for label, test in _PROFILE_PARTS if test(thread, frames or [""]))
        shares[label] += int(count)
    print(f"\npy-spy, 64-row calls, 8 in flight ({path}, {total} samples):")
    for label, count in shares.items():
        print(f"  {100 * count / max(total, 1):5.1f}%  {label}")


def _wrk(url: str, body: bytes, headers: dict, connections: int, seconds: float):
    result = wrk.run(url, body, headers, connections, seconds)
    return result.requests_per_s, result.p50_ms, result.p99_ms, result.errors


class _Server:
    """A server started on free ports ({port}, {grpc_port} in its command), pinned to `cpus`."""

    def __init__(self, command: list[str], cpus: str, ready: str = "http"):
        self.port, self.grpc_port = _free_port(), _free_port()
        self.url, self.grpc = f"http://127.0.0.1:{self.port}", f"127.0.0.1:{self.grpc_port}"
        self.command = ["taskset", "-c", cpus, *(a.format(port=self.port, grpc_port=self.grpc_port) for a in command)]
        self.ready = ready

    def __enter__(self):
        # taskset execs the server, so this pid is the server's own (procstat counts its tree).
        self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env={**os.environ, "MODELSERVE_LOG_LEVEL": "warning"})
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited with {self.process.returncode}")
            if self._answers():
                break
            time.sleep(0.1)
        time.sleep(1.0)
        return self

    def _answers(self) -> bool:
        if self.ready == "http":
            try:
                return httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        if self.ready == "grpc":
            with grpc.insecure_channel(self.grpc) as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=1)
                    return True
                except grpc.FutureTimeoutError:
                    return False
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def counts(self) -> tuple[int, int] | None:
        """The MLP's (inference_count, execution_count) from modelserve's statistics; None for
        the floors, which run no model."""
        if self.ready != "http":
            return None
        stats = httpx.get(f"{self.url}/v2/models/mlp/stats", timeout=10).json()["model_stats"][0]
        return stats["inference_count"], stats["execution_count"]

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _print(rows: list[Row], args, transports, started, load_before, load_after) -> None:
    print(f"{started:%Y-%m-%d %H:%M} UTC; machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, onnxruntime {ort.__version__}, grpcio {grpc.__version__}; "
          f"{args.seconds:g} s per row; model: bench/models.py MLP, dynamic batching (max 64); "
          f"servers on CPU {args.server_cpus}, load from CPU {args.client_cpus}; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    # rows per server CPU-second: the rate a core of its own would give, whatever share of its
    # core the server got on a machine shared with other work.
    print("| transport | rows per request | concurrent | rows/s | p50 ms | p99 ms | errors "
          "| server µs/call | server core | rows per server CPU-s | client µs/call | rows per execution |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r.kind} | {r.size} | {r.concurrency} | {r.rows_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
              f"| {r.errors} | {r.server_us:,.0f} | {r.server_share:.0%} | {r.size / r.server_us * 1e6:,.0f} "
              f"| {r.client_us:,.0f} | {'' if r.rows_per_execution is None else f'{r.rows_per_execution:.1f}'} |")
    kinds = (*(f"gRPC ({t})" for t in transports), *(f"gRPC ({t}), h2load" for t in transports if args.h2load),
             "HTTP binary")
    best = {k: max((r for r in rows if r.kind == k and r.size == 64), key=lambda r: r.rows_per_s) for k in kinds}
    cheapest = {k: min((r for r in rows if r.kind == k and r.size == 64), key=lambda r: r.server_us) for k in kinds}
    http_best, http_cheapest = best["HTTP binary"], cheapest["HTTP binary"]
    for kind in kinds[:-1]:
        verdict = "met" if best[kind].rows_per_s >= http_best.rows_per_s else "NOT met"
        per_core = "met" if cheapest[kind].server_us <= http_cheapest.server_us else "NOT met"
        print(f"\nfloor, {kind} (64-row rows/s >= HTTP binary 64-row rows/s, best over concurrency): "
              f"{best[kind].rows_per_s:,.0f} vs {http_best.rows_per_s:,.0f}: {verdict}")
        print(f"per server CPU-second, {kind} (cheapest 64-row call over concurrency): "
              f"{64e6 / cheapest[kind].server_us:,.0f} vs {64e6 / http_cheapest.server_us:,.0f} rows "
              f"({cheapest[kind].server_us:,.0f} vs {http_cheapest.server_us:,.0f} µs a call): {per_core}")

if __name__ == "__main__":
    main()

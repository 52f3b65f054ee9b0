"""`--workers 2` against one worker, on every core, with every answer checked.

bench/run.py's `--workers` section. The servers and the load generator share the machine's cores
unpinned, so the load generator's CPU is taken from the servers': it is wrk, whose Lua script
compares every answer with one verified against ONNX Runtime (bench/wrk_checked.py), at a
fraction of the CPU bench/loadgen.py needs. Both server sizes run in one sitting, with the same
requests and load generator; each process's CPU in the measured window is reported, so a missed
ratio shows where the cores went.
"""

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import cases
import loadgen
import procstat
import wrk_checked

PATH = "/v2/models/mlp/infer"
HEADERS = {"Content-Type": "application/json"}
DISTINCT = 8  # distinct requests (ids r0..r7), each answer compared with its own verified one
THREADS = 2  # wrk's


@dataclass
class Row:
    workers: int
    result: wrk_checked.Result
    processes: list[tuple[str, float]]  # (role, CPU seconds in the measured window)

    @property
    def requests_per_s(self) -> float:
        return self.result.requests_per_s

    @property
    def server_cpu_s(self) -> float:
        return sum(cpu for _, cpu in self.processes)


def measure(start_server: Callable[[int], AbstractContextManager], requests: Sequence[loadgen.Case],
            connections: int, seconds: float, warmup: float, rounds: int = 1) -> list[Row]:
    """`start_server(workers)` enters a server (`.url`, `.process`) for 1 and then 2 workers,
    `rounds` times in turn (a shared machine's other load then falls on both alike)."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(range(os.cpu_count())))  # wrk, a child, inherits every core
    rows = []
    try:
        for workers in (1, 2) * rounds:
            with start_server(workers) as server:
                checked = wrk_checked.expected(server.url, PATH, requests[:DISTINCT], cases.json_body, HEADERS)
                url = server.url + PATH
                wrk_checked.run(url, checked, HEADERS, connections, max(1.0, warmup), THREADS)
                pids = procstat.tree(server.process.pid)
                before = {pid: procstat.own_cpu_seconds(pid) for pid in pids}
                result = wrk_checked.run(url, checked, HEADERS, connections, seconds, THREADS)
                processes = [(_role(pid, server.process.pid, workers), procstat.own_cpu_seconds(pid) - before[pid])
                             for pid in pids]
                rows.append(Row(workers, result, processes))
    finally:
        os.sched_setaffinity(0, previous)
    return rows


def _role(pid: int, root: int, workers: int) -> str:
    if pid == root:
        return "server" if workers == 1 else "supervisor"
    command = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
    return "helper" if b"resource_tracker" in command else "worker"


def medians(rows: list[Row]) -> list[Row]:
    """One row per server size: the round with its median req/s (the first of two)."""
    found = []
    for workers in (1, 2):
        mine = sorted((r for r in rows if r.workers == workers), key=lambda r: r.requests_per_s)
        if mine:
            found.append(mine[(len(mine) - 1) // 2])
    return found


def table(rows: list[Row], connections: int) -> str:
    if not rows:
        return ""
    one = medians(rows)[0].requests_per_s
    load = os.getloadavg()
    lines = [(f"\nmodelserve `--workers N` (default flags otherwise), max_batch_size 64, V2 JSON 1 row, {connections} "
              f"connections. Servers and the load generator unpinned on all {os.cpu_count()} cores of the same machine: "
              f"wrk ({THREADS} threads), whose Lua script compares every answer with the answer to the same request "
              f"(one of {DISTINCT}, told apart by the `id` V2 echoes) verified against ONNX Runtime in Python; a wrong "
              f"answer or a status other than 200 fails the run. Load average at the end {load[0]:.2f} / {load[1]:.2f} / "
              f"{load[2]:.2f}.\n"),
             ("| workers | req/s | p50 ms | p99 ms | answers checked (byte for byte + within tolerance) | socket errors "
              "| server CPU % | CPU % by process | req per server CPU-s | wrk CPU % | × one worker (median) |"),
             "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for row in rows:
        r = row.result
        processes = ", ".join(f"{role} {100 * cpu / r.seconds:.0f}" for role, cpu in row.processes)
        lines.append(f"| {row.workers} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
                     f"| {r.checked:,} ({r.exact:,} + {r.close:,}) | {r.socket_errors} "
                     f"| {100 * row.server_cpu_s / r.seconds:.0f} | {processes} "
                     f"| {r.requests / row.server_cpu_s:,.0f} | {100 * r.client_cpu_s / r.seconds:.0f} "
                     f"| {row.requests_per_s / one:.2f} |")
    return "\n".join(lines)

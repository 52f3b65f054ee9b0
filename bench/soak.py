"""Soak: minutes of mixed traffic at a steady rate near capacity, watching errors, latency and memory.

    .venv/bin/python bench/soak.py [--minutes 10] [--load 0.8 | --rate R] [--repository models]
                                   [--url URL --pid PID] [--out soak.json]

Starts `python -m service` on the repository (or uses --url, with --pid to read its memory),
measures its capacity with the request mix of bench/soak_traffic.py (closed loop, 20 s), then
sends that mix open-loop at --load times the capacity: requests start on schedule whether or
not earlier ones finished, as real clients do. Per minute: requests, unexpected answers, p50
and p99 latency, the server's RSS and open file descriptors. Targets: no unexpected answer,
p99 not drifting up, RSS growth under 5% after the first minute. V2 answers are compared with
ONNX Runtime's output on --repository's graphs: a wrong one is counted (status WRONG) and makes
the run exit non-zero. docs/RELIABILITY.md has a run.
"""

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import soak_traffic

ROOT = Path(__file__).resolve().parent.parent
MAX_IN_FLIGHT = 256  # beyond this the client, not the server, is the bottleneck: counted, not sent
CONNECTIONS = 64  # httpx's pool costs CPU per request with its size: more starves this client


class Recorder:
    """Every answer: (seconds since start, kind, latency s, status, as expected)."""

    def __init__(self):
        self.start = time.monotonic()
        self.rows: list[tuple[float, str, float, str, bool]] = []
        self.not_sent = 0

    async def one(self, client: httpx.AsyncClient, kind: soak_traffic.Kind) -> None:
        call = random.choice(kind.calls)
        began = time.monotonic()
        try:
            status = str(await call(client))
        except httpx.HTTPError as exc:  # a timeout or a dropped connection: unexpected
            status = type(exc).__name__
        done = time.monotonic()
        expected = status.lstrip("-").isdigit() and int(status) in kind.expected
        self.rows.append((began - self.start, kind.name, done - began, status, expected))


def pick(mix: soak_traffic.Mix) -> soak_traffic.Kind:
    return random.choices(mix.kinds, weights=[k.weight for k in mix.kinds])[0]


async def calibrate(url: str, mix: soak_traffic.Mix, seconds: float = 20.0, workers: int = 32) -> float:
    """Requests per second of the mix with `workers` clients always waiting on an answer."""
    recorder = Recorder()
    deadline = time.monotonic() + seconds

    async def worker(client):
        while time.monotonic() < deadline:
            await recorder.one(client, pick(mix))

    async with _client(url, workers) as client:
        await asyncio.gather(*(worker(client) for _ in range(workers)))
    return len(recorder.rows) / seconds


async def soak(url: str, mix: soak_traffic.Mix, rate: float, seconds: float, pid: int | None) -> dict:
    recorder = Recorder()
    samples = []  # (minute, rss MB, fds, threads, server CPU s, client CPU s, machine busy CPU s)
    in_flight: set[asyncio.Task] = set()

    async def sample_server():
        for minute in range(int(seconds // 60) + 1):
            samples.append((minute, *_server_usage(pid)))
            await asyncio.sleep(max(0.0, recorder.start + (minute + 1) * 60 - time.monotonic()))

    sampler = asyncio.create_task(sample_server())
    async with _client(url, CONNECTIONS) as client:
        sent = 0
        while (now := time.monotonic() - recorder.start) < seconds:
            due = int(now * rate)  # open loop: the schedule, not the answers, sets the pace
            for _ in range(due - sent):
                if len(in_flight) >= MAX_IN_FLIGHT:
                    recorder.not_sent += 1
                    continue
                task = asyncio.create_task(recorder.one(client, pick(mix)))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            sent = due
            await asyncio.sleep(min(0.005, 1 / rate))
        await asyncio.gather(*in_flight)
    samples.append((seconds / 60, *_server_usage(pid)))
    sampler.cancel()
    return {"rows": recorder.rows, "not_sent": recorder.not_sent, "samples": samples}


def _client(url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=60)


def _server_usage(pid: int | None) -> tuple:
    """RSS in MB, open file descriptors, threads and CPU seconds of the server process; this
    client's CPU seconds; and the whole machine's busy CPU seconds (the machine may be shared:
    what neither the server nor this client used went to others)."""
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = (sum(cpu) - cpu[3] - cpu[4]) / ticks  # all but idle and iowait
    client = sum(os.times()[:2])
    if pid is None:
        return None, None, None, None, client, busy
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_mb = int(fields["VmRSS"].split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    server = (int(stat[11]) + int(stat[12])) / ticks  # utime + stime
    return rss_mb, len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"]), server, client, busy


# ------------------------------------------------------------------------------ report

def report(result: dict, mix: soak_traffic.Mix, rate: float, capacity: float | None, log_errors: int) -> tuple[str, dict]:
    rows, samples = result["rows"], result["samples"]
    by_minute = defaultdict(list)
    for row in rows:
        by_minute[int(row[0] // 60)].append(row)
    kinds = [k.name for k in mix.kinds]
    lines = [(f"Mix: {', '.join(f'{k.name} {k.weight:g}%' for k in mix.kinds)}; skipped: "
              f"{'; '.join(f'{k} ({why})' for k, why in mix.skipped.items()) or 'none'}."),
             f"Rate: {rate:.0f} requests/s" + (f" ({rate / capacity:.0%} of the {capacity:.0f}/s measured)" if capacity else ""),
             "", "| minute | requests | unexpected | p50 ms | p99 ms | " + " | ".join(f"p99 {k}" for k in kinds)
             + " | RSS MB | fds | threads | CPU % server / client / others |", "|---" * (9 + len(kinds)) + "|"]
    minutes = []

    def usage(minute: int) -> tuple:
        """The sample at the end of `minute` (0-based), or at the end of the run."""
        later = [s for s in samples if s[0] >= minute + 1]
        return later[0] if later else samples[-1]

    def cpu(minute: int) -> tuple:
        """CPU % (of one core) in `minute`: the server's, this client's, everything else's."""
        end, start = usage(minute), ([s for s in samples if s[0] <= minute] or samples)[-1]
        wall = (end[0] - start[0]) * 60 or 1.0
        server = (end[4] - start[4]) / wall * 100 if end[4] is not None else 0.0
        client = (end[5] - start[5]) / wall * 100
        return server, client, (end[6] - start[6]) / wall * 100 - server - client

    for minute in sorted(by_minute):
        chunk = by_minute[minute]
        latency = np.array([r[2] for r in chunk]) * 1000
        per_kind = {k: np.array([r[2] for r in chunk if r[1] == k]) * 1000 for k in kinds}
        rss, fds, threads = usage(minute)[1:4]
        server_cpu, client_cpu, others_cpu = cpu(minute)
        entry = {"minute": minute + 1, "requests": len(chunk), "unexpected": sum(not r[4] for r in chunk),
                 "p50_ms": float(np.percentile(latency, 50)), "p99_ms": float(np.percentile(latency, 99)),
                 "p99_ms_by_kind": {k: float(np.percentile(v, 99)) if len(v) else None for k, v in per_kind.items()},
                 "rss_mb": rss, "fds": fds, "threads": threads,
                 "cpu_percent": {"server": server_cpu, "client": client_cpu, "others": others_cpu}}
        minutes.append(entry)
        kind_cells = " | ".join(f"{v:.1f}" if v is not None else "-" for v in entry["p99_ms_by_kind"].values())
        lines.append(f"| {entry['minute']} | {entry['requests']} | {entry['unexpected']} | {entry['p50_ms']:.1f} | "
                     f"{entry['p99_ms']:.1f} | {kind_cells} | {_num(rss)} | {_num(fds)} | {_num(threads)} | "
                     f"{server_cpu:.0f} / {client_cpu:.0f} / {others_cpu:.0f} |")
    outcomes = Counter((r[1], r[3], r[4]) for r in rows)
    lines += ["", "| kind | status | count | expected |", "|---|---|---|---|"]
    lines += [f"| {k} | {s} | {n} | {'yes' if ok else '**no**'} |" for (k, s, ok), n in sorted(outcomes.items())]
    unexpected = sum(not r[4] for r in rows)
    wrong = sum(r[3] == str(soak_traffic.WRONG) for r in rows)
    verdict = _verdict(minutes, len(rows), unexpected, wrong, result["not_sent"], log_errors)
    lines += ["", *verdict["lines"]]
    return "\n".join(lines), {"rate": rate, "capacity": capacity, "minutes": minutes,
                              "outcomes": [[k, s, ok, n] for (k, s, ok), n in outcomes.items()],
                              "skipped": mix.skipped, **verdict["numbers"]}


def _verdict(minutes: list[dict], answers: int, unexpected: int, wrong: int, not_sent: int, log_errors: int) -> dict:
    rss = [m["rss_mb"] for m in minutes if m["rss_mb"] is not None]
    growth = (rss[-1] - rss[0]) / rss[0] if len(rss) > 1 else None  # from the end of minute 1
    p99 = [m["p99_ms"] for m in minutes]
    # Drift: the last third of the run against the second to fourth minutes (the first warms up).
    early, late = p99[1:4] or p99, p99[-max(1, len(p99) // 3):]
    drift = float(np.median(late) / np.median(early)) if early else None
    lines = [f"Answers: {answers:,} (the sum of either table above).",
             (f"Unexpected answers: {unexpected}, of which wrong tensors (200 but not ONNX Runtime's "
              f"output): {wrong}. Requests the client could not start (over "
              f"{MAX_IN_FLIGHT} in flight): {not_sent}. Error lines in the server log: {log_errors}."),
             f"RSS growth after the first minute: {growth:+.1%}." if growth is not None else "RSS: not measured.",
             f"p99 of the last third / p99 of minutes 2-4: {drift:.2f}." if drift is not None else ""]
    return {"lines": lines, "numbers": {"answers": answers, "unexpected": unexpected, "wrong": wrong, "not_sent": not_sent,
                                        "rss_growth": growth,
                                        "p99_drift": drift, "server_log_errors": log_errors}}


def _num(value) -> str:
    return "-" if value is None else f"{value:.0f}"


# ------------------------------------------------------------------------------ main

def start_server(repository: Path, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MODELSERVE_LOG_LEVEL": "warning", "MODELSERVE_ACCESS_LOG": "false"}
    process = subprocess.Popen([sys.executable, "-m", "service", "--model-repository", str(repository),
                                "--port", str(port), "--grpc-port", "0"], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            sys.exit(f"the server exited:\n{log.read_text()}")
        time.sleep(0.2)
    process.kill()
    sys.exit("the server did not become ready in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--load", type=float, default=0.8, help="fraction of the measured capacity")
    parser.add_argument("--rate", type=float, help="requests per second (skips the capacity measurement)")
    parser.add_argument("--repository", type=Path, default=ROOT / "models")
    parser.add_argument("--url", help="a running server instead of starting one")
    parser.add_argument("--pid", type=int, help="with --url: the server's process, to read its memory")
    parser.add_argument("--out", type=Path, help="write the numbers as JSON here")
    parser.add_argument("--rows", type=Path, help="write every answer (start s, kind, latency s, status) as JSON lines")
    args = parser.parse_args()
    random.seed(0)

    log = Path(tempfile.mkdtemp(prefix="soak-")) / "server.log"
    process = None
    if args.url:
        url, pid = args.url.rstrip("/"), args.pid
    else:
        process, url = start_server(args.repository, log)
        pid = process.pid
    try:
        mix = soak_traffic.build(url, args.repository)
        capacity = None if args.rate else asyncio.run(calibrate(url, mix))
        rate = args.rate or args.load * capacity
        print(f"soaking {url} at {rate:.0f} requests/s for {args.minutes:g} min", file=sys.stderr)
        result = asyncio.run(soak(url, mix, rate, args.minutes * 60, pid))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=60)
    log_errors = sum('"level":"error"' in line for line in log.read_text().splitlines()) if process else 0
    text, numbers = report(result, mix, rate, capacity, log_errors)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(numbers, indent=1))
    if args.rows:
        args.rows.write_text("".join(json.dumps(row[:4]) + "\n" for row in result["rows"]))
    if numbers["wrong"]:
        sys.exit(f"FAILED: {numbers['wrong']} answers differ from ONNX Runtime's")


if __name__ == "__main__":
    main()

"""Per-request cost of V2 JSON infer, one core per server: A/B between code trees, and profiles.

    .venv/bin/python bench/profile_infer.py --trees /work/main,. [--rounds 3] [--seconds 6]
        [--connections 64] [--server-core 0] [--client-core 1] [--batching] [--flags ...]
        [--profile DIR]

Each tree (a checkout holding `service/`) is started in turn as a user starts it (`python -m
service`, default flags plus --flags, logs to /dev/null), pinned with taskset to --server-core,
and loaded by wrk pinned to --client-core with 1-row requests; the trees alternate for --rounds
rounds so a shared machine's load falls on each alike. Prints req/s per run, the median per tree
and its ratio to the first tree's, the same for requests per CPU-second of the server
(steadier than req/s on a shared machine), and the load average. With --profile, one extra run per tree
records py-spy (`--format raw`, collapsed stacks) into DIR and prints its heaviest frames.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).parent))
import wrk

import models

PYTHON = sys.executable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", default="/work/main,.",
                        help="comma-separated code trees, each optionally with its own flags after a '+' "
                             "(/work/main+--no-access-log); the first is the reference")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--client-core", default="1")
    parser.add_argument("--batching", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--flags", default="", help="extra modelserve flags, for every tree")
    parser.add_argument("--profile", default="", help="folder for py-spy profiles ('' = none)")
    args = parser.parse_args()
    trees = args.trees.split(",")

    with tempfile.TemporaryDirectory() as folder:
        repository = models.write_repository(Path(folder), args.batching)
        body = orjson.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                          "data": [round(0.01 * i, 2) for i in range(64)]}]})
        rates: dict[str, list[float]] = {t: [] for t in trees}
        per_cpu: dict[str, list[float]] = {t: [] for t in trees}
        for round_ in range(args.rounds):
            for tree in trees:
                with Server(tree, repository, args) as url:
                    cpu = _cpu_seconds(Server.last_pid)
                    result = _wrk(url, body, args)
                    cpu = _cpu_seconds(Server.last_pid) - cpu
                rates[tree].append(result.requests_per_s)
                per_cpu[tree].append(result.requests_per_s * round(args.seconds) / max(cpu, 0.01))
                print(f"round {round_ + 1} {tree}: {result.requests_per_s:,.0f} req/s, {per_cpu[tree][-1]:,.0f} req per "
                      f"CPU-s, p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms errors {result.errors}", flush=True)
        if args.profile:
            out = Path(args.profile)
            out.mkdir(parents=True, exist_ok=True)
            for index, tree in enumerate(trees):
                with Server(tree, repository, args) as url:
                    raw = out / f"{index}.txt"
                    spy = subprocess.Popen(["taskset", "-c", args.client_core, str(Path(PYTHON).parent / "py-spy"),
                                            "record", "--format", "raw", "--nonblocking", "-r", "200",
                                            "-d", str(round(args.seconds)), "-p", str(Server.last_pid), "-o", str(raw)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    _wrk(url, body, args)
                    spy.wait(timeout=60)
                print(f"\nprofile {tree} ({raw}):")
                _print_top(raw)

    reference = statistics.median(rates[trees[0]])
    reference_cpu = statistics.median(per_cpu[trees[0]])
    print(f"\nload average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"server on core {args.server_core}, wrk on core {args.client_core}, c={args.connections}, "
          f"{args.seconds:g} s per run, batching {'on' if args.batching else 'off'}, flags '{args.flags}'")
    for tree in trees:
        median = statistics.median(rates[tree])
        cpu = statistics.median(per_cpu[tree])
        print(f"{tree}: median {median:,.0f} req/s ({median / reference:.2f}x), {cpu:,.0f} req per CPU-s "
              f"({cpu / reference_cpu:.2f}x); runs " + ", ".join(f"{r:,.0f}" for r in rates[tree]))


def _wrk(url: str, body: bytes, args) -> wrk.Result:
    """bench/wrk.py's run, with wrk pinned to the client core."""
    with tempfile.TemporaryDirectory() as folder:
        body_path = Path(folder) / "body"
        body_path.write_bytes(body)
        script = Path(folder) / "post.lua"
        script.write_text(wrk.LUA.format(body=body_path, headers='wrk.headers["Content-Type"] = "application/json"'))
        out = subprocess.run(
            ["taskset", "-c", args.client_core, "wrk", "-t1", f"-c{args.connections}", f"-d{round(args.seconds)}s",
             "--latency", "-s", str(script), f"{url}/v2/models/mlp/infer"],
            capture_output=True, text=True, check=True,
        ).stdout
    return wrk.Result(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=wrk._latency(out, "50%"), p90_ms=wrk._latency(out, "90%"), p99_ms=wrk._latency(out, "99%"),
        errors=wrk._errors(out),
    )


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of the server (taskset execs it, so the pid is the server's):
    a shared core's load changes req/s far more than req per CPU-second."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _print_top(raw: Path, count: int = 25) -> None:
    """Self time and total time per frame from py-spy's collapsed stacks."""
    own, total, samples = Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        samples += int(n)
        own[frames[-1]] += int(n)
        for frame in set(frames):
            total[frame] += int(n)
    print(f"{samples} samples; self time:")
    for frame, n in own.most_common(count):
        print(f"  {100 * n / samples:5.1f}%  {frame}")
    print("total time:")
    for frame, n in total.most_common(count):
        print(f"  {100 * n / samples:5.1f}%  {frame}")


class Server:
    last_pid = 0

    def __init__(self, tree: str, repository: Path, args):
        tree, _, flags = tree.partition("+")
        with __import__("socket").socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.command = ["taskset", "-c", args.server_core, PYTHON, "-m", "service", "--model-repository",
                        str(repository), "--port", str(self.port), "--grpc-port", "0", *args.flags.split(), *flags.split()]
        self.tree = Path(tree).resolve()

    def __enter__(self) -> str:
        # The tree's own service/ wins: `python -m` puts the working folder first on sys.path.
        self.process = subprocess.Popen(self.command, cwd=self.tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        Server.last_pid = self.process.pid
        url = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/v2/models/mlp/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{self.tree}: server did not become ready")
        time.sleep(0.5)
        return url

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


if __name__ == "__main__":
    main()

"""Where a gRPC server's CPU goes, thread by thread, per 64-row ModelInfer call.

    .venv/bin/python bench/grpc_threads.py [--seconds 4] [--concurrency 64] [--server aio|sync|bridge|modelserve]

Starts bench/grpc_echo.py (one of its servers) or modelserve on the benchmark MLP, pinned to
--server-cpus, loads it from --client-cpus with bench/grpc_vs_http.py's client, and prints for
each thread that ran the CPU it spent and the context switches it made per call (from
/proc/PID/task). grpcio's experiments come from the environment: run it again with
GRPC_EXPERIMENTS= (empty) to see the EventEngine listener's threads at work.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent))
import grpc_vs_http
import procstat
from run import cpu_list
from servers import _sample

import models

ROOT = Path(__file__).resolve().parent.parent


def threads(pid: int) -> dict[int, tuple[str, float, int, int]]:
    """Each thread's (name, CPU seconds, voluntary and involuntary context switches)."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines()
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
        name, rest = stat.split("(", 1)[1].rsplit(")", 1)
        fields = rest.split()
        switches = {k: int(v) for k, v in (line.split(":") for line in status) if k.endswith("ctxt_switches")}
        found[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / procstat.TICKS,
                           switches["voluntary_ctxt_switches"], switches["nonvoluntary_ctxt_switches"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--server", default="modelserve", choices=["aio", "sync", "bridge", "modelserve"])
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    args = parser.parse_args()
    os.sched_setaffinity(0, cpu_list(args.client_cpus))
    x = _sample(64)
    message = grpc_vs_http._grpc_request(x)
    with tempfile.TemporaryDirectory() as folder:
        if args.server == "modelserve":
            repository = models.write_repository(Path(folder), True)
            command, ready = [sys.executable, "-m", "service", "--model-repository", str(repository), "--port",
                              "{port}", "--grpc-port", "{grpc_port}", "--no-access-log"], "http"
        else:
            command, ready = [sys.executable, str(ROOT / "bench" / "grpc_echo.py"), "{grpc_port}", "64",
                              args.server], "grpc"
        with grpc_vs_http._Server(command, args.server_cpus, ready=ready) as server:
            grpc_vs_http._grpc_load(server.grpc, message, args.concurrency, 1.0)  # the pool's threads started
            before = threads(server.process.pid)
            row = grpc_vs_http._measure(server, args.server, 64, args.concurrency, grpc_vs_http._grpc_load,
                                        (server.grpc, message), args.seconds)
            after = threads(server.process.pid)
    calls = row.rows_per_s / 64 * args.seconds
    print(f"{args.server}, 64-row calls, {args.concurrency} in flight, GRPC_EXPERIMENTS="
          f"{os.environ.get('GRPC_EXPERIMENTS', '(unset: modelserve sets -event_engine_listener)')}: "
          f"{row.server_us:.0f} µs of server CPU a call\n")
    print("| thread | CPU µs per call | voluntary switches per call | involuntary switches per call |")
    print("|---|---:|---:|---:|")
    spent = []
    for tid, (name, cpu, voluntary, involuntary) in after.items():
        _, cpu0, voluntary0, involuntary0 = before.get(tid, (name, 0.0, 0, 0))
        # Python 3.11 names no OS thread: grpc's, uvloop's and the pool's are all "python".
        label = f"{name} {tid}" + (" (main: the event loop)" if tid == server.process.pid else "")
        spent.append((cpu - cpu0, voluntary - voluntary0, involuntary - involuntary0, label))
    spent.sort(reverse=True)
    rest = [0.0, 0, 0, 0]
    for cpu, voluntary, involuntary, label in spent:
        if cpu / calls * 1e6 >= 5:  # the rest: grpc's pool, a few µs a thread
            print(f"| {label} | {cpu / calls * 1e6:.1f} | {voluntary / calls:.2f} | {involuntary / calls:.2f} |")
        else:
            rest = [rest[0] + cpu, rest[1] + voluntary, rest[2] + involuntary, rest[3] + 1]
    print(f"| {rest[3]} other threads | {rest[0] / calls * 1e6:.1f} | {rest[1] / calls:.2f} | {rest[2] / calls:.2f} |")


if __name__ == "__main__":
    main()

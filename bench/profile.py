"""Where modelserve's time goes under load: a py-spy profile of the server on one core.

    .venv/bin/python bench/profile.py [--connections 64] [--seconds 10] [--config batched|plain]
                                      [--flag --no-access-log ...] [--out profile.txt]

modelserve (default flags plus the benchmark model's config.yaml) runs pinned to --server-cpus;
this process drives it with bench/loadgen.py (--kind: V2 JSON 1 row by default, answers checked) from
--client-cpus while py-spy (from PATH or the Triton venv of bench/triton_setup.sh) samples it
without pausing it. Prints the share of samples by thread, by the leaf function (self time; `Runner.run` as the
leaf is uvloop's C loop under it: socket reads and writes, callbacks), by
the package the leaf is in, and the service's own functions by inclusive time: a lower bound,
as uvloop resumes coroutines from C and a sampled stack often starts at the resumed coroutine.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import cases
import loadgen
import report
import run
import triton

import models

PACKAGES = [  # (what the file path holds, the name shown): the first that matches wins
    ("/service/middleware/", "service: middlewares"), ("/service/protocol/", "service: protocol (routes, V2 codec)"),
    ("/service/http_protocol.py", "service: http_protocol"), ("/service/http_infer.py", "service: http_infer (fast path)"),
    ("/service/access_log.py", "service: logs"), ("/service/logs.py", "service: logs"),
    ("/service/metrics.py", "service: metrics"), ("/service/stats.py", "service: metrics"),
    ("/service/", "service: dataplane, batcher, runtime, tasks"), ("/uvicorn/", "uvicorn"), ("/starlette/", "starlette"),
    ("/fastapi/", "fastapi"), ("/onnxruntime/", "onnxruntime"), ("/prometheus_client/", "prometheus_client"),
    ("/numpy/", "numpy"), ("/asyncio/", "asyncio"), ("/concurrent/", "concurrent.futures"),
    ("/logging/", "logging"), ("/json/", "json"), ("/anyio/", "anyio"), ("/pydantic", "pydantic"),
    ("/threading.py", "threading"), ("/uvloop/", "uvloop"), ("/httptools/", "httptools"),
]


GROUPS = [  # (the name shown, what a frame of it holds): a sample counts once if any frame matches
    ("FastAPI's native telemetry check (OpenTelemetry providers, os.environ)", "NativeTelemetry.enabled ("),
    ("the access log (stdlib logging and the JSON formatter)", ("logging/", "service/logs.py", "service/access_log.py")),
    ("Prometheus metrics", ("prometheus_client/", "service/metrics.py", "service/stats.py")),
    ("the V2 JSON/binary codec (service/protocol/v2_codec.py)", "service/protocol/v2_codec.py"),
    ("ONNX Runtime's run (Session.run)", "onnxruntime_inference_collection.py"),
]


def py_spy() -> str:
    found = shutil.which("py-spy")
    venv = triton.venv()
    if not found and venv and (venv / "bin" / "py-spy").exists():
        found = str(venv / "bin" / "py-spy")
    if not found:
        sys.exit("py-spy is missing: pip install py-spy (or run bench/triton_setup.sh, which installs it there)")
    return found


def record(args) -> tuple[Counter, loadgen.Result]:
    os.sched_setaffinity(0, run.cpu_list(args.client_cpus))
    with tempfile.TemporaryDirectory(prefix="modelserve-profile-") as folder:
        root = Path(folder)
        repository = models.write_repository(root, args.config == "batched")
        session = cases.session(repository / "mlp" / "1" / "model.onnx", "CPUExecutionProvider")
        requests = cases.build(session, args.kind)
        command = ["taskset", "-c", args.server_cpus, *run._modelserve(repository, *args.flag)]
        with run._Server(command, dict(os.environ), root / "logs") as server:
            loadgen.run(server.url, requests, args.connections, 2.0, 0.5)  # warm
            raw = root / "profile.txt"
            spy = subprocess.Popen(["taskset", "-c", args.client_cpus, py_spy(), "record", "--pid",
                                    str(server.process.pid), "--duration", str(int(args.seconds)), "--rate",
                                    str(args.rate), "--nonblocking", "--threads", "--format", "raw", "--output",
                                    str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)  # py-spy attaches
            result = loadgen.run(server.url, requests, args.connections, args.seconds - 1.5, 0.0, 4, server.cpu)
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0:
                sys.exit(f"py-spy failed: {err.decode()[-2000:]}")
            if args.out:
                shutil.copyfile(raw, args.out)
            stacks = Counter()
            for line in raw.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack:
                    stacks[stack] += int(count)
    return stacks, result


def _idle_leaves() -> set[str]:
    """Leaf frames that are a wait py-spy's idle check misses: the executor's worker blocked on
    its queue (the lock is released and re-taken between samples, so the thread looks busy)."""
    import concurrent.futures.thread as pool  # the server runs this same interpreter
    import inspect

    lines, first = inspect.getsourcelines(pool._worker)
    waits = {first + i for i, line in enumerate(lines) if "work_queue.get(block=True)" in line}
    return {f"_worker (concurrent/futures/thread.py:{n})" for n in waits}


def _frame(frame: str) -> tuple[str, str]:
    """'name (path:line)' -> ('name (file)', path)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({Path(path).name})", path


def _package(path: str) -> str:
    path = "/" + path.lstrip("/")  # py-spy writes paths under site-packages relative to it
    return next((label for needle, label in PACKAGES if needle in path), "/".join(Path(path).parts[-2:]))


def summary(stacks: Counter, top: int) -> str:
    idle = _idle_leaves()
    waiting = sum(n for stack, n in stacks.items() if stack.rsplit(";", 1)[-1] in idle)
    stacks = Counter({stack: n for stack, n in stacks.items() if stack.rsplit(";", 1)[-1] not in idle})
    total = sum(stacks.values())
    leaf, package, inclusive, threads, groups = Counter(), Counter(), Counter(), Counter(), Counter()
    for stack, count in stacks.items():
        head = stack.split(";", 1)[0]
        if head.startswith("thread "):  # 'thread (0x7f..): ThreadPoolExecutor-0_0' -> its pool's name
            threads[head.split(": ", 1)[-1].split("_")[0]] += count
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        for label, needles in GROUPS:
            if any(needle in frame for frame in frames for needle in ([needles] if isinstance(needles, str) else needles)):
                groups[label] += count
        name, path = _frame(frames[-1])
        leaf[name] += count
        package[_package(path)] += count
        for seen in {_frame(f)[0] for f in frames if _package(_frame(f)[1]).startswith("service")}:
            inclusive[seen] += count
    lines = [(f"{total:,} samples of threads with work (py-spy leaves out an idle event loop; {waiting:,} more, "
              f"of the inference thread waiting on its queue, are left out here)\n"),
             "| thread | % |", "|---|---:|", *(f"| {name} | {100 * n / total:.1f} |" for name, n in threads.most_common()),
             "", "| self time: leaf function | % |", "|---|---:|"]
    lines += [f"| `{name}` | {100 * n / total:.1f} |" for name, n in leaf.most_common(top)]
    lines += ["", "| self time by package | % |", "|---|---:|"]
    lines_groups = ["", "| inclusive: samples with any frame of | % |", "|---|---:|"]
    lines_groups += [f"| {label} | {100 * groups[label] / total:.1f} |" for label, _ in GROUPS]
    lines += [f"| {name} | {100 * n / total:.1f} |" for name, n in package.most_common(top)]
    lines += lines_groups
    # Inclusive shares undercount: uvloop resumes coroutines from C, so a sampled stack often
    # starts at the coroutine that was resumed, not at the middleware that awaits it.
    lines += ["", "| modelserve's functions, inclusive (a lower bound: see the docstring) | % |", "|---|---:|"]
    lines += [f"| `{name}` | {100 * n / total:.1f} |" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--config", choices=["batched", "plain"], default="batched",
                        help="the model's config.yaml: max_batch_size 64 (batched) or 0")
    parser.add_argument("--kind", choices=["json1", "json64", "binary64"], default="json1", help="the requests sent")
    parser.add_argument("--flag", action="append", default=[], help="a modelserve flag, e.g. --flag=--no-access-log")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--out", type=Path, help="keep py-spy's raw stacks (for flamegraph tools) here")
    args = parser.parse_args()
    stacks, result = record(args)
    print(f"modelserve ({args.config}, flags: {' '.join(args.flag) or 'defaults'}) pinned to CPU {args.server_cpus}, "
          f"load on {args.client_cpus}: {report.KIND_LABEL[args.kind]}, {args.connections} connections, "
          f"{result.requests_per_s:,.0f} requests/s under py-spy at {args.rate} Hz, {result.checked} answers checked, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print(summary(stacks, args.top))


if __name__ == "__main__":
    main()

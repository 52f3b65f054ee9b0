"""Memory per modelserve worker with every committed model loaded.

    .venv/bin/python bench/memory.py [--repository models] [--workers 1,2]

Starts `python -m service --workers N` on the repository, waits until every model in its index
is READY, sends each tensor model one request (first runs allocate ONNX Runtime's arenas), and
prints each process's RSS and PSS (shared pages split between the processes sharing them).
"""

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import procstat
import soak_traffic

ROOT = Path(__file__).resolve().parent.parent


def measure(repository: Path, workers: int) -> tuple[list[tuple[str, float, float | None]], int]:
    with socket.socket() as sock, socket.socket() as other:  # gRPC on a free port too: 8001 may be taken
        sock.bind(("127.0.0.1", 0))
        other.bind(("127.0.0.1", 0))
        port, grpc_port = sock.getsockname()[1], other.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="modelserve-memory-")) / "server.log"
    process = subprocess.Popen([sys.executable, "-m", "service", "--model-repository", str(repository), "--port",
                                str(port), "--grpc-port", str(grpc_port), "--workers", str(workers), "--log-level", "warning"],
                               cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        models = _wait_all_ready(url, process, log)
        # Several requests per model so that, behind one port, every worker most likely saw each.
        mix = soak_traffic.build(url, repository)
        calls = [c for kind in mix.kinds if kind.name in ("v2_json", "v2_binary", "predict") for c in kind.calls]

        async def touch():
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                for _ in range(4 * workers):
                    for call in calls:
                        await call(client)

        __import__("asyncio").run(touch())
        time.sleep(1.0)
        rows = []
        for pid in procstat.tree(process.pid):
            role = "server (one process)" if workers == 1 else ("supervisor" if pid == process.pid else "worker")
            if workers > 1 and pid != process.pid and "multiprocessing" in _cmdline(pid) and "spawn_main" not in _cmdline(pid):
                role = "helper"  # multiprocessing's resource tracker
            rows.append((f"{role} (pid {pid})", procstat.rss_mb(pid), procstat.pss_mb(pid)))
        return rows, models
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def _wait_all_ready(url: str, process: subprocess.Popen, log: Path) -> int:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            index = httpx.post(f"{url}/v2/repository/index", json={}, timeout=2).json()
            if index and all(row.get("state") == "READY" for row in index):
                return len(index)
        time.sleep(0.5)
    sys.exit("not every model was READY in 180 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=ROOT / "models")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    print("| --workers | process | RSS MB | PSS MB |\n|---:|---|---:|---:|")
    for workers in (int(w) for w in args.workers.split(",")):
        rows, models = measure(args.repository.resolve(), workers)
        for role, rss, pss in rows:
            print(f"| {workers} | {role} | {rss:.0f} | {pss:.0f} |" if pss is not None else f"| {workers} | {role} | {rss:.0f} | |")
        total = sum(p or r for _, r, p in rows)
        print(f"| {workers} | all {len(rows)} processes, {models} models READY | | {total:.0f} |")


if __name__ == "__main__":
    main()

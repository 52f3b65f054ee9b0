"""Diffusion samples/s with N concurrent generation requests, with and without step batching.

    .venv/bin/python bench/diffusion.py [--seconds 8] [--rounds 3] [--server-cpu 0 --load-cpu 1]
                                        [--before /path/to/other/checkout]

Each request generates one sample in 50 DDIM steps; wrk keeps N requests in flight for a fixed
time (a Python client would cost more CPU than the server's sampling loop). Without step
batching (max_batch_size 0) every generation runs its own denoiser calls; with it, the steps of
concurrent generations share executions. The server is pinned to one core and wrk to another
(taskset). With --before, the same rows run against the code of another checkout (the same
model files, the same pinning), interleaved with this one's row by row, so both see the same
neighbours; each row is the median of --rounds.
bench/run.py runs the step-batching rows of this checkout as part of the whole benchmark.
"""

import argparse
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import orjson
import wrk

REQUEST = {"num_samples": 1, "steps": 50, "sampler": "ddim", "seed": 0}
CONCURRENCY = (1, 4, 16)


def write_repositories(source: Path, root: Path) -> dict[str, Path]:
    """Two copies of the model folder, differing only in the operator's batching config."""
    repos = {}
    for label, config in (("no step batching", "max_batch_size: 0\n"), ("step batching", "max_batch_size: 64\n")):
        repo = root / label.replace(" ", "-")
        shutil.copytree(source, repo / source.name)
        (repo / source.name / "config.yaml").write_text(config)
        repos[label] = repo
    return repos


def samples_per_second(url: str, model: str, concurrency: int, seconds: float) -> float:
    result = wrk.run(f"{url}/v2/models/{model}/generate", orjson.dumps(REQUEST),
                     {"Content-Type": "application/json"}, concurrency, seconds)
    if result.errors:
        raise RuntimeError(f"{result.errors} generation requests failed")
    return result.requests_per_s * REQUEST["num_samples"]


def main() -> None:
    from servers import ROOT, _modelserve, _Server  # the bench's own server starter

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="models/digits-diffusion")
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list for the servers")
    parser.add_argument("--load-cpu", default="1", help="taskset CPU list for wrk (and this script)")
    parser.add_argument("--before", type=Path, help="another checkout whose code to measure beside this one")
    args = parser.parse_args()
    os.sched_setaffinity(0, _cpus(args.load_cpu))  # wrk inherits it
    os.environ["MODELSERVE_GRPC_PORT"] = "0"  # HTTP only: several servers run side by side
    source = (ROOT / args.model).resolve()
    trees = {"this checkout": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    print(f"load average at start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}; servers on CPU "
          f"{args.server_cpu}, wrk on CPU {args.load_cpu}; {args.seconds:g} s per row, median of {args.rounds}")
    rates: dict[tuple[str, str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        repos = write_repositories(source, Path(folder))
        servers, urls = {}, {}
        try:
            for code, tree in trees.items():
                for label, repo in repos.items():  # one at a time: each picks a free port as it starts
                    command = ["taskset", "-c", args.server_cpu, *_modelserve(repo, 1)]
                    servers[code, label], urls[code, label] = _start(_Server, command, tree)
            for _ in range(args.rounds):
                for concurrency in CONCURRENCY:
                    for (code, label), url in urls.items():
                        rate = samples_per_second(url, source.name, concurrency, args.seconds)
                        rates.setdefault((code, label, concurrency), []).append(rate)
        finally:
            for server in servers.values():
                server.__exit__(None, None, None)
    print(f"load average at end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    print(f"Diffusion: {REQUEST['num_samples']} sample(s) per request, {REQUEST['steps']} {REQUEST['sampler']} steps\n")
    print("| code | generation | concurrent requests | samples/s (median) | all rounds | × one at a time |")
    print("|---|---|---:|---:|---|---:|")
    for code in trees:
        solo = statistics.median(rates[(code, "no step batching", 1)])
        for label in repos:
            for concurrency in CONCURRENCY:
                runs = rates[(code, label, concurrency)]
                rate = statistics.median(runs)
                print(f"| {code} | {label} | {concurrency} | {rate:.1f} | {', '.join(f'{r:.0f}' for r in runs)} "
                      f"| {rate / solo:.2f} |")


def _start(server_class, command: list[str], cwd: Path, tries: int = 3):
    """A started server and its URL; again on a fresh port when it died starting (a port taken
    by a neighbour between being picked and bound)."""
    for _ in range(tries):
        server = server_class(command, cwd=cwd)
        url = server.__enter__()
        if server.process.poll() is None:
            return server, url
    raise RuntimeError(f"the server would not start: {' '.join(command)} in {cwd}")


def _cpus(spec: str) -> set[int]:
    cpus = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


if __name__ == "__main__":
    main()

"""Diffusion samples/s with N concurrent generation requests, with and without step batching.

Each request generates one sample in 50 DDIM steps; wrk keeps N requests in flight for a fixed
time (a Python client would cost more CPU than the server's sampling loop). Without step
batching (max_batch_size 0) every generation runs its own denoiser calls; with it, the calls
of concurrent generations share batches.
"""

import shutil
from pathlib import Path

import orjson
import wrk

REQUEST = {"num_samples": 1, "steps": 50, "sampler": "ddim", "seed": 0}


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

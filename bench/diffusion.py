"""Diffusion samples/s with N concurrent generation requests, with and without step batching.

Each request generates `samples` samples in `steps` DDIM steps; N clients send requests back to
back for a fixed time. Without step batching (max_batch_size 0) every generation runs its own
denoiser calls; with it, the calls of concurrent generations share batches.
"""

import asyncio
import shutil
import time
from pathlib import Path

import httpx

REQUEST = {"num_samples": 1, "steps": 50, "sampler": "ddim", "seed": 0}


def write_repositories(source: Path, root: Path) -> dict[str, Path]:
    """Two copies of the model folder, differing only in the operator's batching config."""
    repos = {}
    for label, config in (("no step batching", "max_batch_size: 0\n"),
                          ("step batching", "max_batch_size: 64\n")):
        repo = root / label.replace(" ", "-")
        shutil.copytree(source, repo / source.name)
        (repo / source.name / "config.yaml").write_text(config)
        repos[label] = repo
    return repos


async def samples_per_second(url: str, model: str, concurrency: int, seconds: float) -> float:
    deadline = time.perf_counter() + seconds
    done = 0

    async def client(index: int) -> None:
        nonlocal done
        async with httpx.AsyncClient(timeout=120) as http:
            seed = index * 100_000
            while time.perf_counter() < deadline:
                seed += 1
                response = await http.post(f"{url}/v2/models/{model}/generate", json={**REQUEST, "seed": seed})
                response.raise_for_status()
                done += REQUEST["num_samples"]

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return done / (time.perf_counter() - started)

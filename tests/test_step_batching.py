"""Step-level batching: concurrent diffusion generations share denoiser calls, and each one's
samples stay bit-identical to the same request run alone."""

import asyncio
import re
import shutil
from pathlib import Path

import httpx
import pytest

from tests.tasks import builders

ROOT = Path(__file__).resolve().parent.parent

REQUESTS = [
    {"num_samples": 3, "seed": 1, "steps": 12, "sampler": "ddpm"},
    {"num_samples": 2, "seed": 2, "steps": 20, "sampler": "ddim"},
    {"num_samples": 1, "seed": 3, "steps": 7, "sampler": "ddim", "eta": 0.5},
    {"num_samples": 4, "seed": 4, "steps": 15, "sampler": "ddpm", "label": 3, "guidance": 2.0},
    {"num_samples": 2, "seed": 5, "steps": 20, "sampler": "ddim", "label": 7},
    {"num_samples": 3, "seed": 1, "steps": 12, "sampler": "ddpm"},  # the first again, run beside it
]


def _repository(tmp_path: Path) -> Path:
    repo = tmp_path / "models"
    builders.write(repo, "diffusion", {
        "task": "diffusion", "data": builders.digits_data(), "labels": builders.LABELS, "null_label": 10,
        "schedule": {"betas": builders.betas(100)}, "max_batch_size": 64, "max_queue_delay_ms": 2,
    }, {"denoiser.onnx": builders.denoiser()})
    trained = ROOT / "models" / "digits-diffusion"
    if trained.is_dir():
        shutil.copytree(trained, repo / "digits-diffusion")
    return repo


def _executions(url: str, model: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf'^modelserve_inference_exec_count_total\{{model="{model}",version="1"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def _generate_all(url: str, model: str, requests: list[dict]) -> list[dict]:
    async with httpx.AsyncClient(timeout=120) as client:
        responses = await asyncio.gather(*(client.post(f"{url}/v2/models/{model}/generate", json=r) for r in requests))
    for response in responses:
        assert response.status_code == 200, response.text
    return [r.json()["samples"] for r in responses]


@pytest.mark.parametrize("model", ["diffusion", "digits-diffusion"])
def test_concurrent_generations_share_steps_and_match_solo_runs(tmp_path, serve_repository, model):
    repo = _repository(tmp_path)
    if not (repo / model).is_dir():
        pytest.skip(f"{model} is not in models/")
    url = serve_repository(repo)
    solo = [asyncio.run(_generate_all(url, model, [r]))[0] for r in REQUESTS]
    before = _executions(url, model)
    together = asyncio.run(_generate_all(url, model, REQUESTS))
    shared_calls = _executions(url, model) - before
    for alone, batched, request in zip(solo, together, REQUESTS):
        assert batched == alone, f"samples differ when batched with others: {request}"
    assert solo[0] == solo[-1]
    assert shared_calls < sum(r["steps"] for r in REQUESTS)  # generations shared denoiser calls

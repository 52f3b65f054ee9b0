"""Step-level batching: concurrent diffusion generations share denoiser calls, and each one's
samples stay bit-identical to the same request run alone."""

import asyncio
import re
import shutil
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.tasks import builders
from tests.tasks.test_stream import metric, settled

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


async def _staggered(url: str, model: str, requests: list[dict], gap_s: float) -> list[dict]:
    """Each request sent gap_s after the one before: later ones join generations under way."""
    async with httpx.AsyncClient(timeout=120) as client:
        async def one(k, request):
            await asyncio.sleep(k * gap_s)
            return await client.post(f"{url}/v2/models/{model}/generate", json=request)

        responses = await asyncio.gather(*(one(k, r) for k, r in enumerate(requests)))
    for response in responses:
        assert response.status_code == 200, response.text
    return [r.json()["samples"] for r in responses]


def test_generations_joining_mid_way_match_solo_runs(tmp_path, serve_repository):
    url = serve_repository(_repository(tmp_path))
    requests = [{**r, "steps": 4 * r["steps"]} for r in REQUESTS]  # long enough to overlap
    solo, took = [], []
    for r in requests:
        started = time.perf_counter()
        solo.append(asyncio.run(_generate_all(url, "diffusion", [r]))[0])
        took.append(time.perf_counter() - started)
    before = _executions(url, "diffusion")
    # Each request a fraction of the shortest generation after the one before, whatever this
    # machine's speed (a fixed 10 ms gap outlasted whole generations on a fast CPU): later ones
    # join generations under way.
    together = asyncio.run(_staggered(url, "diffusion", requests, gap_s=min(took) / 6))
    assert _executions(url, "diffusion") - before < sum(r["steps"] for r in requests)
    for alone, batched, request in zip(solo, together, requests):
        assert batched == alone, f"samples differ when joining others mid-way: {request}"


def test_a_step_over_max_batch_size_is_cut_between_generations(tmp_path, serve_repository):
    repo = tmp_path / "models"
    builders.write(repo, "diffusion", {
        "task": "diffusion", "data": builders.digits_data(), "labels": builders.LABELS, "null_label": 10,
        "schedule": {"betas": builders.betas(100)}, "max_batch_size": 4,
    }, {"denoiser.onnx": builders.denoiser()})
    url = serve_repository(repo)
    solo = [asyncio.run(_generate_all(url, "diffusion", [r]))[0] for r in REQUESTS]
    together = asyncio.run(_generate_all(url, "diffusion", REQUESTS))  # 19 rows a step at first
    for alone, batched, request in zip(solo, together, REQUESTS):
        assert batched == alone, f"samples differ when cut into several executions: {request}"
    # Every execution held at most 4 rows, or one request alone: the guided one's 8 (4 samples, twice).
    rows = lambda le: metric(url, "modelserve_batch_size_bucket", "diffusion", le=le)
    assert rows("8.0") == rows("+Inf") and rows("8.0") - rows("4.0") == 2 * 15


def test_a_stream_shares_steps_and_reports_its_own_progress(tmp_path, serve_repository):
    url = serve_repository(_repository(tmp_path))
    streamed = {"num_samples": 2, "seed": 9, "steps": 30, "sampler": "ddim", "eta": 1.0, "label": 5,
                "guidance": 3.0, "every": 7}
    alone = asyncio.run(_generate_all(url, "diffusion", [{k: v for k, v in streamed.items() if k != "every"}]))[0]

    async def stream_beside_others():
        async with httpx.AsyncClient(timeout=120) as client:
            async def stream():
                events = []
                async with client.stream("POST", f"{url}/v2/models/diffusion/generate_stream", json=streamed) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: "):
                            events.append(orjson.loads(line[6:]))
                return events

            return await asyncio.gather(stream(), *(client.post(f"{url}/v2/models/diffusion/generate", json=r)
                                                    for r in REQUESTS))

    events, *others = asyncio.run(stream_beside_others())
    assert [e.get("step") for e in events] == [7, 14, 21, 28, None]
    assert events[-1]["samples"] == alone
    assert all(r.status_code == 200 for r in others)


def test_a_generation_that_leaves_early_stops_stepping(tmp_path, serve_repository):
    repo = tmp_path / "models"
    builders.write(repo, "slow", {"task": "diffusion", "data": builders.digits_data(128), "labels": builders.LABELS,
                                  "null_label": 10, "schedule": {"betas": builders.betas(4000)}, "max_batch_size": 64},
                   {"denoiser.onnx": builders.denoiser(128)})
    url = serve_repository(repo)
    before = _executions(url, "slow")
    with httpx.Client(timeout=60) as client, client.stream(
        "POST", f"{url}/v2/models/slow/generate_stream", json={"seed": 0, "steps": 4000, "every": 1}
    ) as response:
        lines = response.iter_lines()
        assert [next(line for line in lines if line.startswith("data: ")) for _ in range(3)]
    ran = settled(lambda: _executions(url, "slow")) - before
    assert 3 <= ran < 4000  # its rows left the shared steps, which then stopped
    assert asyncio.run(_generate_all(url, "slow", [{"seed": 1, "steps": 3}]))  # and the stepper serves the next

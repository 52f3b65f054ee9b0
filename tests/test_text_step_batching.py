"""Concurrent text-to-image prompts share denoiser calls step by step (guidance stacks each
request's conditional and null rows in one call), each request's text encoder runs once, and
every request's samples stay bit-identical to the same request run alone."""

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.tasks import builders
from tests.test_step_batching import _executions, _generate_all

ROOT = Path(__file__).resolve().parent.parent

REQUESTS = [
    {"prompt": "a thick seven", "num_samples": 3, "seed": 1, "steps": 12},
    {"prompt": "thin one", "num_samples": 2, "seed": 2, "steps": 20, "sampler": "ddim", "guidance": 4.0},
    {"prompt": "", "num_samples": 1, "seed": 3, "steps": 7},
    {"text_input": "one leaning right", "num_samples": 4, "seed": 4, "steps": 15, "guidance": 1.0},
    {"prompt": ["a thick seven", "one"], "num_samples": 2, "seed": 5, "steps": 20, "sampler": "ddim"},
    {"prompt": "a thick seven", "num_samples": 3, "seed": 1, "steps": 12},  # the first again, beside it
]
# The same requests in the trained model's vocabulary.
TRAINED = {"a thick seven": "a thick seven leaning right", "thin one": "1, thin and upright",
           "one leaning right": "the digit one", "one": "a regular 8"}


def _trained(request: dict) -> dict:
    out = dict(request)
    for key in ("prompt", "text_input"):
        if isinstance(out.get(key), list):
            out[key] = [TRAINED.get(p, p) for p in out[key]]
        elif key in out:
            out[key] = TRAINED.get(out[key], out[key])
    return out


def _repository(tmp_path: Path) -> Path:
    repo = tmp_path / "models"
    builders.write(repo, "text2img", builders.text_to_image_config(max_batch_size=64, max_queue_delay_ms=2),
                   {"text_encoder.onnx": builders.text_encoder(), "denoiser.onnx": builders.text_denoiser()})
    trained = ROOT / "models" / "digits-text2img"
    if trained.is_dir():
        shutil.copytree(trained, repo / "digits-text2img")
    return repo


@pytest.mark.parametrize("model", ["text2img", "digits-text2img"])
def test_concurrent_prompts_share_steps_and_match_solo_runs(tmp_path, serve_repository, model):
    repo = _repository(tmp_path)
    if not (repo / model).is_dir():
        pytest.skip(f"{model} is not in models/")
    requests = REQUESTS if model == "text2img" else [_trained(r) for r in REQUESTS]
    url = serve_repository(repo)
    solo, alone_calls = [], 0.0
    for request in requests:
        before = _executions(url, model)
        solo.append(asyncio.run(_generate_all(url, model, [request]))[0])
        alone_calls += _executions(url, model) - before
    assert alone_calls == sum(r["steps"] + 1 for r in requests)  # each: its steps and one encoding
    before = _executions(url, model)
    together = asyncio.run(_generate_all(url, model, requests))
    shared_calls = _executions(url, model) - before
    for alone, batched, request in zip(solo, together, requests):
        assert batched == alone, f"samples differ when batched with others: {request}"
    assert solo[0] == solo[-1]
    assert shared_calls < alone_calls  # the prompts shared denoiser calls

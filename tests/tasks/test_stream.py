"""POST /v2/models/{name}/generate_stream: server-sent events, and the loop stops when the client leaves."""

import base64
import time

import httpx
import numpy as np
import orjson
import pytest

from tests.tasks import builders


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    repo = builders.task_repository(tmp_path_factory.mktemp("repo"))
    return module_server(builders.slow_diffusion(repo))


def stream(url, model, **params) -> list[dict]:
    with httpx.stream("POST", f"{url}/v2/models/{model}/generate_stream", json=params, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [orjson.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line.startswith("data: ")]


def generated(url, model, **params) -> dict:
    return httpx.post(f"{url}/v2/models/{model}/generate", json=params, timeout=60).json()


def metric(url, name, model, **labels) -> float:
    wanted = {"model": model, "version": "1", **labels}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in wanted.items()):
            return float(line.split()[-1])
    return 0.0


def test_diffusion_streams_an_event_every_few_steps_then_the_samples(url):
    params = {"num_samples": 2, "seed": 3, "steps": 10, "label": 4}
    events = stream(url, "diffusion", every=3, **params)
    assert [e["event"] for e in events] == ["progress"] * 3 + ["done"]
    assert [e["step"] for e in events[:-1]] == [3, 6, 9] and events[0]["steps"] == 10
    assert all(np.array(e["samples"]).shape == (2, 1, 8, 8) for e in events)
    done = events[-1]
    assert done["samples"] == generated(url, "diffusion", **params)["samples"]  # the same generation
    assert np.abs(np.array(events[-2]["samples"]) - done["samples"]).max() < 16  # in raw range


def test_every_step_and_png_progress(url):
    events = stream(url, "diffusion", num_samples=3, seed=1, steps=5, format="png")
    assert [e.get("step") for e in events] == [1, 2, 3, 4, None]
    assert all(len(e["samples"]) == 3 and base64.b64decode(e["grid"]).startswith(b"\x89PNG") for e in events)


@pytest.mark.parametrize("model", ["gan", "vae", "flow"])
def test_latent_models_stream_one_event_per_sample(url, model):
    events = stream(url, model, num_samples=3, seed=8)
    assert [(e["event"], e.get("index")) for e in events] == [("sample", 0), ("sample", 1), ("sample", 2), ("done", None)]
    batch = np.array(generated(url, model, num_samples=3, seed=8)["samples"])
    assert np.allclose([e["sample"] for e in events[:3]], events[3]["samples"])
    assert np.allclose(events[3]["samples"], batch, atol=1e-5)  # one call per sample, or one for all


def test_bad_parameters_fail_before_the_stream_starts(url):
    for params, names in [({"every": 0}, "every"), ({"steps": 101}, "max_steps"), ({"label": 12}, "label 12")]:
        response = httpx.post(f"{url}/v2/models/diffusion/generate_stream", json=params)
        assert response.status_code == 400 and names in response.json()["error"]
    assert httpx.post(f"{url}/v2/models/classifier/generate_stream", json={}).status_code == 400
    assert httpx.post(f"{url}/v2/models/missing/generate_stream", json={}).status_code == 404


def settled(read, polls: int = 100) -> float:
    """The value of `read()` once two reads in a row agree (a loop that stopped)."""
    last = read()
    for _ in range(polls):
        time.sleep(0.1)
        now = read()
        if now == last:
            return now
        last = now
    raise AssertionError("the value never stopped changing")


@pytest.mark.parametrize("every", [1, 4000])
def test_sampling_stops_when_the_client_disconnects(url, every):
    """every=1: events flow until the client leaves; every=4000: the server runs steps without
    sending anything, so only the disconnect itself can stop it."""
    steps = 4000
    executions = lambda: metric(url, "modelserve_inference_exec_count_total", "slow-diffusion")
    cancelled = lambda: metric(url, "modelserve_inference_request_failure_total", "slow-diffusion", reason="cancelled")
    before, cancelled_before = executions(), cancelled()
    with httpx.Client(timeout=60) as client, client.stream(
        "POST", f"{url}/v2/models/slow-diffusion/generate_stream", json={"seed": 0, "steps": steps, "every": every}
    ) as response:
        assert response.status_code == 200
        if every == 1:
            lines = response.iter_lines()
            assert [next(line for line in lines if line.startswith("data: ")) for _ in range(2)]
        for _ in range(200):  # leave only once the loop is running
            if executions() - before >= 3:
                break
            time.sleep(0.02)
    ran = settled(executions) - before
    assert 3 <= ran < steps  # it ran, then stopped short of the end
    assert settled(cancelled) == cancelled_before + 1  # the loop ended, not just paused on a full socket

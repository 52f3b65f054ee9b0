"""Dynamic batching through a real server: shared executions, own rows back, load shedding."""

import asyncio
import re

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests import onnx_models

RNG = np.random.default_rng(3)
WEIGHTS, BIAS = RNG.standard_normal((4, 3)), RNG.standard_normal(3)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.linear(WEIGHTS, BIAS), repo, "linear")
    (repo / "linear" / "config.yaml").write_text("max_batch_size: 16\nmax_queue_delay_ms: 20\n")
    onnx_models.save(onnx_models.gather(np.arange(5)), repo, "lookup")
    (repo / "lookup" / "config.yaml").write_text("max_batch_size: 16\nmax_queue_delay_ms: 50\n")
    onnx_models.save(onnx_models.slow_chain(), repo, "slow")
    (repo / "slow" / "config.yaml").write_text("max_batch_size: 1\nmax_queue_size: 2\n")
    onnx_models.save(onnx_models.identity("FP32", shape=(2, 3)), repo, "fixed")
    (repo / "fixed" / "config.yaml").write_text("max_batch_size: 8\n")
    return repo


@pytest.fixture(scope="module")
def url(repo, module_server):
    return module_server(repo, env={"MODELSERVE_MAX_CONCURRENT_BATCHES": "1"})


def _body(x: np.ndarray, name="x", datatype="FP32") -> dict:
    return {"inputs": [{"name": name, "shape": list(x.shape), "datatype": datatype, "data": x.reshape(-1).tolist()}]}


def _metric(url: str, name: str, model: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf'^{name}\{{model="{model}",version="1"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _inferences(url: str, model: str) -> int:
    return httpx.get(f"{url}/v2/models/{model}/stats").json()["model_stats"][0]["inference_count"]

async def _post_all(url: str, bodies: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=len(bodies))) as client:
        return await asyncio.gather(*(client.post(url, json=b) for b in bodies))


def test_concurrent_requests_share_batches_and_get_their_own_rows(url, repo):
    session = ort.InferenceSession(str(repo / "linear" / "1" / "model.onnx"))
    inputs = [RNG.standard_normal((int(RNG.integers(1, 4)), 4)).astype(np.float32) for _ in range(48)]
    executions_before = _metric(url, "modelserve_inference_exec_count_total", "linear")
    responses = asyncio.run(_post_all(f"{url}/v2/models/linear/infer", [_body(x) for x in inputs]))
    for x, response in zip(inputs, responses):
        assert response.status_code == 200, response.text
        output = response.json()["outputs"][0]
        expected = session.run(None, {"x": x})[0]
        assert output["shape"] == list(expected.shape)
        np.testing.assert_allclose(np.array(output["data"]).reshape(expected.shape), expected, rtol=1e-6)
    executions = _metric(url, "modelserve_inference_exec_count_total", "linear") - executions_before
    assert executions < len(inputs)  # batches were shared
    assert httpx.get(f"{url}/v2/models/linear/config").json()["max_batch_size"] == 16


def test_a_request_larger_than_the_batch_runs_whole(url):
    x = RNG.standard_normal((40, 4)).astype(np.float32)
    response = httpx.post(f"{url}/v2/models/linear/infer", json=_body(x))
    assert response.status_code == 200 and response.json()["outputs"][0]["shape"] == [40, 3]


def test_a_failing_request_does_not_fail_its_batch(url):
    good = [np.array([i % 5, (i + 1) % 5], np.int64) for i in range(10)]
    bad = [np.array([1, 99], np.int64)] * 3
    bodies = [_body(x, "idx", "INT64") for x in good + bad]
    responses = asyncio.run(_post_all(f"{url}/v2/models/lookup/infer", bodies))
    for x, response in zip(good, responses[: len(good)]):
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == x.astype(float).tolist()
    for response in responses[len(good):]:
        assert response.status_code == 400 and "out of data bounds" in response.json()["error"]


def test_malformed_requests_never_enter_a_batch(url):
    bodies = [_body(np.ones((1, 4), np.float32))] * 5 + [_body(np.ones((1, 5), np.float32))]
    responses = asyncio.run(_post_all(f"{url}/v2/models/linear/infer", bodies))
    assert [r.status_code for r in responses] == [200] * 5 + [400]


def test_a_full_queue_sheds_load_with_503(url):
    x = np.ones((1, 256), np.float32)
    responses = asyncio.run(_post_all(f"{url}/v2/models/slow/infer", [_body(x)] * 40))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 503} and 200 in codes and 503 in codes
    shed = next(r for r in responses if r.status_code == 503)
    assert shed.headers["retry-after"] and "queue is full" in shed.json()["error"]
    text = httpx.get(f"{url}/metrics").text
    assert re.search(r'modelserve_inference_request_failure_total\{model="slow",protocol="http",reason="overloaded",version="1"\} [1-9]', text)
    assert 'modelserve_inference_pending_requests{model="slow",version="1"}' in text


def test_a_model_without_a_batch_axis_is_never_batched(url):
    assert httpx.get(f"{url}/v2/models/fixed/config").json()["max_batch_size"] == 0
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    responses = asyncio.run(_post_all(f"{url}/v2/models/fixed/infer", [_body(x, "input")] * 4))
    assert all(r.status_code == 200 and r.json()["outputs"][0]["shape"] == [2, 3] for r in responses)


def test_requests_that_fill_a_batch_alone_and_small_ones_each_get_their_own_rows(url, repo):
    # A 16-row request fills linear's batch by itself and is run without queueing when nothing
    # waits ahead of it; the small ones around it still share batches.
    session = ort.InferenceSession(str(repo / "linear" / "1" / "model.onnx"))
    inputs = [RNG.standard_normal((16 if i % 3 == 0 else 1 + i % 3, 4)).astype(np.float32) for i in range(30)]
    count_before = _inferences(url, "linear")
    responses = asyncio.run(_post_all(f"{url}/v2/models/linear/infer", [_body(x) for x in inputs]))
    for x, response in zip(inputs, responses):
        assert response.status_code == 200, response.text
        expected = session.run(None, {"x": x})[0]
        np.testing.assert_allclose(np.array(response.json()["outputs"][0]["data"]).reshape(expected.shape), expected, rtol=1e-6)
    assert _inferences(url, "linear") - count_before == sum(len(x) for x in inputs)



def test_a_full_batch_with_a_bad_value_fails_alone(url):
    bad = np.array([1, 99] * 8, np.int64)  # 16 rows: lookup's whole batch
    good = [np.array([i % 5], np.int64) for i in range(6)]
    responses = asyncio.run(_post_all(f"{url}/v2/models/lookup/infer", [_body(bad, "idx", "INT64")] + [_body(x, "idx", "INT64") for x in good]))
    assert responses[0].status_code == 400 and "out of data bounds" in responses[0].json()["error"]
    assert [r.json()["outputs"][0]["data"] for r in responses[1:]] == [[float(x[0])] for x in good]

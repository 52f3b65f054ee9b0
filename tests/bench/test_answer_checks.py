"""The benchmark's and the soak's answer checks reject a wrong answer, against a real server."""

import asyncio
import importlib.util
import sys

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import loadgen
import soak_traffic

# bench/models.py by path: the name `models` would also find the repository's models/ folder.
_spec = importlib.util.spec_from_file_location("bench_models", ROOT / "bench" / "models.py")
bench_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_models)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory, module_server):
    repository = bench_models.write_repository(tmp_path_factory.mktemp("bench"), batching=True)
    return module_server(repository), repository


def _cases(repository, shift: float = 0.0) -> list[loadgen.Case]:
    session = ort.InferenceSession(str(repository / "mlp" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    cases = []
    for seed in range(4):
        x = np.random.default_rng(seed).random((1, 64)).astype(np.float32)
        (expected,) = session.run(None, {"input": x})
        body = httpx.Request("POST", "/", json={"inputs": [
            {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": x.reshape(-1).tolist()}]}).read()
        request = loadgen.http_request("127.0.0.1", 0, "/v2/models/mlp/infer", body, {"Content-Type": "application/json"})
        cases.append(loadgen.Case(request, expected + shift, loadgen.decode_json("logits")))
    return cases


def test_the_load_generator_checks_answers(mlp):
    url, repository = mlp
    result = loadgen.run(url, _cases(repository), connections=4, seconds=0.5, warmup=0.1, check_every=2)
    assert result.errors == 0 and result.checked >= 4 and result.requests > 0


def test_a_wrong_answer_fails_the_benchmark(mlp):
    url, repository = mlp
    with pytest.raises(loadgen.WrongAnswer, match="differs from ONNX Runtime"):
        loadgen.run(url, _cases(repository, shift=0.01), connections=2, seconds=0.5, warmup=0.1)


def test_the_soak_counts_a_wrong_v2_answer(mlp):
    url, repository = mlp
    meta = httpx.get(f"{url}/v2/models/mlp").json()
    right = soak_traffic._expected(repository, meta)
    wrong = {rows: {name: value + 0.01 for name, value in outputs.items()} for rows, outputs in right.items()}

    async def statuses(expected):
        async with httpx.AsyncClient(base_url=url) as client:
            return [await soak_traffic._v2_json(meta, expected)(client), await soak_traffic._v2_binary(meta, expected)(client)]

    assert asyncio.run(statuses(right)) == [200, 200]
    assert asyncio.run(statuses(wrong)) == [soak_traffic.WRONG, soak_traffic.WRONG]

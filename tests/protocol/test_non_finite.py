"""NaN, Infinity and -Infinity through V2 JSON, as Triton writes and reads them (not null)."""

import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from tests import onnx_models

FLOATS = ["FP16", "FP32", "FP64"]
NON_FINITE = [np.inf, -np.inf, np.nan, 1.5, -0.0, np.nan]


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    repo = tmp_path_factory.mktemp("repo")
    for datatype in [*FLOATS, "INT32"]:
        onnx_models.save(onnx_models.identity(datatype), repo, f"identity_{datatype.lower()}")
    return module_server(repo)


@pytest.fixture
def client(url):
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    yield client
    client.close()


def same(result: np.ndarray, expected: np.ndarray) -> None:
    assert result.dtype == expected.dtype and result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)  # NaN equals NaN here, +inf never -inf
    assert (np.signbit(result) == np.signbit(expected)).all()


@pytest.mark.parametrize("input_binary", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("datatype", FLOATS)
def test_non_finite_values_come_back_in_json(client, datatype, input_binary):
    if datatype == "FP16" and not input_binary:
        pytest.skip("tritonclient sends FP16 only as binary; JSON FP16 is sent with httpx below")
    array = np.array(NON_FINITE, dtype=triton.triton_to_np_dtype(datatype)).reshape(2, 3)
    tensor = triton.InferInput("input", [2, 3], datatype)
    tensor.set_data_from_numpy(array, binary_data=input_binary)
    output = triton.InferRequestedOutput("output", binary_data=False)  # answered as JSON
    same(client.infer(f"identity_{datatype.lower()}", [tensor], outputs=[output]).as_numpy("output"), array)


@pytest.mark.parametrize("datatype", FLOATS)
def test_json_requests_take_the_tokens_flat_and_nested(url, datatype):
    for data in ("[Infinity, -Infinity, NaN, 1.5, -0.0, NaN]", "[[Infinity, -Infinity, NaN], [1.5, -0.0, NaN]]"):
        body = f'{{"inputs": [{{"name": "input", "shape": [2, 3], "datatype": "{datatype}", "data": {data}}}]}}'
        response = httpx.post(f"{url}/v2/models/identity_{datatype.lower()}/infer", content=body)
        assert response.status_code == 200, response.text
        assert '"data":[Infinity,-Infinity,NaN,1.5,-0.0,NaN]' in response.text
        data = json.loads(response.text)["outputs"][0]["data"]  # what Python's json reads
        same(np.array(data, np.float64), np.array(NON_FINITE))


def test_finite_answers_are_unchanged(url):
    body = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [0.5, -2, 0]}], "id": "null"}
    response = httpx.post(f"{url}/v2/models/identity_fp32/infer", json=body)
    assert response.json()["outputs"][0]["data"] == [0.5, -2.0, 0.0] and response.json()["id"] == "null"


@pytest.mark.parametrize("body, reason", [
    (b'{"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP32", "data": [nan]}]}', "malformed JSON"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP32", "data": [Infinity}]}', "malformed JSON"),
    (b'{"inputs": [{"name": "\\ud800", "shape": [1, 1], "datatype": "FP32", "data": [NaN]}]}', "surrogates"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP32", "data": ' + b"[" * 5000 + b"NaN"
     + b"]" * 5000 + b"}]}", "nests"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1], "datatype": "INT32", "data": [NaN]}]}', "must be integers"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1], "datatype": "INT32", "data": [Infinity]}]}', "INT32"),
])
def test_what_the_tokens_do_not_excuse_is_still_a_400(url, body, reason):
    model = "identity_int32" if b"INT32" in body else "identity_fp32"
    response = httpx.post(f"{url}/v2/models/{model}/infer", content=body)
    assert response.status_code == 400 and reason in response.json()["error"], response.text

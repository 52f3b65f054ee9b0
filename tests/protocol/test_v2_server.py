"""The V2 REST protocol against a real server, through tritonclient and plain httpx."""

import gzip
import re

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests import onnx_models

DATATYPES = list(onnx_models.V2_TO_ONNX)


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    repo = tmp_path_factory.mktemp("repo")
    for datatype in DATATYPES:
        onnx_models.save(onnx_models.identity(datatype), repo, f"identity_{datatype.lower()}")
    onnx_models.save(onnx_models.identity("FP32", shape=()), repo, "scalar")
    onnx_models.save(onnx_models.identity("FP32", shape=(2, 3)), repo, "fixed")
    onnx_models.save(onnx_models.two_in_two_out(), repo, "pair")
    onnx_models.save(onnx_models.add_constant(1.0), repo, "versioned", version=1)
    onnx_models.save(onnx_models.add_constant(2.0), repo, "versioned", version=2)
    (repo / "versioned" / "config.yaml").write_text("version_policy: {all: {}}\n")
    good = onnx_models.save(onnx_models.add_constant(5.0), repo, "truncated")
    good.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    onnx_models.save(onnx_models.add_constant(5.0), repo, "garbage").write_bytes(b"\x89PNG\r\n\x1a\n not a model")
    onnx_models.save(onnx_models.add_constant(5.0), repo, "badconfig")
    (repo / "badconfig" / "config.yaml").write_text("max_batch_size: -3\nnot_a_field: 1\n")
    return module_server(repo)


@pytest.fixture
def client(url):
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    yield client
    client.close()


def sample(datatype: str, shape) -> np.ndarray:
    rng = np.random.default_rng(7)
    if datatype == "BYTES":
        return np.array([f"text-{i}-é".encode() for i in range(int(np.prod(shape)))], dtype=object).reshape(shape)
    if datatype == "BOOL":
        return rng.integers(0, 2, shape).astype(bool)
    dtype = triton.triton_to_np_dtype(datatype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


def infer(client, model, array, datatype, binary, **kwargs):
    tensor = triton.InferInput("input", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    output = triton.InferRequestedOutput("output", binary_data=binary)
    return client.infer(model, [tensor], outputs=[output], **kwargs).as_numpy("output")


# ------------------------------------------------------------------------ health and metadata


def test_server_is_live_ready_and_describes_itself(client, url):
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "modelserve" and "binary_tensor_data" in metadata["extensions"]
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}


def test_model_metadata_comes_from_the_graph(client):
    metadata = client.get_model_metadata("pair")
    assert metadata["platform"] == "onnxruntime_onnx" and metadata["versions"] == ["1"]
    assert metadata["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "n", "datatype": "INT64", "shape": [-1]},
    ]
    assert [o["name"] for o in metadata["outputs"]] == ["scaled", "next"]
    assert metadata["parameters"] == {"task": "generic", "provider": "CPUExecutionProvider"}
    assert client.get_model_metadata("scalar")["inputs"][0]["shape"] == []
    assert client.is_model_ready("pair")
    config = client.get_model_config("pair")
    assert config["input"][0]["data_type"] == "TYPE_FP32"


# ------------------------------------------------------------------------ inference


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", DATATYPES)
def test_every_datatype_round_trips(client, datatype, binary):
    if datatype == "FP16" and not binary:
        pytest.skip("tritonclient sends FP16 only as binary; JSON FP16 is covered with httpx below")
    array = sample(datatype, (4, 3))
    result = infer(client, f"identity_{datatype.lower()}", array, datatype, binary)
    assert result.shape == (4, 3)
    if datatype == "BYTES":
        # tritonclient hands JSON BYTES back as str, binary ones as bytes
        as_bytes = [v.encode() if isinstance(v, str) else v for v in result.reshape(-1).tolist()]
        assert as_bytes == array.reshape(-1).tolist()
    else:
        assert result.dtype == array.dtype
        np.testing.assert_array_equal(result, array)


def test_fp16_and_nested_json_data_with_httpx(url):
    body = {"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP16", "data": [[0.5, 1, 2], [3, 4, 5.5]]}]}
    response = httpx.post(f"{url}/v2/models/identity_fp16/infer", json=body)
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    assert output == {"name": "output", "datatype": "FP16", "shape": [2, 3], "data": [0.5, 1, 2, 3, 4, 5.5]}


def test_two_inputs_two_outputs_and_an_output_subset(client):
    x = np.array([[1, 2], [3, 4]], np.float32)
    n = np.array([10, 20], np.int64)
    inputs = [triton.InferInput("x", [2, 2], "FP32"), triton.InferInput("n", [2], "INT64")]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(n, binary_data=False)
    result = client.infer("pair", inputs, request_id="req-7")
    np.testing.assert_array_equal(result.as_numpy("scaled"), x * 2)
    np.testing.assert_array_equal(result.as_numpy("next"), n + 1)
    assert result.get_response()["id"] == "req-7"
    only = client.infer("pair", inputs, outputs=[triton.InferRequestedOutput("next", binary_data=False)])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["next"]


@pytest.mark.parametrize("rows", [1, 5, 64])
def test_dynamic_batch_axis(client, rows):
    array = sample("FP32", (rows, 3))
    np.testing.assert_array_equal(infer(client, "identity_fp32", array, "FP32", True), array)


def test_scalar_and_zero_size_tensors(client):
    scalar = np.array(3.5, np.float32)
    assert infer(client, "scalar", scalar, "FP32", False).tolist() == 3.5
    empty = np.zeros((0, 3), np.float32)
    assert infer(client, "identity_fp32", empty, "FP32", True).shape == (0, 3)


def test_versions(client, url):
    x = np.array([[1.0]], np.float32)

    def run(version):
        tensor = triton.InferInput("x", [1, 1], "FP32")
        tensor.set_data_from_numpy(x)
        return client.infer("versioned", [tensor], model_version=version).as_numpy("y").item()

    assert run("") == 3.0  # latest is version 2
    assert run("1") == 2.0 and run("2") == 3.0
    assert client.get_model_metadata("versioned")["versions"] == ["2", "1"]
    assert httpx.get(f"{url}/v2/models/versioned/versions/1/ready").status_code == 200
    assert httpx.get(f"{url}/v2/models/versioned/versions/9").status_code == 404
    assert httpx.get(f"{url}/v2/models/versioned/versions/abc").status_code == 400


def test_compressed_request_and_json_without_content_type(client, url):
    array = sample("FP32", (2, 3))
    np.testing.assert_array_equal(
        infer(client, "identity_fp32", array, "FP32", False, request_compression_algorithm="gzip"), array
    )
    np.testing.assert_array_equal(
        infer(client, "identity_fp32", array, "FP32", True, request_compression_algorithm="deflate"), array
    )
    body = b'{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}'
    response = httpx.post(f"{url}/v2/models/identity_fp32/infer", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 200 and response.json()["outputs"][0]["data"] == [1, 2, 3]
    zipped = httpx.post(f"{url}/v2/models/identity_fp32/infer", content=gzip.compress(body), headers={"content-encoding": "gzip"})
    assert zipped.status_code == 200


# ------------------------------------------------------------------------ errors


def _tensor(data=(1, 2, 3), shape=(1, 3), datatype="FP32", name="input"):
    return {"name": name, "shape": list(shape), "datatype": datatype, "data": list(data)}


BAD_REQUESTS = {
    "malformed json": (b'{"inputs": [', {}, "malformed JSON"),
    "not an object": (b"[1, 2]", {}, "JSON object"),
    "no inputs": ({"id": "1"}, {}, "'inputs' must be a list"),
    "wrong shape": ({"inputs": [_tensor((1, 2, 3, 4), (1, 4))]}, {}, "has shape [1, 4]"),
    "wrong datatype": ({"inputs": [_tensor(datatype="FP64")]}, {}, "expects FP32"),
    "unknown datatype": ({"inputs": [_tensor(datatype="FLOAT")]}, {}, "unknown datatype"),
    "too few elements": ({"inputs": [_tensor((1, 2), (1, 3))]}, {}, "has 2 elements"),
    "ragged": ({"inputs": [{**_tensor(), "data": [[1, 2], [3]]}]}, {}, "ragged"),
    "strings for numbers": ({"inputs": [_tensor(("a", "b", "c"))]}, {}, "must be numbers"),
    "null in data": ({"inputs": [_tensor((1, None, 3))]}, {}, "must be numbers"),
    "missing input": ({"inputs": []}, {}, "missing input 'input'"),
    "unknown input": ({"inputs": [_tensor(), _tensor(name="other")]}, {}, "unknown input 'other'"),
    "duplicate input": ({"inputs": [_tensor(), _tensor()]}, {}, "more than once"),
    "unknown output": ({"inputs": [_tensor()], "outputs": [{"name": "nope"}]}, {}, "unknown output 'nope'"),
    "negative dim": ({"inputs": [_tensor(shape=(-1, 3))]}, {}, "negative dimension"),
    "huge shape": ({"inputs": [_tensor(shape=(1000000000, 1000000000))]}, {}, "over the limit"),
    "shape of strings": ({"inputs": [{**_tensor(), "shape": ["1", "3"]}]}, {}, "list of integers"),
    "deep nesting": (b'{"inputs": [], "parameters": {"a": ' + b"[" * 100 + b"]" * 100 + b"}}", {}, "deeper than"),
    "no data": ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32"}]}, {}, "neither"),
    "header length not a number": (b"{}", {"Inference-Header-Content-Length": "abc"}, "must be an integer"),
    "header length beyond body": (b"{}", {"Inference-Header-Content-Length": "999"}, "the body has 2 bytes"),
    "binary overrun": (
        b'{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":12}}]}' + b"\0" * 4,
        {"Inference-Header-Content-Length": "98"}, "overruns",
    ),
    "binary size wrong for shape": (
        b'{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","parameters":{"binary_data_size":8}}]}' + b"\0" * 8,
        {"Inference-Header-Content-Length": "97"}, "needs 12",
    ),
    "unclaimed binary": (b'{"inputs":[' + b'{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}' + b"]}xyz",
                         {"Inference-Header-Content-Length": "75"}, "no input claims"),
    "bad gzip": (b"not gzip", {"Content-Encoding": "gzip"}, "not valid gzip"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_are_400_with_a_reason(url, case):
    body, headers, reason = BAD_REQUESTS[case]
    content = body if isinstance(body, bytes) else httpx.Request("POST", url, json=body).content
    if case in ("binary overrun", "binary size wrong for shape", "unclaimed binary"):
        headers = {"Inference-Header-Content-Length": str(content.index(b"}]}") + 3)}
    response = httpx.post(f"{url}/v2/models/identity_fp32/infer", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]
    assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_integer_range_and_kind_are_checked(url):
    for data, reason in [([300, 1, 2], "outside the range"), ([1.5, 1, 2], "must be integers"), ([True, False, True], "must be integers")]:
        response = httpx.post(f"{url}/v2/models/identity_int8/infer", json={"inputs": [_tensor(data, datatype="INT8")]})
        assert response.status_code == 400 and reason in response.json()["error"], response.text
    response = httpx.post(f"{url}/v2/models/identity_bool/infer", json={"inputs": [_tensor((1, 0, 1), datatype="BOOL")]})
    assert response.status_code == 400 and "true or false" in response.json()["error"]


def test_lying_bytes_length_prefix_is_400(url):
    header = b'{"inputs":[{"name":"input","shape":[1,3],"datatype":"BYTES","parameters":{"binary_data_size":9}}]}'
    payload = b"\x32\x00\x00\x00abcde"  # claims 50 bytes, 5 follow
    response = httpx.post(f"{url}/v2/models/identity_bytes/infer", content=header + payload,
                          headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 400 and "overruns" in response.json()["error"]


def test_unknown_models_and_broken_models(url, client):
    assert httpx.get(f"{url}/v2/models/nope").status_code == 404
    unknown = httpx.post(f"{url}/v2/models/nope/infer", json={"inputs": []}).json()["error"]
    assert unknown.startswith("unknown model 'nope'; the models are: badconfig, fixed, garbage, identity_bool")
    assert unknown.endswith(", scalar, truncated, versioned")  # all 20
    assert httpx.get(f"{url}/v2/models/..%2F..%2Fetc/ready").status_code == 404
    for name, reason in [("truncated", "could not be loaded"), ("garbage", "could not be loaded"), ("badconfig", "not_a_field")]:
        response = httpx.get(f"{url}/v2/models/{name}")
        assert response.status_code == 503 and reason in response.json()["error"], response.text
        assert not client.is_model_ready(name)
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_metadata("nope")
    assert client.is_server_ready()  # broken models do not stop the others


def test_metrics_count_what_was_sent(url, client):
    before = _metric(url, 'modelserve_inference_request_success_total{model="identity_int32",protocol="http",version="1"}')
    array = sample("INT32", (5, 3))
    for _ in range(3):
        infer(client, "identity_int32", array, "INT32", True)
    httpx.post(f"{url}/v2/models/identity_int32/infer", json={"inputs": [_tensor(datatype="FP32")]})
    assert _metric(url, 'modelserve_inference_request_success_total{model="identity_int32",protocol="http",version="1"}') == before + 3
    assert _metric(url, 'modelserve_inference_request_failure_total{model="identity_int32",protocol="http",reason="invalid",version="1"}') >= 1
    assert _metric(url, 'modelserve_inference_count_total{model="identity_int32",protocol="http",version="1"}') >= 15
    assert _metric(url, 'modelserve_model_loaded{model="pair",provider="CPUExecutionProvider",version="1"}') == 1
    assert _metric(url, 'modelserve_compute_duration_seconds_count{model="identity_int32",version="1"}') >= 3


def _metric(url: str, series: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0

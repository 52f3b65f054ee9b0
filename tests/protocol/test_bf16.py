"""BF16 over both transports with tritonclient: binary data over HTTP, raw contents over gRPC,
through a BF16 identity graph (ONNX Runtime fed by OrtValues); JSON input is refused as Triton
refuses it, a JSON output is written as its exact float value."""

import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.grpc import service_pb2 as pb

from tests import onnx_models

MODEL = "identity_bf16"
BATCHED = "identity_bf16_batched"  # concurrent requests joined into one execution
# Values bfloat16 holds exactly, and the edges: the largest, the smallest subnormal, +-inf, -0.
VALUES = np.array([[1.0, -2.5, 3.140625], [3.3895314e38, 9.1835e-41, -0.0],
                   [np.inf, -np.inf, 65280.0]], dtype=np.float32)


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.identity("BF16"), repo, MODEL)
    onnx_models.save(onnx_models.identity("BF16"), repo, BATCHED)
    (repo / BATCHED / "config.yaml").write_text("{max_batch_size: 8, max_queue_delay_ms: 50}\n")
    return module_server(repo)


def bf16() -> np.ndarray:
    return VALUES.astype(ml_dtypes.bfloat16)


def test_metadata_says_bf16(url):
    metadata = th.InferenceServerClient(url.removeprefix("http://")).get_model_metadata(MODEL)
    assert metadata["inputs"][0]["datatype"] == "BF16" and metadata["outputs"][0]["datatype"] == "BF16"
    config = tg.InferenceServerClient(url.grpc).get_model_config(MODEL, as_json=True)["config"]
    assert config["input"][0]["data_type"] == "TYPE_BF16"


def test_http_binary_round_trips_every_bit(url):
    x = th.InferInput("input", list(VALUES.shape), "BF16")
    x.set_data_from_numpy(bf16(), binary_data=True)
    result = th.InferenceServerClient(url.removeprefix("http://")).infer(MODEL, [x])
    got = result.as_numpy("output")
    assert got.dtype == ml_dtypes.bfloat16 and result.get_output("output")["datatype"] == "BF16"
    np.testing.assert_array_equal(got.view(np.uint16), bf16().view(np.uint16))


def test_grpc_raw_contents_round_trip_every_bit_as_http(url):
    x = tg.InferInput("input", list(VALUES.shape), "BF16")
    x.set_data_from_numpy(bf16())
    result = tg.InferenceServerClient(url.grpc).infer(MODEL, [x])
    assert result.get_output("output").datatype == "BF16"
    np.testing.assert_array_equal(result.as_numpy("output").view(np.uint16), bf16().view(np.uint16))


def test_nan_bit_patterns_pass_unchanged(url):
    bits = np.array([[0x7FC0, 0xFFC1, 0x7F81]], dtype=np.uint16)  # quiet, negative, signalling NaNs
    x = tg.InferInput("input", [1, 3], "BF16")
    x.set_data_from_numpy(bits.view(ml_dtypes.bfloat16))
    result = tg.InferenceServerClient(url.grpc).infer(MODEL, [x])
    np.testing.assert_array_equal(result.as_numpy("output").view(np.uint16), bits)


def test_json_input_is_a_400_naming_binary_data(url):
    body = {"inputs": [{"name": "input", "datatype": "BF16", "shape": [1, 3], "data": [1.0, 2.0, 3.0]}]}
    response = httpx.post(f"{url}/v2/models/{MODEL}/infer", json=body)
    assert response.status_code == 400
    assert "BF16, which travels only as binary data" in response.json()["error"]


def test_a_json_output_is_its_exact_float_value(url):
    header = json.dumps({"inputs": [{"name": "input", "datatype": "BF16", "shape": [3, 3],
                                     "parameters": {"binary_data_size": 18}}]}).encode()
    response = httpx.post(f"{url}/v2/models/{MODEL}/infer", content=header + bf16().tobytes(),
                          headers={"Inference-Header-Content-Length": str(len(header)),
                                   "Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    assert output["datatype"] == "BF16"
    data = output["data"]
    assert data[:3] == [1.0, -2.5, 3.140625] and data[6:] == [np.inf, -np.inf, 65280.0]


def test_grpc_typed_contents_are_refused_as_for_fp16(url):
    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="input", datatype="BF16", shape=[1, 3]).contents.fp32_contents.extend([1, 2, 3])
    with grpc.insecure_channel(url.grpc) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                    request_serializer=pb.ModelInferRequest.SerializeToString,
                                    response_deserializer=pb.ModelInferResponse.FromString)
        with pytest.raises(grpc.RpcError) as refused:
            infer(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "BF16, which travels only in raw_input_contents" in refused.value.details()


def test_concurrent_requests_share_a_batch_and_keep_their_own_rows(url):
    def stats() -> tuple[int, int]:
        [entry] = httpx.get(f"{url}/v2/models/{BATCHED}/stats").json()["model_stats"]
        return entry["inference_count"], entry["execution_count"]

    def call(row: int) -> np.ndarray:
        x = tg.InferInput("input", [1, 3], "BF16")
        x.set_data_from_numpy(bf16()[row : row + 1])
        return tg.InferenceServerClient(url.grpc).infer(BATCHED, [x]).as_numpy("output")

    before = stats()
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(call, range(3)))
    for row, answer in enumerate(answers):
        np.testing.assert_array_equal(answer.view(np.uint16), bf16()[row : row + 1].view(np.uint16))
    inferences, executions = (a - b for a, b in zip(stats(), before))
    assert inferences == 3 and executions < 3

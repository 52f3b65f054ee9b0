"""inference.GRPCInferenceService against a real server, through tritonclient.grpc: every RPC,
every datatype, the same answers as HTTP byte for byte, and bad input as status codes."""

import asyncio

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.grpc.aio as tg_aio
import tritonclient.http as th
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2
from tritonclient.grpc import service_pb2 as pb
from tritonclient.utils import InferenceServerException

from tests import onnx_models
from tests.protocol.test_v2_server import DATATYPES, sample

MAX_BYTES = 2**20


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    repo = tmp_path_factory.mktemp("repo")
    for datatype in DATATYPES:
        onnx_models.save(onnx_models.identity(datatype), repo, f"identity_{datatype.lower()}")
    onnx_models.save(onnx_models.identity("FP32", shape=()), repo, "scalar")
    onnx_models.save(onnx_models.two_in_two_out(), repo, "pair")
    onnx_models.save(onnx_models.add_constant(1.0), repo, "versioned", version=1)
    onnx_models.save(onnx_models.add_constant(2.0), repo, "versioned", version=2)
    (repo / "versioned" / "config.yaml").write_text("version_policy: {all: {}}\n")
    onnx_models.save(onnx_models.add_constant(5.0), repo, "garbage").write_bytes(b"not a model")
    onnx_models.save(onnx_models.gather(np.arange(4.0)), repo, "gather")
    return module_server(repo, args=["--max-request-bytes", str(MAX_BYTES)])


@pytest.fixture
def client(url):
    client = tg.InferenceServerClient(url.grpc)
    yield client
    client.close()


@pytest.fixture
def http(url):
    client = th.InferenceServerClient(url.removeprefix("http://"))
    yield client
    client.close()


def grpc_infer(client, model, arrays: dict, datatypes: dict, outputs=None, **kwargs):
    inputs = []
    for name, array in arrays.items():
        tensor = tg.InferInput(name, list(array.shape), datatypes[name])
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    requested = [tg.InferRequestedOutput(n) for n in outputs] if outputs else None
    return client.infer(model, inputs, outputs=requested, **kwargs)


def http_infer(client, model, arrays: dict, datatypes: dict, outputs=None):
    inputs = []
    for name, array in arrays.items():
        tensor = th.InferInput(name, list(array.shape), datatypes[name])
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    requested = [th.InferRequestedOutput(n, binary_data=True) for n in outputs] if outputs else None
    return client.infer(model, inputs, outputs=requested)


def raw_outputs(result) -> dict[str, bytes]:
    response = result.get_response()
    return {o.name: raw for o, raw in zip(response.outputs, response.raw_output_contents)}


def as_dict(message) -> dict:
    """A message as the JSON HTTP answers with (protobuf's JSON writes int64 as strings)."""

    def plain(node):
        if isinstance(node, dict):
            return {k: [int(d) for d in v] if k in ("shape", "dims") else plain(v) for k, v in node.items()}
        if isinstance(node, list):
            return [plain(v) for v in node]
        return node

    return plain(json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True))


def call(url, method: str, message, metadata=()) -> tuple[grpc.StatusCode, str]:
    """One raw RPC (bytes in, so a test can send what no client would); (code, details)."""
    with grpc.insecure_channel(url.grpc) as channel:
        rpc = channel.unary_unary(f"/inference.GRPCInferenceService/{method}")
        payload = message if isinstance(message, bytes) else message.SerializeToString()
        try:
            rpc(payload, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


# ------------------------------------------------------------------------ health and metadata


def test_health_and_metadata_match_http(client, http):
    assert client.is_server_live() and client.is_server_ready()
    assert json_format.MessageToDict(client.get_server_metadata()) == http.get_server_metadata()
    for model in ("pair", "scalar", "versioned"):
        assert client.is_model_ready(model)
        as_grpc = as_dict(client.get_model_metadata(model))
        as_http = http.get_model_metadata(model)
        as_http.pop("parameters")  # not in the protocol's message; HTTP adds it for operators
        assert as_grpc == as_http
        http_config = json_format.ParseDict(http.get_model_config(model), model_config_pb2.ModelConfig())
        assert client.get_model_config(model).config == http_config
    assert not client.is_model_ready("nope") and not client.is_model_ready("garbage")
    assert client.is_model_ready("versioned", "1") and not client.is_model_ready("versioned", "9")


# ------------------------------------------------------------------------ inference


@pytest.mark.parametrize("datatype", DATATYPES)
def test_every_datatype_gives_the_bytes_http_gives(client, http, datatype):
    model = f"identity_{datatype.lower()}"
    array = sample(datatype, (4, 3))
    result = grpc_infer(client, model, {"input": array}, {"input": datatype})
    output = result.as_numpy("output")
    if datatype == "BYTES":
        assert output.reshape(-1).tolist() == array.reshape(-1).tolist()
    else:
        assert output.dtype == array.dtype
        np.testing.assert_array_equal(output, array)
    # HTTP's binary output is the same bytes as gRPC's raw output
    via_http = http_infer(http, model, {"input": array}, {"input": datatype}).as_numpy("output")
    assert raw_outputs(result)["output"] == _raw(via_http, datatype)


def _raw(array: np.ndarray, datatype: str) -> bytes:
    if datatype != "BYTES":
        return np.ascontiguousarray(array).tobytes()
    return b"".join(len(v).to_bytes(4, "little") + v for v in array.reshape(-1).tolist())


TYPED = {  # datatype -> the InferTensorContents field a typed request uses
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


@pytest.mark.parametrize("datatype", list(TYPED))
def test_typed_contents_are_read_like_raw_ones(url, datatype):
    array = sample(datatype, (2, 3))
    request = pb.ModelInferRequest(model_name=f"identity_{datatype.lower()}", id="typed")
    tensor = request.inputs.add(name="input", datatype=datatype, shape=[2, 3])
    getattr(tensor.contents, TYPED[datatype]).extend(array.reshape(-1).tolist())
    with grpc.insecure_channel(url.grpc) as channel:
        reply = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )(request, timeout=30)
    assert reply.id == "typed" and reply.outputs[0].datatype == datatype and list(reply.outputs[0].shape) == [2, 3]
    assert reply.raw_output_contents[0] == _raw(array, datatype)


def test_two_inputs_requested_outputs_id_and_parameters(client):
    x = np.array([[1, 2], [3, 4]], np.float32)
    n = np.array([10, 20], np.int64)
    arrays, types = {"x": x, "n": n}, {"x": "FP32", "n": "INT64"}
    result = grpc_infer(client, "pair", arrays, types, request_id="req-7", parameters={"note": "kept", "k": 3})
    np.testing.assert_array_equal(result.as_numpy("scaled"), x * 2)
    np.testing.assert_array_equal(result.as_numpy("next"), n + 1)
    assert result.get_response().id == "req-7" and result.get_response().model_version == "1"
    only = grpc_infer(client, "pair", arrays, types, outputs=["next"])
    assert [o.name for o in only.get_response().outputs] == ["next"]


def test_scalar_zero_size_and_versions(client):
    scalar = grpc_infer(client, "scalar", {"input": np.array(3.5, np.float32)}, {"input": "FP32"})
    assert scalar.as_numpy("output").shape == () and scalar.as_numpy("output").item() == 3.5
    empty = grpc_infer(client, "identity_fp32", {"input": np.zeros((0, 3), np.float32)}, {"input": "FP32"})
    assert empty.as_numpy("output").shape == (0, 3)
    x = {"x": np.array([[1.0]], np.float32)}
    assert grpc_infer(client, "versioned", x, {"x": "FP32"}).as_numpy("y").item() == 3.0
    assert grpc_infer(client, "versioned", x, {"x": "FP32"}, model_version="1").as_numpy("y").item() == 2.0


# ------------------------------------------------------------------------ a header seen before
# A ModelInfer request's header (everything but its id and raw contents) is read once and its
# checked reading kept (service/grpc/infer_wire.py): the same header again must still answer from
# the contents it comes with, and refuse what a header seen for the first time would refuse.


def _other(datatype: str, shape) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([b"x" * i for i in range(int(np.prod(shape)))], dtype=object).reshape(shape)
    if datatype == "BOOL":
        return ~sample(datatype, shape)
    return (sample(datatype, shape)[::-1] + 1).astype(sample(datatype, shape).dtype)


@pytest.mark.parametrize("datatype", DATATYPES)
def test_the_same_header_answers_from_each_calls_raw_contents(client, datatype):
    model = f"identity_{datatype.lower()}"
    for number, array in enumerate((sample(datatype, (4, 3)), _other(datatype, (4, 3)), sample(datatype, (4, 3)))):
        result = grpc_infer(client, model, {"input": array}, {"input": datatype}, request_id=f"call-é-{number}")
        output = result.as_numpy("output")
        assert result.get_response().id == f"call-é-{number}"
        if datatype == "BYTES":
            assert output.reshape(-1).tolist() == array.reshape(-1).tolist()
        else:
            assert output.dtype == array.dtype
            np.testing.assert_array_equal(output, array)


def test_the_same_two_input_header_answers_each_call(client):
    types = {"x": "FP32", "n": "INT64"}
    for scale in (1, 5, -3):
        x, n = np.arange(6, dtype=np.float32).reshape(3, 2) * scale, np.arange(3, dtype=np.int64) * scale
        result = grpc_infer(client, "pair", {"x": x, "n": n}, types, outputs=["next", "scaled"])
        np.testing.assert_array_equal(result.as_numpy("scaled"), x * 2)
        np.testing.assert_array_equal(result.as_numpy("next"), n + 1)


def test_a_known_header_refuses_what_a_new_one_refuses(url):
    def infer(raws: list[bytes]) -> tuple[grpc.StatusCode, str]:
        request = _request(raw=b"")
        request.model_version = "1"  # a header no other test sends
        del request.raw_input_contents[:]
        request.raw_input_contents.extend(raws)
        return call(url, "ModelInfer", request)

    right, short = np.ones(3, np.float32).tobytes(), b"\0" * 8
    first = infer([short])  # before the header is known: read by protobuf and decode_request
    assert first == (grpc.StatusCode.INVALID_ARGUMENT, "input 'input': raw content is 8 bytes but shape [1, 3] of FP32 needs 12")
    assert infer([right]) == (grpc.StatusCode.OK, "")  # now it is known
    assert infer([short]) == first
    assert infer([right, right]) == (
        grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents holds 2 buffers but the request has 1 inputs")
    assert infer([]) == (
        grpc.StatusCode.INVALID_ARGUMENT, "input 'input': fp32_contents has 0 elements but shape [1, 3] needs 3")
    known = _request(raw=b"")
    known.model_version = "1"
    del known.raw_input_contents[:]
    overlong_raw_tag = b"\xba\x80\x80\x80\x80\x00\x0c" + right  # a six-byte tag: protobuf refuses it
    code, details = call(url, "ModelInfer", known.SerializeToString() + overlong_raw_tag)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("malformed protobuf")
    assert infer([right]) == (grpc.StatusCode.OK, "")


def test_aio_client(url):
    async def run():
        client = tg_aio.InferenceServerClient(url.grpc)
        try:
            assert await client.is_server_ready()
            tensor = tg_aio.InferInput("input", [2, 3], "FP32")
            array = sample("FP32", (2, 3))
            tensor.set_data_from_numpy(array)
            results = await asyncio.gather(*(client.infer("identity_fp32", [tensor]) for _ in range(8)))
            return [r.as_numpy("output") for r in results], array
        finally:
            await client.close()

    outputs, array = asyncio.run(run())
    assert all(np.array_equal(o, array) for o in outputs)


def test_statistics_and_repository_match_http(client, http, url):
    grpc_infer(client, "pair", {"x": np.ones((1, 2), np.float32), "n": np.ones(1, np.int64)}, {"x": "FP32", "n": "INT64"})
    stats = json_format.MessageToDict(client.get_inference_statistics("pair"), preserving_proto_field_name=True)
    row = stats["model_stats"][0]
    assert row["name"] == "pair" and int(row["inference_count"]) >= 1 and int(row["execution_count"]) >= 1
    every = client.get_inference_statistics()
    assert {s.name for s in every.model_stats} >= {"pair", "scalar"}
    index = [json_format.MessageToDict(m) for m in client.get_model_repository_index().models]
    as_http = httpx.post(f"{url}/v2/repository/index").json()
    assert [(m["name"], m.get("version", ""), m["state"]) for m in index] == [(m["name"], m["version"], m["state"]) for m in as_http]


# ------------------------------------------------------------------------ errors


def test_errors_are_status_codes_with_the_http_messages(client, url):
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("nope")
    http_missing = httpx.get(f"{url}/v2/models/nope").json()["error"]
    assert http_missing.startswith("unknown model 'nope'; the models are: ")
    assert missing.value.status() == "StatusCode.NOT_FOUND" and missing.value.message() == http_missing
    with pytest.raises(InferenceServerException) as version:
        client.get_model_metadata("versioned", "9")
    assert version.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as broken:
        client.get_model_metadata("garbage")
    assert broken.value.status() == "StatusCode.UNAVAILABLE" and "could not be loaded" in broken.value.message()

    wrong = {"input": np.ones((1, 3), np.float64)}
    with pytest.raises(InferenceServerException) as datatype:
        grpc_infer(client, "identity_fp32", wrong, {"input": "FP64"})
    body = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 1, 1]}]}
    http_message = httpx.post(f"{url}/v2/models/identity_fp32/infer", json=body).json()["error"]
    assert datatype.value.status() == "StatusCode.INVALID_ARGUMENT" and datatype.value.message() == http_message
    with pytest.raises(InferenceServerException) as model_failed:  # the model's own refusal
        grpc_infer(client, "gather", {"idx": np.array([99], np.int64)}, {"idx": "INT64"})
    assert model_failed.value.status() == "StatusCode.INVALID_ARGUMENT"


def _request(model="identity_fp32", shape=(1, 3), raw: bytes | None = None, name="input", datatype="FP32"):
    request = pb.ModelInferRequest(model_name=model)
    request.inputs.add(name=name, datatype=datatype, shape=list(shape))
    request.raw_input_contents.append(np.ones(3, np.float32).tobytes() if raw is None else raw)
    return request


def _duplicate():
    request = _request()
    request.inputs.add(name="input", datatype="FP32", shape=[1, 3])
    request.raw_input_contents.append(np.ones(3, np.float32).tobytes())
    return request


def _unknown_output():
    request = _request()
    request.outputs.add(name="nope")
    return request


BAD = {
    "malformed protobuf": (b"\x0a\xff\xff\xff\xff\x0f", "malformed protobuf"),
    "raw size mismatch": (_request(raw=b"\0" * 8), "raw content is 8 bytes but shape [1, 3] of FP32 needs 12"),
    "negative shape": (_request(shape=(-1, 3)), "negative dimension"),
    "overflowing shape": (_request(shape=(2**62, 2**62)), "over the limit"),
    "duplicate input": (_duplicate(), "input 'input' is given more than once"),
    "unknown output": (_unknown_output(), "unknown output 'nope'"),
    "unknown datatype": (_request(datatype="FLOAT"), "unknown datatype 'FLOAT'"),
    "raw count": (pb.ModelInferRequest(model_name="identity_fp32", raw_input_contents=[b"x"]), "holds 1 buffers"),
    "FP16 as typed": (pb.ModelInferRequest(model_name="identity_fp16", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP16", shape=[1, 3])]), "only in raw_input_contents"),
    "INT8 out of range": (pb.ModelInferRequest(model_name="identity_int8", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="input", datatype="INT8", shape=[1, 1],
                                              contents=pb.InferTensorContents(int_contents=[300]))]), "outside the range"),
    "wrong typed field": (pb.ModelInferRequest(model_name="identity_fp32", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP32", shape=[1, 1],
                                              contents=pb.InferTensorContents(fp64_contents=[1.0]))]), "go in fp32_contents"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_invalid_argument_and_the_server_lives_on(url, client, case):
    message, reason = BAD[case]
    code, details = call(url, "ModelInfer", message)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert reason in details
    assert client.is_server_live()


def test_oversize_message_is_resource_exhausted(url, client):
    code, details = call(url, "ModelInfer", _request(shape=(1, MAX_BYTES), raw=b"\0" * (MAX_BYTES * 4)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details
    assert client.is_server_live()


def test_shared_memory_rpcs_are_unimplemented(url):
    code, _ = call(url, "SystemSharedMemoryStatus", pb.SystemSharedMemoryStatusRequest())
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_requests_count_under_the_grpc_protocol_label(url, client):
    grpc_infer(client, "identity_int32", {"input": sample("INT32", (2, 3))}, {"input": "INT32"})
    text = httpx.get(f"{url}/metrics").text
    assert 'modelserve_inference_request_success_total{model="identity_int32",protocol="grpc",version="1"}' in text

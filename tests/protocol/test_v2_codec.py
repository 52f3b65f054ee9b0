"""The V2 codec against tritonclient's own request and response encoders, every datatype."""

import struct

import numpy as np
import orjson
import pytest
import tritonclient.http as triton

from service.datatypes import V2_TO_NUMPY, onnx_to_v2, v2_datatype
from service.errors import InvalidInput
from service.protocol.body import AlignedBody
from service.protocol.v2_codec import InferRequest, Limits, decode_request, encode_response
from tests.protocol.test_v2_server import sample

LIMITS = Limits(max_tensor_elements=1_000_000, max_json_depth=32)
SHAPES = [(2, 3), (), (0, 4), (1, 1, 1, 1, 1, 1, 2)]


def _request(array: np.ndarray, datatype: str, binary: bool) -> tuple[bytes, str | None]:
    tensor = triton.InferInput("t", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor])
    return body, (str(json_size) if json_size is not None else None)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", list(V2_TO_NUMPY))
def test_round_trip(datatype, binary, shape):
    if datatype in ("FP16", "BF16") and not binary:
        pytest.skip(f"tritonclient encodes {datatype} only as binary")
    array = sample(datatype, shape)
    request = decode_request(*_request(array, datatype, binary), LIMITS)
    decoded = request.inputs["t"]
    assert request.datatypes["t"] == datatype and decoded.shape == shape
    assert decoded.reshape(-1).tolist() == array.reshape(-1).tolist()

    reply = InferRequest({}, {}, id="7", binary_by_default=binary)
    body, headers = encode_response("m", "1", {"t": decoded}, reply)
    header_length = headers.get("inference-header-content-length")
    result = triton.InferResult.from_response_body(body, header_length=int(header_length) if header_length else None)
    assert result.get_response()["id"] == "7"
    output = result.as_numpy("t")
    assert output.shape == shape
    if datatype == "BYTES":
        assert [v if isinstance(v, bytes) else v.encode() for v in output.reshape(-1).tolist()] == array.reshape(-1).tolist()
    else:
        assert output.dtype == array.dtype
        np.testing.assert_array_equal(output, array)


def test_binary_output_only_where_asked():
    request = decode_request(
        b'{"inputs":[],"outputs":[{"name":"a","parameters":{"binary_data":true}},{"name":"b"}]}', None, LIMITS
    )
    body, headers = encode_response("m", "1", {"a": np.ones(2, np.float32), "b": np.ones(2, np.float32)}, request)
    header = body[: int(headers["inference-header-content-length"])]
    assert b'"binary_data_size":8' in header and b'"data":[1.0,1.0]' in header
    assert len(body) == len(header) + 8


def test_datatype_maps():
    assert onnx_to_v2("tensor(float)") == "FP32" and onnx_to_v2("seq(map(int64,tensor(float)))") is None
    assert v2_datatype(np.dtype("<U5")) == "BYTES" and v2_datatype(np.dtype(np.float16)) == "FP16"
    with pytest.raises(TypeError):
        v2_datatype(np.dtype(np.complex64))


def test_element_limit_is_checked_before_allocation():
    body = b'{"inputs":[{"name":"t","shape":[4096,4096],"datatype":"FP32","parameters":{"binary_data_size":0}}]}'
    with pytest.raises(InvalidInput, match="over the limit"):
        decode_request(body, None, Limits(max_tensor_elements=1000, max_json_depth=8))


def test_non_utf8_bytes_output_needs_binary():
    with pytest.raises(InvalidInput, match="not UTF-8"):
        encode_response("m", "1", {"t": np.array([b"\xff"], dtype=object)}, InferRequest({}, {}))


def test_depth_limit_holds_whether_or_not_the_walk_is_skipped():
    # 4 levels deep (the shape list), 5 brackets: no walk at 5, a walk that passes at 4, refused at 3.
    shallow = b'{"inputs":[{"name":"t","shape":[1],"datatype":"FP32","data":[1.5]}]}'
    for limit in (5, 4):
        assert decode_request(shallow, None, Limits(1000, limit)).inputs["t"].tolist() == [1.5]
    with pytest.raises(InvalidInput, match="deeper than 3"):
        decode_request(shallow, None, Limits(1000, 3))
    deep_param = b'{"parameters":{"a":{"b":[[[]]]}},"inputs":[]}'  # 6 levels
    with pytest.raises(InvalidInput, match="deeper than 5"):
        decode_request(deep_param, None, Limits(1000, 5))
    # '[' inside strings count too: many of them force the walk, which finds 2 levels fine.
    in_strings = b'{"id":"[[[[[[","inputs":[]}'
    assert decode_request(in_strings, None, Limits(1000, 3)).id == "[[[[[["
    # data is skipped by the walk, as before: deep data is numpy's to judge, not the depth limit's.
    with pytest.raises(InvalidInput, match="elements"):
        decode_request(b'{"inputs":[{"name":"t","shape":[1],"datatype":"FP32","data":[[[[[[1,2]]]]]]}]}',
                       None, Limits(1000, 4))


def _binary(header: dict, payload: bytes) -> tuple[bytes, str]:
    raw = orjson.dumps(header)
    return raw + payload, str(len(raw))


def test_a_repeated_binary_header_reads_each_request_s_own_tensors():
    # The second decode of a header is served from what the first learned; each body's bytes still count.
    header = {"id": "same", "inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
                                       {"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}}],
              "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}
    for values, text in (([1.5, 2.5], b"one"), ([3.0, -4.0], b"two"), ([5.0, 6.0], b"six")):
        body, length = _binary(header, np.array(values, np.float32).tobytes() + struct.pack("<I", 3) + text)
        request = decode_request(body, length, LIMITS)
        assert request.inputs["a"].tolist() == values and request.inputs["s"].tolist() == [text]
        assert request.id == "same" and request.output_names == ["y"] and request.wants_binary("y")
    # A BYTES length that overruns its tensor is still found, and so is a binary part of another size.
    body, length = _binary(header, np.zeros(2, np.float32).tobytes() + struct.pack("<I", 9) + b"one")
    with pytest.raises(InvalidInput, match="overruns the tensor's data"):
        decode_request(body, length, LIMITS)
    body, length = _binary(header, np.zeros(2, np.float32).tobytes() + struct.pack("<I", 3) + b"one!")
    with pytest.raises(InvalidInput, match="1 bytes of binary data that no input claims"):
        decode_request(body, length, LIMITS)


def test_a_binary_header_is_checked_again_under_other_limits():
    body, length = _binary({"inputs": [{"name": "a", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]},
                           np.zeros(4, np.float32).tobytes())
    assert decode_request(body, length, LIMITS).inputs["a"].shape == (4,)
    with pytest.raises(InvalidInput, match="over the limit of 3"):
        decode_request(body, length, Limits(max_tensor_elements=3, max_json_depth=32))


def test_binary_tensors_are_read_in_place_from_an_aligned_body():
    for header_length in range(8):  # every alignment of the JSON header's end
        header = {"id": "x" * header_length, "inputs": [{"name": "a", "shape": [2, 2], "datatype": "FP64",
                                                          "parameters": {"binary_data_size": 32}}]}
        body, length = _binary(header, np.arange(4, dtype=np.float64).tobytes())
        gathered = AlignedBody(len(body), int(length))
        for start in range(0, len(body), 5):  # in chunks, as the HTTP parser hands them over
            gathered += body[start:start + 5]
        assert len(gathered) == len(body) and bytes(gathered.view()) == body
        array = decode_request(gathered.view(), length, LIMITS).inputs["a"]
        assert array.tolist() == [[0.0, 1.0], [2.0, 3.0]]
        assert array.ctypes.data % 8 == 0 and not array.flags.owndata  # a view of the body: not copied


def test_an_aligned_body_larger_than_what_it_allocates_ahead_grows_as_chunks_come():
    payload = np.arange(AlignedBody.AHEAD // 4 + 1000, dtype=np.float32)
    header = {"inputs": [{"name": "a", "shape": [payload.size], "datatype": "FP32", "parameters": {"binary_data_size": payload.nbytes}}]}
    body, length = _binary(header, payload.tobytes())
    gathered = AlignedBody(len(body), int(length))
    for start in range(0, len(body), 65536):
        gathered += body[start:start + 65536]
    assert bytes(gathered.view()) == body
    array = decode_request(gathered.view(), length, LIMITS).inputs["a"]
    np.testing.assert_array_equal(array, payload)
    assert array.ctypes.data % 8 == 0 and not array.flags.owndata

"""The V2 codec against tritonclient's own request and response encoders, every datatype."""

import numpy as np
import pytest
import tritonclient.http as triton

from service.datatypes import V2_TO_NUMPY, onnx_to_v2, v2_datatype
from service.errors import InvalidInput
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

"""Round trips of the V2 codec for arbitrary datatypes and shapes (Hypothesis).

The example-based tests in test_v2_codec.py check the codec against tritonclient; these check
that what goes in comes out, bit for bit in binary, for shapes nobody would write by hand:
scalars, zero-size tensors, rank up to 32, NaN payloads, empty and non-UTF-8 BYTES.
"""

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.datatypes import V2_TO_NUMPY
from service.protocol.v2_codec import (
    InferRequest,
    Limits,
    array_from_binary,
    binary_bytes,
    decode_request,
    encode_response,
)
from tests.protocol.codec_strategies import NUMERIC, nested, tensors, text_tensors

LIMITS = Limits(max_tensor_elements=1_000_000, max_json_depth=64)
# Modest counts: the whole file runs in seconds on a busy two-core machine.
CHECKS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    if expected.dtype == object:
        assert actual.dtype == object and actual.reshape(-1).tolist() == expected.reshape(-1).tolist()
    else:  # bitwise: NaN payloads and -0.0 included
        assert actual.dtype == expected.dtype
        assert np.ascontiguousarray(actual).tobytes() == np.ascontiguousarray(expected).tobytes()


def json_tensor(name: str, datatype: str, array: np.ndarray, nest: bool) -> dict:
    flat = [v.decode() for v in array.reshape(-1)] if datatype == "BYTES" else array.reshape(-1).tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape),
            "data": nested(flat, array.shape) if nest else flat}


def from_json_output(tensor: dict) -> np.ndarray:
    if tensor["datatype"] == "BYTES":
        array = np.empty(len(tensor["data"]), dtype=object)
        array[:] = [v.encode() for v in tensor["data"]]
    else:
        array = np.asarray(tensor["data"], dtype=V2_TO_NUMPY[tensor["datatype"]])
    return array.reshape(tensor["shape"])


@CHECKS
@given(tensor=st.one_of(tensors(NUMERIC), text_tensors()), nest=st.booleans())
def test_json_tensors_round_trip(tensor, nest):
    datatype, array = tensor
    body = orjson.dumps({"id": "r", "inputs": [json_tensor("t", datatype, array, nest)]})
    request = decode_request(body, None, LIMITS)
    assert request.datatypes == {"t": datatype} and request.id == "r"
    assert_same(request.inputs["t"], array)

    response, headers = encode_response("m", "1", {"t": request.inputs["t"]}, request)
    assert headers == {"content-type": "application/json"}
    (output,) = orjson.loads(response)["outputs"]
    assert output["datatype"] == datatype and output["shape"] == list(array.shape)
    assert_same(from_json_output(output), array)


@CHECKS
@given(named=st.lists(tensors(finite=False), min_size=1, max_size=3))
def test_binary_tensors_round_trip(named):
    arrays = {f"t{i}": array for i, (_, array) in enumerate(named)}
    datatypes = {f"t{i}": datatype for i, (datatype, _) in enumerate(named)}
    chunks = [bytes(binary_bytes(arrays[name], datatypes[name])) for name in arrays]
    header = orjson.dumps({"inputs": [
        {"name": name, "datatype": datatypes[name], "shape": list(arrays[name].shape),
         "parameters": {"binary_data_size": len(chunk)}}
        for name, chunk in zip(arrays, chunks)
    ]})
    request = decode_request(header + b"".join(chunks), str(len(header)), LIMITS)
    for name, array in arrays.items():
        assert_same(request.inputs[name], array)

    reply = InferRequest({}, {}, binary_by_default=True)
    response, headers = encode_response("m", "1", request.inputs, reply)
    length = int(headers["inference-header-content-length"])
    offset = length
    for output in orjson.loads(response[:length])["outputs"]:
        size = output["parameters"]["binary_data_size"]
        raw = memoryview(response)[offset : offset + size]
        decoded = array_from_binary(raw, output["datatype"], tuple(output["shape"]), output["name"])
        assert_same(decoded, arrays[output["name"]])
        offset += size
    assert offset == len(response)

"""The codec's shortcut for simple JSON requests and answers gives what the general path gives.

A request `{"inputs": [{"name", "shape", "datatype", "data"}]}` is read by a shortcut; the same
request with `"parameters": {}` in its inputs is read by the general path. Both must give the
same tensors, or the same error, for any data a client can write. Answers are compared with the
document orjson would write.
"""

import json
import math

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.datatypes import V2_TO_NUMPY
from service.errors import InvalidInput
from service.protocol.v2_codec import InferRequest, Limits, decode_request, encode_response

LIMITS = Limits(max_tensor_elements=1000, max_json_depth=64)
CHECKS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values at the edges of what the shortcut decides itself: float32's range, integers beyond
# int64, booleans and text among numbers.
VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-3.5e38, max_value=3.5e38),
    st.sampled_from([3.4028234663852886e38, 3.4028235677973366e38, -3.5e38, 1e38, -0.0, 2.0**64, 2**64, -(2**63) - 1]),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.sampled_from(["1.5", None, [1.0], {"a": 1}]),
)


def _outcome(document: dict, limits: Limits = LIMITS):
    try:
        request = decode_request(json.dumps(document).encode(), None, limits)
    except InvalidInput as exc:
        return "error", str(exc)
    arrays = {name: (a.dtype.str, a.shape, a.tobytes()) for name, a in request.inputs.items()}
    return arrays, request.datatypes, request.id, request.output_names, request.parameters


def _general(document: dict) -> dict:
    inputs = document.get("inputs")
    if isinstance(inputs, list):
        inputs = [{**t, "parameters": {}} if isinstance(t, dict) else t for t in inputs]
    return {**document, "inputs": inputs}


@CHECKS
@given(
    datatype=st.sampled_from(["FP32", "FP64", "FP16", "INT32", "BOOL"]),
    shape=st.lists(st.integers(0, 4), max_size=3),
    data=st.lists(VALUES, max_size=12),
    with_id=st.sampled_from([None, "r1", 7]),
)
def test_simple_requests_read_as_the_general_path_reads_them(datatype, shape, data, with_id):
    document = {"inputs": [{"name": "t", "shape": shape, "datatype": datatype, "data": data}]}
    if with_id is not None:
        document["id"] = with_id
    assert _outcome(document) == _outcome(_general(document))


@CHECKS
@given(
    datatype=st.sampled_from(["FP32", "FP64"]),
    filler=st.sampled_from([0.25, 3, -1e30]),
    odd=st.lists(VALUES, max_size=4),
    odd_first=st.booleans(),
)
def test_long_tensors_read_as_the_general_path_reads_them(datatype, filler, odd, odd_first):
    """Past the few values of a row (over 256), the shortcut converts the list straight to the
    datatype: the same edge values, among many ordinary ones, at the front or at the end."""
    plain = [filler] * (300 - len(odd))
    data = odd + plain if odd_first else plain + odd
    document = {"inputs": [{"name": "t", "shape": [3, 100], "datatype": datatype, "data": data}]}
    assert _outcome(document) == _outcome(_general(document))


@CHECKS
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=64))
def test_float32_rows_read_exactly(values):
    shape = [1, len(values)]
    document = {"id": "x", "inputs": [{"name": "a", "shape": shape, "datatype": "FP32", "data": values},
                                      {"name": "b", "shape": shape[::-1], "datatype": "FP64", "data": values}]}
    outcome = _outcome(document)
    assert outcome == _outcome(_general(document))
    arrays = outcome[0]
    assert arrays["a"] == ("<f4", (1, len(values)), np.array(values, np.float32).reshape(shape).tobytes())


@pytest.mark.parametrize("document", [
    {"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "data": [1, 2]}] * 2},  # given twice
    {"inputs": [{"name": "", "shape": [1], "datatype": "FP32", "data": [1]}]},
    {"inputs": [{"name": "t", "shape": [1], "datatype": ["FP32"], "data": [1]}]},
    {"inputs": [{"name": "t", "shape": [True], "datatype": "FP32", "data": [1]}]},
    {"inputs": [{"name": "t", "shape": [1001], "datatype": "FP32", "data": [1] * 1001}]},  # over the limit
    {"inputs": [{"name": "t", "shape": [1, 2], "datatype": "FP32", "data": [[1, 2]]}]},  # nested: fine
    {"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "data": [[1], [2, 3]]}]},  # ragged
    {"inputs": [{"name": "t", "shape": [1], "datatype": "FP32", "data": [1]}], "id": "a", "x": 1},
    {"inputs": [], "id": "a"},
    {"inputs": [{"name": "t", "shape": [1] * 33, "datatype": "FP32", "data": [1]}]},
    {"inputs": [{"name": "t", "shape": [300], "datatype": "FP32", "data": [0.5] * 299 + [1e39]}]},  # long: np.errstate
    {"inputs": [{"name": "t", "shape": [3, 100], "datatype": "FP32", "data": [0.5] * 299 + [3e38]}]},
    {"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "data": [1e39, 1]}]},
])
def test_edge_requests_read_as_the_general_path_reads_them(document):
    assert _outcome(document) == _outcome(_general(document))


def test_a_shallow_depth_limit_still_applies():
    document = {"inputs": [{"name": "t", "shape": [1], "datatype": "FP32", "data": [1.5]}]}
    with pytest.raises(InvalidInput, match="nests deeper than 3"):
        decode_request(orjson.dumps(document), None, Limits(1000, 3))
    assert _outcome(document, Limits(1000, 4))[0]["t"][1] == (1,)
    for depth in (3, 4, 5):
        assert _outcome(document, Limits(1000, depth)) == _outcome(_general(document), Limits(1000, depth))


NUMERIC = [d for d in V2_TO_NUMPY if d not in ("BYTES", "BF16")]


@CHECKS
@given(
    outputs=st.lists(
        st.tuples(st.sampled_from(NUMERIC), st.lists(st.integers(0, 3), max_size=3), st.integers(0, 2**32 - 1)),
        min_size=1, max_size=3,
    ),
    request_id=st.sampled_from([None, "7", 'a"\\\u00e9']),
    model=st.sampled_from(["m", "m\u00e9\"x"]),
)
def test_answers_are_the_document_orjson_writes(outputs, request_id, model):
    arrays = {}
    for position, (datatype, shape, seed) in enumerate(outputs):
        rng = np.random.default_rng(seed)
        dtype = V2_TO_NUMPY[datatype]
        if dtype.kind == "f":
            values = rng.standard_normal(math.prod(shape)) * 10.0 ** int(rng.integers(-3, 3))
        else:
            values = rng.integers(0, 100, math.prod(shape))
        arrays[f"o{position}\u00e9"] = values.astype(dtype).reshape(shape)
    body, headers = encode_response(model, "3", arrays, InferRequest({}, {}, request_id))
    tensors = [{"name": name, "datatype": datatype, "shape": list(a.shape), "data": a.reshape(-1)}
               for (name, a), (datatype, *_) in zip(arrays.items(), outputs)]
    document = {"model_name": model, "model_version": "3", "outputs": tensors}
    if request_id is not None:
        document["id"] = request_id
    assert headers == {"content-type": "application/json"}
    assert body == orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def test_non_finite_answers_still_spelt_out():
    body, _ = encode_response("m", "1", {"t": np.array([np.nan, np.inf, -np.inf, 1], np.float32)}, InferRequest({}, {}))
    assert body == b'{"model_name":"m","model_version":"1","outputs":[{"name":"t","datatype":"FP32","shape":[4],"data":[NaN,Infinity,-Infinity,1.0]}]}'

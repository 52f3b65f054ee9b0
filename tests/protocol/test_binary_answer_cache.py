"""The binary answer's remembered JSON header: a repeat gives the same bytes as building it anew."""

import numpy as np
import orjson
import pytest

from service.protocol import v2_codec
from service.protocol.v2_codec import InferRequest, encode_response

CASES = [
    {"logits": np.arange(640, dtype=np.float32).reshape(64, 10)},
    {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.array([True, False])},
    {"half": np.ones((1, 4), np.float16), "wide": np.full((3,), 2.5, np.float64)},
    {"scalar": np.array(7, np.int32)},
]


def _fresh(outputs, request):
    v2_codec._binary_heads.clear()
    return encode_response("m", "1", outputs, request)


@pytest.mark.parametrize("outputs", CASES)
@pytest.mark.parametrize("by_default", [True, False])
def test_a_repeat_answers_the_same_bytes(outputs, by_default):
    request = InferRequest({}, {}, binary_outputs=set() if by_default else set(outputs), binary_by_default=by_default)
    first, first_headers = _fresh(outputs, request)
    again, again_headers = encode_response("m", "1", {k: v.copy() for k, v in outputs.items()}, request)
    assert again == first and again_headers == first_headers
    header = orjson.loads(first[: int(first_headers["inference-header-content-length"])])
    assert [t["name"] for t in header["outputs"]] == list(outputs)


def test_another_shape_model_or_id_is_not_taken_for_a_known_one():
    request = InferRequest({}, {}, binary_by_default=True)
    first, _ = _fresh({"y": np.zeros((2, 3), np.float32)}, request)
    other, _headers = encode_response("m", "1", {"y": np.zeros((3, 2), np.float32)}, request)
    assert b'"shape":[3,2]' in other and other != first
    renamed, _ = encode_response("n", "2", {"y": np.zeros((2, 3), np.float32)}, request)
    assert b'"model_name":"n","model_version":"2"' in renamed
    with_id, _ = encode_response("m", "1", {"y": np.zeros((2, 3), np.float32)}, InferRequest({}, {}, id="r1", binary_by_default=True))
    assert b'"id":"r1"' in with_id


def test_an_output_asked_for_as_json_keeps_its_data():
    outputs = {"a": np.ones((1, 2), np.float32), "b": np.ones((1, 2), np.float32)}
    request = InferRequest({}, {}, binary_outputs={"a"})
    body, _headers = _fresh(outputs, request)
    again, _ = encode_response("m", "1", outputs, request)
    assert again == body and b'"data":[1.0,1.0]' in body

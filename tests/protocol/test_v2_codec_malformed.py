"""Hostile request bodies are InvalidInput (a 400), never another exception or a hang.

Each test starts from a valid request and breaks one thing a client controls: the header
length, a binary_data_size, the bytes after the header, a BYTES length prefix, a field of a
tensor header. The codec must either decode it consistently or refuse it with InvalidInput.
"""

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import InvalidInput
from service.protocol.v2_codec import InferRequest, Limits, binary_bytes, decode_request
from tests.protocol.codec_strategies import dims, junk, sizes, tensors

LIMITS = Limits(max_tensor_elements=100_000, max_json_depth=16)
CHECKS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.timeout(120)  # a hang in the codec fails here rather than stalling the suite


def decode_or_refuse(body: bytes, header_length: str | None) -> InferRequest | None:
    """The decoded request, or None when it was refused with InvalidInput; anything else fails."""
    try:
        return decode_request(body, header_length, LIMITS)
    except InvalidInput as exc:
        assert exc.status_code == 400 and exc.message
        return None


def dumps(document) -> bytes:
    # json, not orjson: orjson refuses integers beyond 64 bits, and clients may send them.
    return json.dumps(document).encode()


def binary_request(datatype, array) -> tuple[dict, bytes]:
    chunk = bytes(binary_bytes(array, datatype))
    header = {"inputs": [{"name": "t", "datatype": datatype, "shape": list(array.shape),
                          "parameters": {"binary_data_size": len(chunk)}}]}
    return header, chunk


@CHECKS
@given(body=st.binary(max_size=256), header_length=st.none() | st.text(max_size=8) | st.integers(-5, 300).map(str))
def test_arbitrary_bytes(body, header_length):
    decode_or_refuse(body, header_length)


@CHECKS
@given(tensor=tensors(), declared=st.integers(-(2**70), 2**70) | st.integers(-3, 3), cut=st.integers(-8, 8))
def test_header_length_beyond_or_short_of_the_body(tensor, declared, cut):
    header, chunk = binary_request(*tensor)
    raw = dumps(header)
    body = raw + chunk
    body = body[:cut] if cut < 0 else body + b"\0" * cut
    length = len(raw) + declared if abs(declared) < 4 else declared
    request = decode_or_refuse(body, str(length))
    if request is not None:  # only a consistent framing decodes; JSON may end in whitespace,
        # so a header length that takes in binary bytes which happen to be spaces is one too
        assert length >= len(raw) and body[len(raw):length].strip(b" \t\r\n") == b""


@CHECKS
@given(tensor=tensors(), size=sizes, extra=st.binary(max_size=16))
def test_binary_data_size_that_lies(tensor, size, extra):
    header, chunk = binary_request(*tensor)
    honest = header["inputs"][0]["parameters"]["binary_data_size"]
    header["inputs"][0]["parameters"]["binary_data_size"] = size
    raw = dumps(header)
    request = decode_or_refuse(raw + chunk + extra, str(len(raw)))
    if request is not None:
        assert size == honest and extra == b""


@CHECKS
@given(items=st.lists(st.binary(max_size=8), min_size=1, max_size=6), data=st.data())
def test_bytes_elements_with_lying_length_prefixes(items, data):
    chunk = bytearray(b"".join(struct.pack("<I", len(item)) + item for item in items))
    # Overwrite one element's 4-byte length prefix with any 32-bit number.
    starts, position = [], 0
    for item in items:
        starts.append(position)
        position += 4 + len(item)
    start = data.draw(st.sampled_from(starts))
    struct.pack_into("<I", chunk, start, data.draw(st.integers(0, 2**32 - 1)))
    header = dumps({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [len(items)],
                                       "parameters": {"binary_data_size": len(chunk)}}]})
    request = decode_or_refuse(header + bytes(chunk), str(len(header)))
    if request is not None:
        decoded = request.inputs["t"].tolist()
        assert len(decoded) == len(items) and sum(4 + len(v) for v in decoded) == len(chunk)


@CHECKS
@given(field=st.sampled_from(["name", "datatype", "shape", "parameters", "data"]), value=junk, binary=st.booleans())
def test_any_field_of_a_tensor_header_replaced_with_junk(field, value, binary):
    tensor = {"name": "t", "datatype": "FP32", "shape": [1, 2]}
    tail = b""
    if binary:
        tensor["parameters"] = {"binary_data_size": 8}
        tail = b"\0" * 8
    else:
        tensor["data"] = [1.0, 2.0]
    tensor[field] = value
    raw = dumps({"inputs": [tensor]})
    decode_or_refuse(raw + tail, str(len(raw)) if binary else None)


@CHECKS
@given(shape=st.lists(dims, max_size=5), datatype=st.sampled_from(["FP32", "BYTES", "BOOL"]), binary=st.booleans())
def test_any_shape(shape, datatype, binary):
    # Zero-size shapes with enormous other sides pass the element limit (their product is 0).
    tensor = {"name": "t", "datatype": datatype, "shape": shape}
    if binary:
        tensor["parameters"] = {"binary_data_size": 0}
    else:
        tensor["data"] = []
    raw = dumps({"inputs": [tensor]})
    request = decode_or_refuse(raw, str(len(raw)) if binary else None)
    if request is not None:
        assert list(request.inputs["t"].shape) == shape and request.inputs["t"].size == 0


@pytest.mark.parametrize("shape", [[0, 2**63], [0, 2**64 - 1], [2**40, 2**40, 0], [0, 2**31, 2**31, 2**31]])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_zero_size_tensor_with_huge_sides_is_a_400(shape, binary):
    # Found by test_any_shape: numpy refused to build these and the error was a 500.
    tensor = {"name": "t", "datatype": "FP32", "shape": shape}
    tensor.update({"parameters": {"binary_data_size": 0}} if binary else {"data": []})
    raw = dumps({"inputs": [tensor]})
    with pytest.raises(InvalidInput, match="shape"):
        decode_request(raw, str(len(raw)) if binary else None, LIMITS)

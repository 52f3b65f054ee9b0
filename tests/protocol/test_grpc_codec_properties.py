"""The gRPC codec (service/grpc/codec.py) under Hypothesis: raw and typed contents of any
datatype and shape come out as they went in, bit for bit, and any bytes at all either decode or
are refused with a 4xx ServiceError, never anything else."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import ServiceError
from service.grpc.codec import CONTENTS_FIELD, decode_request, encode_response
from service.grpc.protocol import pb
from service.grpc.server import lenient_parser
from service.grpc.servicer import Malformed
from service.protocol.v2_codec import Limits, array_from_binary, binary_bytes
from tests.protocol.codec_strategies import tensors
from tests.protocol.test_v2_codec_properties import assert_same

LIMITS = Limits(max_tensor_elements=1_000_000, max_json_depth=64)
CHECKS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
parse = lenient_parser(pb.ModelInferRequest)


@CHECKS
@given(named=st.lists(tensors(finite=False), min_size=1, max_size=3))
def test_raw_contents_round_trip(named):
    request = pb.ModelInferRequest(model_name="m", id="r")
    arrays = {}
    for i, (datatype, array) in enumerate(named):
        request.inputs.add(name=f"t{i}", datatype=datatype, shape=list(array.shape))
        request.raw_input_contents.append(bytes(binary_bytes(array, datatype)))
        arrays[f"t{i}"] = array
    decoded = decode_request(parse(request.SerializeToString()), LIMITS)
    for name, array in arrays.items():
        assert_same(decoded.inputs[name], array)
    response = encode_response(pb.ModelInferResponse(), "m", "1", decoded.inputs, "r")
    for output, raw in zip(response.outputs, response.raw_output_contents):
        assert_same(array_from_binary(memoryview(raw), output.datatype, tuple(output.shape), output.name),
                    arrays[output.name])


@CHECKS
@given(tensor=tensors([d for d in CONTENTS_FIELD], finite=False))
def test_typed_contents_round_trip(tensor):
    datatype, array = tensor
    request = pb.ModelInferRequest(model_name="m")
    getattr(request.inputs.add(name="t", datatype=datatype, shape=list(array.shape)).contents,
            CONTENTS_FIELD[datatype]).extend(array.reshape(-1).tolist())
    assert_same(decode_request(parse(request.SerializeToString()), LIMITS).inputs["t"], array)


@CHECKS
@given(data=st.binary(max_size=256), shape=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4))
def test_any_bytes_decode_or_are_refused_with_a_4xx(data, shape):
    for message in (data, _with_shape(shape, data)):
        request = parse(message)
        if isinstance(request, Malformed):
            continue  # the servicer answers INVALID_ARGUMENT
        try:
            decoded = decode_request(request, LIMITS)
        except ServiceError as exc:
            assert exc.status_code < 500, exc
        else:
            assert all(math.prod(a.shape) <= LIMITS.max_tensor_elements for a in decoded.inputs.values())


def _with_shape(shape: list[int], raw: bytes) -> bytes:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="t", datatype="FP32", shape=shape)
    request.raw_input_contents.append(raw)
    return request.SerializeToString()

"""service/grpc/infer_wire.py against protobuf itself: ModelInfer's request read from its bytes
(split, a plan per header) must answer exactly what protobuf's parse and codec.decode_request
answer, for any bytes; the answer written on the wire must be protobuf's serialization, byte for
byte. A unit-level property test: the server tests (test_grpc_server.py) cover the doors."""

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.datatypes import V2_TO_NUMPY
from service.errors import InvalidInput
from service.grpc import codec, infer_wire
from service.grpc.protocol import pb
from service.protocol.v2_codec import Limits

LIMITS = Limits(max_tensor_elements=4096, max_json_depth=32)
DATATYPES = list(V2_TO_NUMPY)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def grpc_transport():
    """No server here: the reader is the same under both transports, so this module runs once."""
    return


# ------------------------------------------------------------------ the answer


def _array(datatype: str, shape: tuple, rng) -> np.ndarray:
    if datatype == "BYTES":
        items = [("é" * int(rng.integers(0, 3)) + str(i)).encode() for i in range(int(np.prod(shape)))]
        return np.array(items + [b""], dtype=object)[:-1].reshape(shape)
    if datatype == "BOOL":
        return rng.integers(0, 2, shape).astype(bool)
    return (rng.standard_normal(shape) * 100).astype(V2_TO_NUMPY[datatype])


@pytest.mark.parametrize("datatype", DATATYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 3), (2, 3), (1, 200)])
@pytest.mark.parametrize("request_id", ["", "req-1", "ïd-é-😀"])
def test_the_answer_is_protobufs_bytes(datatype, shape, request_id):
    rng = np.random.default_rng(zlib.crc32(repr((datatype, shape)).encode()))
    for _ in range(2):  # the second time the answer's header is the remembered one
        outputs = {"out": _array(datatype, shape, rng), "": _array("FP32", (2,), rng), "z": _array(datatype, shape, rng)}
        expected = codec.encode_response(pb.ModelInferResponse(), "model-é", "3", outputs, request_id)
        assert infer_wire.encode_response("model-é", "3", outputs, request_id) == expected.SerializeToString()


def test_no_outputs_and_a_big_shape_are_protobufs_bytes():
    outputs = {"big": np.zeros((1, 300, 2**20 // 300), np.uint8)}
    for name, version, found in (("m", "1", {}), ("m", "1", outputs), ("", "", outputs)):
        expected = codec.encode_response(pb.ModelInferResponse(), name, version, found, "x" * 200)
        assert infer_wire.encode_response(name, version, found, "x" * 200) == expected.SerializeToString()


# ------------------------------------------------------------------ the request


def _outcome_of_protobuf(data: bytes) -> tuple:
    """What ModelInfer answered before infer_wire: protobuf's parse, then decode_request."""
    try:
        message = pb.ModelInferRequest.FromString(data)
    except Exception as exc:  # noqa: BLE001  (protobuf's DecodeError)
        return ("refused", f"malformed protobuf: {str(exc) or type(exc).__name__}")
    head = (message.model_name, message.model_version, message.id)
    try:
        return head + _summary(codec.decode_request(message, LIMITS))
    except InvalidInput as exc:
        return head + ("refused", exc.message)


def _outcome_of_wire(data: bytes, plans: infer_wire.Plans) -> tuple:
    request = infer_wire.InferBytes(data)
    try:
        read = infer_wire.Read(request, plans)
    except InvalidInput as exc:
        return ("refused", exc.message)
    head = (read.model_name, read.model_version, read.id)
    assert (request.model_name, request.model_version) == head[:2]  # what the log line names
    try:
        return head + _summary(read.decode())
    except InvalidInput as exc:
        return head + ("refused", exc.message)


def _summary(decoded: codec.DecodedRequest) -> tuple:
    inputs = {
        name: (array.dtype.str, array.shape, array.tolist() if array.dtype == object else array.tobytes())
        for name, array in decoded.inputs.items()
    }
    return (inputs, decoded.datatypes, decoded.parameters, decoded.output_names)


def _fields(data: bytes) -> list[bytes]:
    """A well-formed message's top-level fields, each as its bytes (tag, length, payload)."""
    fields, pos = [], 0
    while pos < len(data):
        start = pos
        tag, pos = _read_varint(data, pos)
        wire = tag & 7
        if wire == 0:
            _, pos = _read_varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            length, pos = _read_varint(data, pos)
            pos += length
        fields.append(data[start:pos])
    return fields


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _raw_field(payload: bytes) -> bytes:
    return b"\x3a" + _varint(len(payload)) + payload


names = st.sampled_from(["input", "x", "y", "é", ""])
shapes = st.lists(st.integers(-1, 4), max_size=3) | st.just([2**40, 2**40])


def _raw_for(datatype: str, shape: list[int], draw) -> bytes:
    """Mostly raw contents of the right size, sometimes of any size."""
    if draw(st.integers(0, 4)) == 0 or any(d < 0 for d in shape) or np.prod(shape, dtype=object) > 64:
        return draw(st.binary(max_size=24))
    count = int(np.prod(shape))
    if datatype == "BYTES":
        return b"".join(len(item).to_bytes(4, "little") + item for item in draw(st.lists(
            st.binary(max_size=5), min_size=count, max_size=count)))
    itemsize = V2_TO_NUMPY.get(datatype, np.dtype(np.float32)).itemsize
    if datatype == "BOOL":
        return bytes(draw(st.lists(st.integers(0, 2), min_size=count, max_size=count)))
    return draw(st.binary(min_size=count * itemsize, max_size=count * itemsize))


@st.composite
def requests(draw) -> tuple[list[bytes], list[bytes]]:
    """(a ModelInferRequest's fields as protobuf writes them, possibly reordered, duplicated or
    joined by unknown ones; other raw contents for the same header)."""
    message = pb.ModelInferRequest(model_name=draw(st.sampled_from(["m", "identity_fp32", "é", ""])),
                                   model_version=draw(st.sampled_from(["", "1", "2"])),
                                   id=draw(st.text(max_size=6)))
    typed = draw(st.integers(0, 5)) == 0
    raws, others = [], []
    for _ in range(draw(st.integers(0, 3))):
        datatype = draw(st.sampled_from(DATATYPES + ["FLOAT"]))
        shape = draw(shapes)
        tensor = message.inputs.add(name=draw(names), datatype=datatype, shape=shape)
        if typed and draw(st.booleans()):
            tensor.contents.fp32_contents.extend(draw(st.lists(st.floats(width=32), max_size=4)))
        raws.append(_raw_for(datatype, shape, draw))
        others.append(_raw_for(datatype, shape, draw))
    if not typed or draw(st.booleans()):
        message.raw_input_contents.extend(raws[: draw(st.integers(0, len(raws) + 1))] if draw(st.integers(0, 5)) == 0
                                          else raws)
    for name in draw(st.lists(names, max_size=2)):
        message.outputs.add(name=name)
    for key, value in draw(st.dictionaries(st.sampled_from(["a", "b", "timeout"]), st.integers(-5, 5), max_size=2)).items():
        message.parameters[key].int64_param = value
    fields = _fields(message.SerializeToString())
    if draw(st.booleans()):  # protobuf reads fields in any order; a repeated field keeps its own
        fields = draw(st.permutations(fields))
    if draw(st.booleans()):  # a scalar given twice: the last one counts
        earlier = pb.ModelInferRequest(model_name="other", id=draw(st.text(max_size=3)), model_version="9")
        fields = _fields(earlier.SerializeToString()) + fields
    unknown = [
        b"\xf8\x06" + _varint(draw(st.integers(0, 2**64 - 1))),  # field 111, varint
        b"\x82\x07\x03abc",  # field 112, bytes
        b"\x8d\x07\x01\x02\x03\x04", b"\x91\x07" + bytes(8),  # fixed32, fixed64
        b"\x38\x05", b"\x18\x07",  # raw_input_contents and id with a varint's wire type: unknown to protobuf
        b"\xba\x80\x00\x01z",  # field 7 with a two-byte tag: still raw contents
    ]
    for extra in draw(st.lists(st.sampled_from(unknown), max_size=3)):
        fields.insert(draw(st.integers(0, len(fields))), extra)
    return fields, [_raw_field(raw) for raw in others]


def _with_raws(fields: list[bytes], raws: list[bytes]) -> bytes:
    """The same fields with the raw contents replaced, in their places, then any left over."""
    kept, left = [], list(raws)
    for field in fields:
        if field[:1] == b"\x3a":
            if left:
                kept.append(left.pop(0))
        else:
            kept.append(field)
    return b"".join(kept + left)


@SETTINGS
@given(requests(), st.integers(-1, 1))
def test_a_request_reads_as_protobuf_reads_it_again_and_again(request, change):
    fields, other_raws = request
    plans = infer_wire.Plans(LIMITS)
    data = b"".join(fields)
    expected = _outcome_of_protobuf(data)
    assert _outcome_of_wire(data, plans) == expected
    assert _outcome_of_wire(data, plans) == expected  # now from the header's plan, if it has one
    # The same header with new raw contents: some of the right sizes, some not; one more or fewer.
    other_raws = other_raws[:-1] if change < 0 else other_raws + other_raws[:change]
    again = _with_raws(fields, other_raws)
    assert _outcome_of_wire(again, plans) == _outcome_of_protobuf(again)


@SETTINGS
@given(st.binary(max_size=64))
def test_any_bytes_read_as_protobuf_reads_them(data):
    assert _outcome_of_wire(data, infer_wire.Plans(LIMITS)) == _outcome_of_protobuf(data)


def _known_header(plans) -> bytes:
    """A request whose header's plan `plans` now holds, as the last one read by its plan (the
    next request is first tried as that header and raw contents only); its header bytes."""
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="input", datatype="FP32", shape=[1, 2])
    data = message.SerializeToString()
    full = data + _raw_field(bytes(8))
    for _ in range(2):  # the first time builds its plan, the second reads by it
        assert _outcome_of_wire(full, plans) == _outcome_of_protobuf(full)
    assert plans.get(data) is not None and plans.last == (data, plans.get(data))
    return data


@SETTINGS
@given(st.binary(max_size=24), st.binary(max_size=24))
def test_any_bytes_after_a_known_header_read_as_protobuf_reads_them(tail, middle):
    plans = infer_wire.Plans(LIMITS)
    header = _known_header(plans)
    for data in (header + tail, header + _raw_field(bytes(8)) + tail, middle + header + tail):
        assert _outcome_of_wire(data, plans) == _outcome_of_protobuf(data)


@pytest.mark.parametrize("field", [
    b"\xba\x80\x80\x80\x80\x00" + b"\x08" + bytes(8),  # a six-byte tag for raw contents: malformed
    b"\xba\x80\x80\x80\x10\x08" + bytes(8),  # a tag over 32 bits whose low bits say raw contents
    b"\x9a\x80\x80\x80\x80\x00\x01a",  # a six-byte tag for the id
    b"\x1a\x02\xc3\x28",  # an id that is not UTF-8
    b"\x3a\x09" + bytes(8),  # raw contents cut short
])
def test_what_protobuf_refuses_after_a_known_header_is_refused(field):
    plans = infer_wire.Plans(LIMITS)
    data = _known_header(plans) + field
    expected = _outcome_of_protobuf(data)
    assert expected[0] == "refused" and expected[1].startswith("malformed protobuf")
    assert _outcome_of_wire(data, plans) == expected


def test_a_header_with_typed_contents_is_not_answered_from_raw_contents():
    plans = infer_wire.Plans(LIMITS)
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="input", datatype="FP32", shape=[2]).contents.fp32_contents.extend([1.0, 2.0])
    typed = message.SerializeToString()
    assert _outcome_of_wire(typed, plans) == _outcome_of_protobuf(typed)
    with_raw = typed + _raw_field(bytes(8))
    refused = _outcome_of_wire(with_raw, plans)
    assert refused == _outcome_of_protobuf(with_raw)
    assert refused[-1] == "input 'input' has contents, but the request sends raw_input_contents"


@pytest.mark.parametrize("tail", [
    _raw_field(bytes(8)) + b"\x1a\x04\xc3\xafd!",  # an id after the raw contents
    _raw_field(bytes(8)) * 2,  # one buffer more than inputs
    _raw_field(bytes(300)),  # a two-byte length, the wrong size
    _raw_field(bytes(8)) + b"\xf8\x06\x01",  # an unknown field after
    b"\xba\x80\x00\x08" + bytes(8),  # raw contents with a three-byte tag
    _raw_field(bytes(8))[:-1],  # cut short
    b"",
])
def test_the_last_header_then_anything_reads_as_protobuf_reads_it(tail):
    plans = infer_wire.Plans(LIMITS)
    data = _known_header(plans) + tail
    assert _outcome_of_wire(data, plans) == _outcome_of_protobuf(data)

"""ModelInferRequest / ModelInferResponse <-> numpy, with the limits and checks of the REST codec.

Inputs come as typed `contents` or as `raw_input_contents` (one buffer per input, in order,
little-endian; BYTES as 4-byte length-prefixed items, as in the binary extension). Outputs
always leave as `raw_output_contents`, as Triton sends them.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from service.datatypes import V2_TO_NUMPY, numpy_dtype, v2_datatype
from service.errors import InvalidInput
from service.grpc.protocol import pb
from service.protocol.v2_codec import Limits, array_from_binary, binary_bytes

MAX_DIMENSIONS = 32

# The typed field of InferTensorContents that holds each datatype (FP16 and BF16 have none:
# they travel only as raw contents).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


# Raw contents are little-endian whatever the host (numpy swaps on a big-endian one).
_LITTLE_ENDIAN = {datatype: dtype.newbyteorder("<") for datatype, dtype in V2_TO_NUMPY.items() if datatype != "BYTES"}


@dataclass
class DecodedRequest:
    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    parameters: dict = field(default_factory=dict)
    output_names: list[str] | None = None


def decode_request(request: pb.ModelInferRequest, limits: Limits) -> DecodedRequest:
    tensors = request.inputs
    raw = request.raw_input_contents
    if raw and len(raw) != len(tensors):
        raise InvalidInput(
            f"raw_input_contents holds {len(raw)} buffers but the request has {len(tensors)} inputs"
        )
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for position, tensor in enumerate(tensors):
        (name, datatype, shape), dtype, size = tensor_header(tensor, position, limits)
        if name in inputs:
            raise InvalidInput(f"input '{name}' is given more than once")
        if raw:
            if tensor.HasField("contents"):
                raise InvalidInput(f"input '{name}' has contents, but the request sends raw_input_contents")
            buffer = raw[position]
            if dtype is not None and len(buffer) == size:
                # A fixed-width datatype of the right size: a view of the message's own bytes
                # (read-only, as every decoded input is), copied only if misaligned (CPython's
                # bytes never are in practice).
                array = np.ndarray(shape, dtype, buffer)
                inputs[name] = array if array.flags.aligned else array.copy()
            else:  # BYTES, BOOL and BF16 are checked item by item; a wrong size is refused there
                inputs[name] = from_raw(buffer, datatype, shape, name)
        else:
            inputs[name] = _from_contents(tensor.contents, datatype, shape, name)
        datatypes[name] = datatype
    # Most requests name no outputs and send no parameters: skip building empty ones.
    output_names = [o.name for o in request.outputs] if len(request.outputs) else None
    return DecodedRequest(inputs, datatypes, parameters(request.parameters) if len(request.parameters) else {},
                          output_names)


# (name, datatype, shape) -> (the Limits they passed, plan): a client repeats the same tensor
# headers, and checking them again costs more than this lookup.
_CHECKED: dict[tuple, tuple] = {}
_CHECKED_SIZE = 1024
_ITEM_BY_ITEM = {"BYTES", "BOOL", "BF16"}  # raw contents that are not a plain little-endian array


def tensor_header(tensor, position: int, limits: Limits) -> tuple[tuple, np.dtype | None, int]:
    """((name, datatype, shape), the raw contents' dtype, their size in bytes); the dtype is
    None for a datatype whose raw contents are read item by item."""
    header = (tensor.name, tensor.datatype, tuple(tensor.shape))
    known = _CHECKED.get(header)
    if known is not None and known[0] is limits:
        return known[1]
    name, datatype, shape = header
    _check_header(name, datatype, shape, position, limits)
    dtype = None if datatype in _ITEM_BY_ITEM else _LITTLE_ENDIAN[datatype]
    plan = (header, dtype, 0 if dtype is None else math.prod(shape) * dtype.itemsize)
    if len(_CHECKED) >= _CHECKED_SIZE:
        _CHECKED.clear()
    _CHECKED[header] = (limits, plan)
    return plan


def _check_header(name: str, datatype: str, shape: tuple[int, ...], position: int, limits: Limits) -> None:
    if not name:
        raise InvalidInput(f"inputs[{position}]: 'name' must be a non-empty string")
    numpy_dtype(datatype)  # raises for an unknown datatype
    if any(d < 0 for d in shape):
        raise InvalidInput(f"input '{name}': shape {list(shape)} has a negative dimension")
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidInput(f"input '{name}': shape has {len(shape)} dimensions; at most {MAX_DIMENSIONS} are allowed")
    elements = math.prod(d or 1 for d in shape)  # a zero-size tensor's other sides count too
    if elements > limits.max_tensor_elements:
        raise InvalidInput(
            f"input '{name}': shape {list(shape)} spans {elements} elements, over the limit of "
            f"{limits.max_tensor_elements}"
        )


def from_raw(buffer: bytes, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    if datatype in ("BYTES", "BOOL", "BF16"):
        if datatype != "BYTES":
            _check_size(buffer, datatype, shape, name)
        return array_from_binary(memoryview(buffer), datatype, shape, name)
    dtype = _check_size(buffer, datatype, shape, name)
    # A view of the message's own bytes (read-only, as every decoded input is): no copy, unless
    # the bytes object's data is misaligned for the dtype (CPython's never is in practice).
    array = np.frombuffer(buffer, dtype=dtype).reshape(shape)
    return array if array.flags.aligned else array.copy()


def _check_size(buffer: bytes, datatype: str, shape: tuple[int, ...], name: str) -> np.dtype:
    dtype = _LITTLE_ENDIAN[datatype]
    needed = math.prod(shape) * dtype.itemsize
    if len(buffer) != needed:
        raise InvalidInput(
            f"input '{name}': raw content is {len(buffer)} bytes but shape {list(shape)} "
            f"of {datatype} needs {needed}"
        )
    return dtype


def _from_contents(contents, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    expected = math.prod(shape)
    field_name = CONTENTS_FIELD.get(datatype)
    if field_name is None:
        if expected == 0:
            return np.zeros(shape, dtype=numpy_dtype(datatype))
        raise InvalidInput(f"input '{name}' is {datatype}, which travels only in raw_input_contents")
    values = getattr(contents, field_name)
    if len(values) != expected:
        others = [f.name for f, v in contents.ListFields() if f.name != field_name and len(v)]
        hint = f" (it has {', '.join(others)}: a {datatype} input's go in {field_name})" if others else ""
        raise InvalidInput(
            f"input '{name}': {field_name} has {len(values)} elements but shape {list(shape)} needs {expected}{hint}"
        )
    if datatype == "BYTES":
        array = np.empty(expected, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    dtype = numpy_dtype(datatype)
    # int_contents and uint_contents are 32 bits wide: narrower types must be range-checked.
    if dtype.kind in "iu" and dtype.itemsize < 4 and expected:
        wide = np.asarray(values, dtype=np.int64)
        info = np.iinfo(dtype)
        if wide.min() < info.min or wide.max() > info.max:
            raise InvalidInput(f"input '{name}': a value lies outside the range of {datatype}")
    return np.asarray(values, dtype=dtype).reshape(shape)


def parameters(entries) -> dict:
    """An InferParameter map as plain Python values."""
    found = {}
    for key, value in entries.items():
        kind = value.WhichOneof(value.DESCRIPTOR.oneofs[0].name)
        found[key] = getattr(value, kind) if kind else None
    return found


def set_parameter(entries, key: str, value) -> None:
    target = entries[key]
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int):
        target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    else:
        target.string_param = str(value)


def encode_response(
    response: pb.ModelInferResponse, model_name: str, model_version: str, outputs: dict[str, np.ndarray],
    request_id: str = "",
) -> pb.ModelInferResponse:
    """Fill `response` with the outputs as raw contents."""
    response.model_name = model_name
    response.model_version = model_version
    response.id = request_id
    for name, array in outputs.items():
        datatype = v2_datatype(array.dtype)
        response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        response.raw_output_contents.append(raw_contents(array, datatype))
    return response


def raw_contents(array: np.ndarray, datatype: str) -> bytes:
    """An output's raw contents: BYTES length-prefixed, any other datatype little-endian and
    row-major, in one copy straight from the array's buffer."""
    if datatype == "BYTES":
        return binary_bytes(array, datatype)
    return array.astype(_LITTLE_ENDIAN[datatype], copy=False).tobytes()

"""Open Inference Protocol (V2) request and response bodies <-> numpy, JSON and binary extension.

JSON tensor data goes straight from orjson into numpy (no per-element pydantic); the binary
tensor data extension reads inputs as views of the request body and writes outputs once into
the response body. Limits are checked before anything is allocated from a client's numbers.
"""

import functools
import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np
import orjson

from service.datatypes import (
    BF16,
    FLOAT_TYPES,
    INTEGER_TYPES,
    V2_TO_NUMPY,
    numpy_dtype,
    v2_datatype,
)
from service.errors import InvalidInput
from service.json_encoding import float_array

HEADER_LENGTH = "inference-header-content-length"
_COUNTED_BYTES = 4096  # the largest body whose brackets are counted to skip the depth walk


@dataclass(frozen=True)
class Limits:
    max_tensor_elements: int
    max_json_depth: int


@dataclass
class InferRequest:
    inputs: dict[str, np.ndarray]
    datatypes: dict[str, str]
    id: str | None = None
    parameters: dict = field(default_factory=dict)
    output_names: list[str] | None = None
    binary_outputs: set[str] = field(default_factory=set)
    binary_by_default: bool = False

    def wants_binary(self, name: str) -> bool:
        return name in self.binary_outputs or self.binary_by_default


# ---------------------------------------------------------------------------- requests


def decode_request(body: bytes | memoryview, header_length: str | None, limits: Limits) -> InferRequest:
    """Parse an infer request body; `header_length` is the Inference-Header-Content-Length value."""
    json_end = len(body)
    if header_length is not None:
        try:
            json_end = int(header_length)
        except ValueError:
            raise InvalidInput(f"Inference-Header-Content-Length must be an integer, not '{header_length[:40]}'") from None
        if not 0 <= json_end <= len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length is {json_end} but the body has {len(body)} bytes"
            )
        if json_end <= _COUNTED_BYTES:
            return _decode_binary(bytes(body[:json_end]), memoryview(body)[json_end:], limits)
    document = _UNREAD
    if header_length is None and type(body) is bytes:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # parse_json below reads what orjson refuses (NaN...) or says what is wrong
        else:
            if type(document) is dict:
                simple = _simple_request(document, limits)
                if simple is not None:
                    return simple
    # No document nests deeper than it has '[' and '{' (strings' included): when those are
    # within the limit, the walk that checks the depth is skipped (a 1-row request has 5).
    # Counted in small bodies only: counting costs about 0.6 µs a KiB, more than the walk of a
    # large body, whose nested data has more brackets than any limit anyway.
    small = json_end == len(body) <= _COUNTED_BYTES and isinstance(body, bytes)
    opens = body.count(b"[") + body.count(b"{") if small else None
    check_depth = opens is None or opens > limits.max_json_depth
    if document is _UNREAD:
        document = parse_json(memoryview(body)[:json_end], limits.max_json_depth, skip_key="data",
                              check_depth=check_depth)
    elif check_depth:  # read above: what parse_json would have checked
        _check_depth(document, limits.max_json_depth, "data")
    if not isinstance(document, dict):
        raise InvalidInput("the request body must be a JSON object")
    binary = memoryview(body)[json_end:]
    return _request_from_document(document, binary, limits)


class _BinaryPlan:
    """What a binary-extension header says once it has been read and checked: where each input
    lies in the binary part and what else the request asked. Clients send the same header with
    every request of a shape (tritonclient, perf_analyzer), so the next such request needs no
    JSON parse and no checks of the header again, only its tensors read from its own bytes."""

    __slots__ = ("binary_by_default", "binary_outputs", "datatypes", "id", "inputs", "limits", "output_names",
                 "parameters", "size")

    def __init__(self, document: dict, request: InferRequest, limits: Limits):
        self.limits = limits  # what it was checked against
        self.inputs, offset = [], 0
        for raw in document["inputs"]:
            name, size = raw["name"], raw["parameters"]["binary_data_size"]
            self.inputs.append((name, request.datatypes[name], request.inputs[name].shape, offset, offset + size))
            offset += size
        self.size = offset
        self.datatypes, self.id, self.parameters = request.datatypes, request.id, request.parameters
        self.output_names, self.binary_outputs = request.output_names, request.binary_outputs
        self.binary_by_default = request.binary_by_default

    def request(self, binary: memoryview) -> InferRequest:
        # array_from_binary checks each tensor's own bytes (BYTES lengths, alignment) every time.
        inputs = {name: array_from_binary(binary[start:end], datatype, shape, name)
                  for name, datatype, shape, start, end in self.inputs}
        names = None if self.output_names is None else list(self.output_names)
        return InferRequest(inputs, dict(self.datatypes), self.id, dict(self.parameters), names,
                            set(self.binary_outputs), self.binary_by_default)


_plans: dict[bytes, _BinaryPlan] = {}
_MAX_PLANS = 64  # distinct headers remembered; the oldest goes first


def _decode_binary(header: bytes, binary: memoryview, limits: Limits) -> InferRequest:
    """A request with the binary extension whose JSON header is `header`."""
    plan = _plans.get(header)
    # A size mismatch takes the full path, and its error; so do other limits (another app's).
    if plan is not None and plan.size == len(binary) and (plan.limits is limits or plan.limits == limits):
        return plan.request(binary)
    opens = header.count(b"[") + header.count(b"{")  # as decode_request's small bodies
    document = parse_json(header, limits.max_json_depth, skip_key="data", check_depth=opens > limits.max_json_depth)
    if not isinstance(document, dict):
        raise InvalidInput("the request body must be a JSON object")
    request = _request_from_document(document, binary, limits)
    if request.inputs and all("data" not in raw for raw in document["inputs"]):  # JSON data is read anew each time
        if len(_plans) >= _MAX_PLANS:
            del _plans[next(iter(_plans))]
        _plans[header] = _BinaryPlan(document, request, limits)
    return request
_UNREAD = object()

# The request most clients send: {"inputs": [{"name", "shape", "datatype", "data"}, ...]} (and
# perhaps an "id"), float tensors whose data is a flat list of numbers. It is read with a few
# exact type checks and one numpy conversion; any other request, and any value these checks are
# not sure of, takes the general path (_request_from_document), which answers every error with
# its message. Measured (bench/profile_infer.py): a third of the general path's cost.
_SIMPLE_TYPES = {"FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64)}
_SIMPLE_DEPTH = 4  # the document, its inputs, an input, its shape (`data` is left to numpy)
# Values whose Euclidean norm is below this are each under float32's largest (3.4e38): their
# cast cannot overflow. math.hypot scales as it goes (no overflow, no warning) and costs less
# than np.errstate (2 µs) for the few values of a row; a long tensor is cast under np.errstate.
_FP32_SAFE = 1e38
_HYPOT_MOST = 256
_DIRECT_BELOW = float(2**53)  # a norm below: every value fits float32 and every int is exact in a double


def _simple_request(document: dict, limits: Limits) -> InferRequest | None:
    """The request of a simple document, or None: read it with _request_from_document."""
    raw_inputs = document.get("inputs")
    if type(raw_inputs) is not list or not raw_inputs or limits.max_json_depth < _SIMPLE_DEPTH:
        return None
    request_id = None
    if len(document) != 1:
        request_id = document.get("id")
        if len(document) != 2 or type(request_id) is not str:
            return None
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    for raw in raw_inputs:
        if type(raw) is not dict or len(raw) != 4:  # name, shape, datatype, data: nothing else
            return None
        name, datatype, shape, data = raw.get("name"), raw.get("datatype"), raw.get("shape"), raw.get("data")
        if type(name) is not str or not name or name in inputs or type(datatype) is not str:
            return None
        dtype = _SIMPLE_TYPES.get(datatype)
        if dtype is None or type(shape) is not list or type(data) is not list or len(shape) > 32:
            return None
        expected = 1
        for dimension in shape:
            if type(dimension) is not int or dimension < 1:
                return None
            expected *= dimension
        if expected > limits.max_tensor_elements or len(data) != expected:
            return None
        if expected <= _HYPOT_MOST and type(data[0]) is not bool:
            # One conversion straight to the datatype (half the cost of inferring a dtype and
            # casting). math.hypot takes only numbers, so a str, None or a list among them is a
            # TypeError. It takes bools too, as the general path does among numbers (True is
            # 1): only data of bools alone is refused there, and this data does not start with
            # one. Below 2**53 every int converts exactly through a double, as it does there.
            try:
                norm = math.hypot(*data)
            except (TypeError, OverflowError):
                return None
            if not norm < _DIRECT_BELOW:
                return None  # large values: the general path checks their range and converts them
            inputs[name] = np.array(data, dtype=dtype).reshape(shape)
            datatypes[name] = datatype
            continue
        if type(data[0]) is not bool:
            # A long tensor (a 64-row batch: 4,096 values) converted straight to its datatype,
            # a fifth less than inferring a dtype and casting (bench/inprocess.py json64). numpy
            # would parse a str ("1.5") and take None as NaN, so the values are checked to be
            # numbers first: sum() is the cheapest loop that raises TypeError on anything else.
            # A float sum means at least one float among them, so numpy converts each value as
            # the general path's float64 array does (an int beyond 2**53 in a list of ints alone
            # is cast there from int64, to the nearest float32: that list takes the general path).
            try:
                if type(sum(data)) is not float:
                    return None
                with np.errstate(over="raise"):  # a value past float32's range: the general path tells
                    inputs[name] = np.array(data, dtype=dtype).reshape(shape)
            except (TypeError, OverflowError, FloatingPointError):
                return None
            datatypes[name] = datatype
            continue
        try:
            inferred = np.asarray(data)
        except (ValueError, TypeError):
            return None
        kind = inferred.dtype.kind
        if inferred.ndim != 1 or kind not in "iuf":  # nested, text, booleans, objects
            return None
        if kind == "f" and datatype == "FP32":
            if expected <= _HYPOT_MOST:
                if not math.hypot(*data) < _FP32_SAFE:
                    return None  # perhaps out of float32's range: the general path tells
            else:
                try:
                    with np.errstate(over="raise"):
                        inputs[name] = inferred.astype(dtype).reshape(shape)
                except FloatingPointError:
                    return None
                datatypes[name] = datatype
                continue
        inputs[name] = inferred.astype(dtype, copy=False).reshape(shape)
        datatypes[name] = datatype
    return InferRequest(inputs, datatypes, request_id)


def parse_json(raw: bytes | memoryview, max_depth: int, skip_key: str | None = None, check_depth: bool = True):
    """A JSON document; an empty body is {}, as Triton reads it. `check_depth=False`: the caller
    knows the document cannot nest deeper than `max_depth`."""
    if len(raw) == 0:
        return {}
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        document = _with_non_finite(raw, exc)
    if check_depth:
        _check_depth(document, max_depth, skip_key)
    return document


def _with_non_finite(raw: bytes | memoryview, error: orjson.JSONDecodeError):
    """orjson refuses NaN, Infinity and -Infinity, which Triton writes and reads: a body that
    holds one of them is read with Python's json, held to what orjson would check besides."""
    data = bytes(raw)
    if b"NaN" not in data and b"Infinity" not in data:
        raise InvalidInput(f"malformed JSON: {error}") from None
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput(f"malformed JSON: {error}") from None
    except RecursionError:
        raise InvalidInput("JSON nests too deep to read") from None
    _check_text(document)
    return document


def _check_text(document) -> None:
    # Python's json takes "\ud800" (a lone surrogate) into a str that cannot be encoded; orjson
    # refuses it, and so do we.
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput("malformed JSON: str is not valid UTF-8: surrogates not allowed") from None


def _check_depth(document, max_depth: int, skip_key: str | None) -> None:
    # Tensor `data` is left to numpy, whose arrays cannot nest deeper than 64 anyway.
    # Level by level, with plain loops: a generator per container was a measurable share of a
    # 1-row request (bench/profile.py).
    level, depth = [document], 1
    while level:
        if depth > max_depth:
            raise InvalidInput(f"JSON nests deeper than {max_depth} levels")
        below = []
        for node in level:
            if type(node) is dict:
                for key, value in node.items():
                    if key != skip_key and isinstance(value, (dict, list)):
                        below.append(value)
            elif type(node) is list:
                for value in node:
                    if isinstance(value, (dict, list)):
                        below.append(value)
        level, depth = below, depth + 1


def _request_from_document(document: dict, binary: memoryview, limits: Limits) -> InferRequest:
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    parameters = _parameters(document, "request")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list):
        raise InvalidInput("'inputs' must be a list of tensors")
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    for position, raw in enumerate(raw_inputs):
        name, datatype, shape = _tensor_header(raw, f"inputs[{position}]", limits)
        if name in inputs:
            raise InvalidInput(f"input '{name}' is given more than once")
        params = _parameters(raw, f"input '{name}'")
        if "binary_data_size" in params:
            size = params["binary_data_size"]
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(f"input '{name}': binary_data_size must be a non-negative integer")
            if "data" in raw:
                raise InvalidInput(f"input '{name}' has both binary_data_size and data")
            if offset + size > len(binary):
                raise InvalidInput(
                    f"input '{name}': binary_data_size {size} overruns the {len(binary) - offset} "
                    "bytes of binary data left in the body"
                )
            inputs[name] = array_from_binary(binary[offset : offset + size], datatype, shape, name)
            offset += size
        else:
            if "data" not in raw:
                raise InvalidInput(f"input '{name}' has neither 'data' nor binary_data_size")
            inputs[name] = array_from_json(raw["data"], datatype, shape, name)
        datatypes[name] = datatype
    if offset != len(binary):
        raise InvalidInput(
            f"the body has {len(binary) - offset} bytes of binary data that no input claims"
        )
    names, binary_outputs = _requested_outputs(document.get("outputs"))
    binary_by_default = parameters.get("binary_data_output") is True
    return InferRequest(inputs, datatypes, request_id, parameters, names, binary_outputs, binary_by_default)


def _parameters(holder: dict, what: str) -> dict:
    params = holder.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidInput(f"{what}: 'parameters' must be an object")
    return params


def _tensor_header(raw, where: str, limits: Limits) -> tuple[str, str, tuple[int, ...]]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be an object with name, shape, datatype and data")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}: 'name' must be a non-empty string")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise InvalidInput(f"input '{name}': 'datatype' must be a string such as \"FP32\"")
    numpy_dtype(datatype)  # raises for an unknown datatype
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InvalidInput(f"input '{name}': 'shape' must be a list of integers")
    if any(d < 0 for d in shape):
        raise InvalidInput(f"input '{name}': shape {shape} has a negative dimension")
    if len(shape) > 32:
        raise InvalidInput(f"input '{name}': shape has {len(shape)} dimensions; at most 32 are allowed")
    # A zero-size tensor's other sides count too: numpy cannot build (0, 2**63) at all.
    elements = math.prod(d or 1 for d in shape)
    if elements > limits.max_tensor_elements:
        raise InvalidInput(
            f"input '{name}': shape {shape} spans {elements} elements, over the limit of "
            f"{limits.max_tensor_elements}"
        )
    return name, datatype, tuple(shape)


def _requested_outputs(raw) -> tuple[list[str] | None, set[str]]:
    if raw is None:
        return None, set()
    if not isinstance(raw, list):
        raise InvalidInput("'outputs' must be a list of {\"name\": ...} objects")
    names, binary = [], set()
    for position, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"outputs[{position}] must be an object with a string 'name'")
        names.append(item["name"])
        params = _parameters(item, f"output '{item['name']}'")
        if params.get("binary_data") is True:
            binary.add(item["name"])
    return names, binary


def array_from_json(data, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A tensor from JSON `data`, flat or nested, checked against its declared shape."""
    expected = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_from_json(data, shape, expected, name)
    if datatype == "BF16":
        # Triton's rule: a JSON number would have to be rounded to 8 bits of mantissa, silently.
        raise InvalidInput(f"input '{name}' is BF16, which travels only as binary data "
                           "(the binary tensor data extension: parameters.binary_data_size)")
    if not isinstance(data, list):
        data = [data]  # a scalar written bare
    try:
        inferred = np.asarray(data)
    except (ValueError, TypeError):
        raise InvalidInput(f"input '{name}': data is ragged or holds non-numbers") from None
    if inferred.size != expected:
        raise InvalidInput(
            f"input '{name}': data has {inferred.size} elements but shape {list(shape)} needs {expected}"
        )
    if expected == 0:
        return np.zeros(shape, dtype=numpy_dtype(datatype))
    if datatype in INTEGER_TYPES:
        converted = _integers(data, inferred, datatype, name)
    elif datatype in FLOAT_TYPES:
        if inferred.dtype.kind not in "iuf":
            raise InvalidInput(f"input '{name}' is {datatype}, so its data must be numbers")
        try:
            with np.errstate(over="raise"):
                converted = inferred.astype(numpy_dtype(datatype), copy=False)
        except FloatingPointError:
            raise InvalidInput(f"input '{name}': a value lies outside the range of {datatype}") from None
    else:  # BOOL
        if inferred.dtype.kind != "b":
            raise InvalidInput(f"input '{name}' is BOOL, so its data must be true or false")
        converted = inferred
    return converted.reshape(shape)


def _integers(data: list, inferred: np.ndarray, datatype: str, name: str) -> np.ndarray:
    # numpy infers float64 for integers beyond int64, so convert from the JSON values
    # themselves (exact, and range-checked by numpy), then make sure none was fractional.
    if inferred.dtype.kind not in "iuf":
        raise InvalidInput(f"input '{name}' is {datatype}, so its data must be integers")
    try:
        converted = np.asarray(data, dtype=numpy_dtype(datatype))
    except OverflowError:
        raise InvalidInput(f"input '{name}': a value lies outside the range of {datatype}") from None
    except (ValueError, TypeError):
        raise InvalidInput(f"input '{name}' is {datatype}, so its data must be integers") from None
    if inferred.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            if not np.array_equal(converted.reshape(inferred.shape), inferred):
                raise InvalidInput(f"input '{name}' is {datatype}, so its data must be integers")
    return converted


def _bytes_from_json(data, shape, expected: int, name: str) -> np.ndarray:
    flat: list[bytes] = []
    stack = [data]  # explicit stack: nesting is bounded by the body, not by Python's recursion
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, str):
            flat.append(node.encode("utf-8"))
            if len(flat) > expected:
                break
        else:
            raise InvalidInput(f"input '{name}' is BYTES, so its data must be strings")
    if len(flat) != expected or stack:
        raise InvalidInput(
            f"input '{name}': data does not have the {expected} elements shape {list(shape)} needs"
        )
    array = np.empty(expected, dtype=object)
    array[:] = flat
    return array.reshape(shape)


def array_from_binary(buffer: memoryview, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A tensor from its bytes in the body: a view, copied only when misaligned."""
    expected = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_from_binary(buffer, shape, expected, name)
    dtype = numpy_dtype(datatype)
    if len(buffer) != expected * dtype.itemsize:
        raise InvalidInput(
            f"input '{name}': binary_data_size is {len(buffer)} bytes but shape {list(shape)} "
            f"of {datatype} needs {expected * dtype.itemsize}"
        )
    if datatype == "BOOL":
        return np.frombuffer(buffer, dtype=np.uint8).astype(bool).reshape(shape)
    if datatype == "BF16":  # 2-byte patterns, little-endian like every other type
        array = np.frombuffer(buffer, dtype="<u2").reshape(shape)
        return (array if array.flags.aligned else array.copy()).view(BF16)
    array = np.frombuffer(buffer, dtype=dtype.newbyteorder("<")).reshape(shape)
    if not array.flags.aligned or array.dtype.byteorder == ">":
        array = array.astype(dtype)
    return array


def _bytes_from_binary(buffer: memoryview, shape, expected: int, name: str) -> np.ndarray:
    items: list[bytes] = []
    position, end = 0, len(buffer)
    while position < end:
        if position + 4 > end:
            raise InvalidInput(f"input '{name}': BYTES element length prefix is cut off")
        (length,) = struct.unpack_from("<I", buffer, position)
        position += 4
        if position + length > end:
            raise InvalidInput(f"input '{name}': BYTES element of {length} bytes overruns the tensor's data")
        items.append(bytes(buffer[position : position + length]))
        position += length
        if len(items) > expected:
            break
    if len(items) != expected:
        raise InvalidInput(f"input '{name}': binary data holds {len(items)} BYTES elements but shape {list(shape)} needs {expected}")
    array = np.empty(expected, dtype=object)
    array[:] = items
    return array.reshape(shape)


# ---------------------------------------------------------------------------- responses


def encode_response(
    model_name: str,
    model_version: str,
    outputs: dict[str, np.ndarray],
    request: InferRequest,
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: JSON, or JSON followed by binary outputs."""
    if not request.binary_outputs and not request.binary_by_default:
        body = _plain_json(model_name, model_version, outputs, request.id)
        if body is not None:
            return body, {"content-type": "application/json"}
    key = _binary_key(model_name, model_version, outputs, request)
    if key is not None:
        known = _binary_heads.get(key)
        if known is not None:
            header, headers = known
            return b"".join([header, *[binary_bytes(array, "") for array in outputs.values()]]), headers
    tensors, chunks = [], []
    for name, array in outputs.items():
        datatype = v2_datatype(array.dtype)
        tensor = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if request.wants_binary(name):
            raw = binary_bytes(array, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = json_data(array, datatype, name)
        tensors.append(tensor)
    document = {"model_name": model_name, "model_version": model_version, "outputs": tensors}
    if request.id is not None:
        document["id"] = request.id
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, {"content-type": "application/json"}
    headers = {"content-type": "application/octet-stream", "inference-header-content-length": str(len(header))}
    if key is not None:
        if len(_binary_heads) >= _MAX_BINARY_HEADS:
            del _binary_heads[next(iter(_binary_heads))]
        _binary_heads[key] = (header, headers)
    return b"".join([header, *chunks]), headers


# The JSON header of an answer whose every output goes as binary data depends only on the
# model, the outputs' names, datatypes and shapes: remembered, so a repeat of the same shapes
# (a client's next request) builds no document and calls no orjson. The headers dict is the
# same object each time too (service.http_infer keeps its bytes by identity).
_binary_heads: dict[tuple, tuple[bytes, dict[str, str]]] = {}
_MAX_BINARY_HEADS = 64


def _binary_key(model_name: str, model_version: str, outputs: dict[str, np.ndarray], request: InferRequest) -> tuple | None:
    """The key of an answer whose header can be remembered, or None: an `id` (most clients
    that send one send a new one each time), or an output that is not a plain numeric tensor in
    native byte order (BYTES, BF16) or not asked for as binary."""
    if request.id is not None:
        return None
    key = [model_name, model_version]
    for name, array in outputs.items():
        # A dtype of another byte order is not among the keys: it compares unequal.
        if array.dtype not in _PLAIN_DATATYPES or not (request.binary_by_default or name in request.binary_outputs):
            return None
        key.append((name, array.dtype, array.shape))
    return tuple(key)


# Numeric outputs that orjson writes straight from the array, as the document below would have
# them. Their response is put together from cached pieces around each array's own JSON text:
# the same bytes as orjson.dumps(document), without building the document (measured: half the
# cost of encoding a 1-row answer).
_PLAIN_DATATYPES = {
    dtype: orjson.dumps(datatype)
    for datatype, dtype in V2_TO_NUMPY.items()
    if datatype not in ("BYTES", "BF16")
}


@functools.lru_cache(maxsize=256)
def _response_head(model_name: str, model_version: str) -> bytes:
    return b'{"model_name":%s,"model_version":%s,"outputs":[' % (orjson.dumps(model_name), orjson.dumps(model_version))


@functools.lru_cache(maxsize=1024)
def _tensor_head(name: str, datatype: bytes) -> bytes:
    return b'{"name":%s,"datatype":%s,"shape":' % (orjson.dumps(name), datatype)


def _plain_json(model_name: str, model_version: str, outputs: dict[str, np.ndarray], request_id: str | None) -> bytes | None:
    """encode_response's JSON body when every output is a finite numeric array, else None."""
    parts = []
    for name, array in outputs.items():
        shape = array.shape
        key = (name, array.dtype, shape)
        head = _output_heads.get(key)
        if head is None:
            datatype = _PLAIN_DATATYPES.get(array.dtype)
            if datatype is None:
                return None
            head = b'%s%s,"data":' % (_tensor_head(name, datatype), orjson.dumps(shape))
            if len(_output_heads) >= _MAX_OUTPUT_HEADS:
                del _output_heads[next(iter(_output_heads))]
            _output_heads[key] = head
        if len(shape) == 2 and shape[0] == 1 and array.flags.c_contiguous:
            # One row: its nested JSON is the flat one in one more pair of brackets.
            data = orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
        else:
            data = orjson.dumps(np.ascontiguousarray(array).reshape(-1), option=orjson.OPT_SERIALIZE_NUMPY)
        if b"n" in data:  # `null`, a non-finite float (no number has an n): json_data spells it as Triton does
            return None
        parts.append(head + data)
    close = b"}]" if parts else b"]"  # the last tensor's brace (the others' come with the join)
    tail = close + b"}" if request_id is None else b'%s,"id":%s}' % (close, orjson.dumps(request_id))
    return _response_head(model_name, model_version) + b"},".join(parts) + tail


# An output's `{"name":...,"datatype":...,"shape":[...],"data":` by its name, dtype and shape:
# the same few for a model's answers (shapes come from clients: a bounded number kept).
_output_heads: dict[tuple, bytes] = {}
_MAX_OUTPUT_HEADS = 1024


def json_data(array: np.ndarray, datatype: str, name: str):
    if datatype == "BYTES":
        try:
            return [_as_bytes(v).decode("utf-8") for v in array.reshape(-1)]
        except UnicodeDecodeError:
            raise InvalidInput(
                f"output '{name}' holds bytes that are not UTF-8; ask for it with binary_data"
            ) from None
    if datatype == "BF16":  # asked for as JSON: its exact value as a float32
        array = array.astype(np.float32)
    # NaN and +-Infinity as Triton writes them; orjson alone would write null.
    return float_array(np.ascontiguousarray(array).reshape(-1))


def binary_bytes(array: np.ndarray, datatype: str) -> bytes | memoryview:
    if datatype == "BYTES":
        parts = []
        for value in array.reshape(-1):
            value = _as_bytes(value)
            parts.append(struct.pack("<I", len(value)))
            parts.append(value)
        return b"".join(parts)
    if datatype == "BF16":  # Python's buffers know no bfloat16: hand over its bit patterns
        array = array.view(np.uint16)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    if array.nbytes <= _COPIED_BYTES:
        return array.tobytes()  # C order whatever the layout; a copy, cheaper than a memoryview's setup
    return memoryview(np.ascontiguousarray(array).reshape(-1)).cast("B")


_COPIED_BYTES = 1 << 16  # outputs up to this size are copied out; larger ones are handed over as a view


def _as_bytes(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")

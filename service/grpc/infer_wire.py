"""ModelInfer's request and answer read and written on the wire, without protobuf objects.

A client repeats the same request header (model, inputs' names, datatypes and shapes, outputs,
parameters) with new raw contents, as an HTTP client repeats a binary body's JSON header. So a
ModelInferRequest is split into its raw_input_contents (views of the message), its `id`, and the
bytes of every other field, the key to the request's checked plan, built the first time by
protobuf and codec.decode_request. The answer's header (model, version, outputs) is serialized
once per (model, version, outputs' names, datatypes and shapes) and the raw contents spliced in
with their length prefixes. The protobuf wire format (protobuf.dev/programming-guides/encoding)
is stable; tests compare both ends byte for byte with protobuf's own.
"""

import struct
from dataclasses import dataclass

import numpy as np

from service.datatypes import v2_datatype
from service.errors import InvalidInput
from service.grpc.codec import (
    DecodedRequest,
    decode_request,
    from_raw,
    parameters,
    raw_contents,
    tensor_header,
)
from service.grpc.protocol import pb
from service.protocol.v2_codec import Limits

# ModelInferRequest's field numbers: id (string), raw_input_contents (repeated bytes).
_ID, _RAW = 3, 7
_LENGTH_DELIMITED = 2
_PLANS = 256  # request headers remembered per servicer
_KEY_BYTES = 4096  # a longer header (parameters, unknown fields) is read by protobuf every time
_HEADS = 256  # answer headers remembered


class InferBytes:
    """ModelInfer's request as it came: its bytes, read in the servicer (on the loop, after the
    call's key checks). `model_name` and `model_version` are known once it is read (for the log)."""

    __slots__ = ("data", "model_name", "model_version")

    def __init__(self, data):
        self.data = data
        self.model_name = self.model_version = ""


def split(data) -> tuple[bytes, list[memoryview], str] | None:
    """(every field but id and raw_input_contents, in order: the header's key; the raw contents as
    views; the id), or None for bytes this reader leaves to protobuf (a malformed message, a
    group, an id that is not UTF-8)."""
    view = memoryview(data)
    end = len(view)
    pos = run = 0  # `run`: where the current stretch of header fields began
    pieces: list[memoryview] = []
    raws: list[memoryview] = []
    request_id = ""
    while pos < end:
        start = pos
        tag = view[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint(view, start)
            # protobuf refuses a tag of more than five bytes or 32 bits, even one that names a
            # field this reader would take out of the key (an id or raw contents after a header
            # whose plan is known would otherwise be answered where protobuf says malformed).
            if tag is None or pos - start > 5 or tag > 0xFFFFFFFF:
                return None
        wire, number = tag & 7, tag >> 3
        if wire == _LENGTH_DELIMITED:
            length = view[pos] if pos < end else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(view, pos)
                if length is None:
                    return None
            stop = pos + length
            if stop > end:
                return None
            if number == _RAW or number == _ID:
                if run < start:
                    pieces.append(view[run:start])
                run = stop
                if number == _RAW:
                    raws.append(view[pos:stop])
                else:
                    try:
                        request_id = str(view[pos:stop], "utf-8")
                    except UnicodeDecodeError:
                        return None
            pos = stop
        elif wire == 0:
            value, pos = _varint(view, pos)
            if value is None:
                return None
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:  # groups (3, 4) and the undefined 6, 7: protobuf says what they are
            return None
        if number == 0 or pos > end:
            return None
    if run < end:
        pieces.append(view[run:end])
    return b"".join(pieces), raws, request_id


def raws_after(data, key: bytes, count: int) -> list[memoryview] | None:
    """When `data` is `key` (a header split() gave) followed by exactly `count` raw contents,
    each with its one-byte tag, and nothing else: those raw contents as views, as split() would
    give them with that same key and no id. Else None (then split() reads it)."""
    n = len(key)
    end = len(data)
    if end <= n or data[n] != 0x3A:
        return None
    view = memoryview(data)
    if view[:n] != key:
        return None
    raws: list[memoryview] = []
    pos = n
    while pos < end:
        if view[pos] != 0x3A or len(raws) == count:
            return None
        length = view[pos + 1] if pos + 1 < end else 0x80
        if length < 0x80:
            pos += 2
        else:
            length, pos = _varint(view, pos + 1)
            if length is None:
                return None
        stop = pos + length
        if stop > end:
            return None
        raws.append(view[pos:stop])
        pos = stop
    return raws if len(raws) == count else None


def _varint(view: memoryview, pos: int) -> tuple[int | None, int]:
    """A base-128 varint at `pos`: (value, the position after it), or (None, pos) if cut short
    or longer than ten bytes."""
    value = shift = 0
    end = min(len(view), pos + 10)
    while pos < end:
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    return None, pos


@dataclass(frozen=True, slots=True)
class Plan:
    """A request header's reading, checked: what ModelInfer needs besides the raw contents."""

    model_name: str
    model_version: str
    tensors: tuple  # ((name, datatype, shape), dtype or None for item-by-item datatypes, size in bytes)
    datatypes: dict[str, str]
    output_names: list[str] | None
    parameters: dict

    def decode(self, raws: list[memoryview]) -> DecodedRequest:
        """The request's tensors from its raw contents, one buffer per input (the caller checked
        their number); raises InvalidInput as codec.decode_request does."""
        inputs = {}
        for ((name, datatype, shape), dtype, size), buffer in zip(self.tensors, raws):
            if dtype is not None and len(buffer) == size:
                array = np.ndarray(shape, dtype, buffer)
                # A view of the message when aligned; where the message put it off its dtype's
                # alignment (raw contents follow the header at any offset), one copy, as
                # protobuf's own reading makes.
                inputs[name] = array if array.flags.aligned else array.copy()
            else:  # BYTES, BOOL, BF16, or a wrong size: checked (and refused) item by item
                inputs[name] = from_raw(buffer, datatype, shape, name)
        return DecodedRequest(inputs, self.datatypes, self.parameters, self.output_names)


class Plans:
    """Request headers' plans by their bytes, for one servicer's limits."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.known: dict[bytes, Plan] = {}
        # The header last answered from its plan: a client's next request is most often that
        # header again followed by nothing but raw contents, read without splitting the header.
        self.last: tuple[bytes, Plan] | None = None

    def get(self, key: bytes) -> Plan | None:
        return self.known.get(key)

    def remember(self, key: bytes, raws: list[memoryview], request_id: str, message: pb.ModelInferRequest) -> None:
        """Keep `message`'s plan (a request decode_request accepted) under its header's key when
        every input is raw (so none has typed `contents`: decode_request refuses both at once, and
        the plan must not answer a header with contents that comes back with raw ones), the key is
        short, and protobuf read the same id and raw contents as `split`."""
        if (not message.inputs or len(raws) != len(message.inputs) or len(key) > _KEY_BYTES
                or len(message.raw_input_contents) != len(raws) or message.id != request_id
                or any(a != b for a, b in zip(message.raw_input_contents, raws))):
            return
        tensors = tuple(tensor_header(tensor, position, self.limits) for position, tensor in enumerate(message.inputs))
        datatypes = {name: datatype for (name, datatype, _), _, _ in tensors}
        output_names = [o.name for o in message.outputs] if len(message.outputs) else None
        if len(self.known) >= _PLANS:
            self.known.clear()
        self.known[key] = Plan(message.model_name, message.model_version, tensors, datatypes, output_names,
                               parameters(message.parameters) if len(message.parameters) else {})


class Read:
    """ModelInfer's request read as far as its model: `decode()` then gives its tensors, so an
    unknown model is NOT_FOUND whatever the tensors hold (as HTTP resolves the model first)."""

    __slots__ = ("id", "key", "message", "model_name", "model_version", "plan", "plans", "raws")

    def __init__(self, request: InferBytes, plans: Plans):
        self.plans, self.plan, self.message = plans, None, None
        last = plans.last
        if last is not None:
            raws = raws_after(request.data, last[0], len(last[1].tensors))
            if raws is not None:  # what split would give: the same key, these raws, no id
                self.key, self.raws, self.id = last[0], raws, ""
                plan = self.plan = last[1]
                self.model_name, self.model_version = plan.model_name, plan.model_version
                request.model_name, request.model_version = self.model_name, self.model_version
                return
        parts = split(request.data)
        if parts is not None:
            self.key, self.raws, self.id = parts
            plan = self.plan = plans.get(self.key)
            if plan is not None and len(self.raws) == len(plan.tensors):
                plans.last = (self.key, plan)
                self.model_name, self.model_version = plan.model_name, plan.model_version
                request.model_name, request.model_version = self.model_name, self.model_version
                return
            self.plan = None
        try:
            message = self.message = pb.ModelInferRequest.FromString(request.data)
        except Exception as exc:  # noqa: BLE001  (protobuf's DecodeError)
            raise InvalidInput(f"malformed protobuf: {str(exc) or type(exc).__name__}") from None
        self.model_name, self.model_version, self.id = message.model_name, message.model_version, message.id
        request.model_name, request.model_version = self.model_name, self.model_version
        if parts is None:
            self.key = None

    def decode(self) -> DecodedRequest:
        """The request's tensors, checked as codec.decode_request checks them; raises InvalidInput."""
        if self.plan is not None:
            return self.plan.decode(self.raws)
        decoded = decode_request(self.message, self.plans.limits)
        if self.key is not None:
            self.plans.remember(self.key, self.raws, self.id, self.message)
        return decoded


# ------------------------------------------------------------------ the answer

_HEAD_KEYS: dict[tuple, bytes] = {}


def encode_response(model_name: str, model_version: str, outputs: dict[str, np.ndarray], request_id: str = "") -> bytes:
    """A ModelInferResponse's bytes, the outputs as raw contents: what codec.encode_response's
    message serializes to."""
    contents = []
    signature = []
    for name, array in outputs.items():
        datatype = v2_datatype(array.dtype)
        signature.append((name, datatype, array.shape))
        contents.append(raw_contents(array, datatype))
    key = (model_name, model_version, tuple(signature))
    head = _HEAD_KEYS.get(key)
    if head is None:
        head = _head(model_name, model_version, signature)
        if len(_HEAD_KEYS) >= _HEADS:
            _HEAD_KEYS.clear()
        _HEAD_KEYS[key] = head
    parts = [head[0]]
    if request_id:
        parts.append(_field(3, request_id.encode()))
    parts.append(head[1])
    for content in contents:
        parts.append(b"\x32" + _encode_varint(len(content)))  # field 6, length-delimited
        parts.append(content)
    return b"".join(parts)


def _head(model_name: str, model_version: str, signature: list) -> tuple[bytes, bytes]:
    """(fields 1-2, fields 5): what comes before and after the id, in field order as protobuf writes."""
    before = (_field(1, model_name.encode()) if model_name else b"") + (
        _field(2, model_version.encode()) if model_version else b"")
    after = b""
    for name, datatype, shape in signature:
        tensor = (_field(1, name.encode()) if name else b"") + _field(2, datatype.encode())
        if shape:
            tensor += _field(3, b"".join(_encode_varint(d) for d in shape))  # packed int64
        after += _field(5, tensor)
    return before, after


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | _LENGTH_DELIMITED) + _encode_varint(len(payload)) + payload


def _encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64's two's complement, ten bytes, as protobuf writes it
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [struct.pack("B", v) for v in range(0x80)]

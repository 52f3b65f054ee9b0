"""Reading request bodies within the size limit, decompressing what clients compressed, and
reading JSON bodies whatever their Content-Type."""

import zlib
from typing import Self, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from service.errors import ClientDisconnected, InvalidInput, PayloadTooLarge
from service.protocol.v2_codec import parse_json

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, decompressed within `limit` bytes. Its size on the wire is held to the
    limit by service.middleware.body_limit, which wraps every route."""
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            chunks.append(chunk)
    except ClientDisconnect:  # not a fault of ours: no traceback, no 500 in the log
        raise ClientDisconnected(f"client disconnected after {size} bytes of its body") from None
    return decoded(b"".join(chunks), request.headers.get("content-encoding"), limit)


async def receive_body(receive, encoding: str | None, limit: int) -> bytes:
    """`read_body` straight from ASGI's `receive`, for the infer route: no Request, no stream
    generator. `encoding` is the Content-Encoding header's value."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise ClientDisconnected(f"client disconnected after {size} bytes of its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return decoded(chunks[0] if len(chunks) == 1 else b"".join(chunks), encoding, limit)


class AlignedBody:
    """A binary-extension request body gathered into one buffer of its declared size, placed so
    that the binary part after its `header_length`-byte JSON header starts 8-byte aligned:
    numpy reads the tensors in place, where a body joined into `bytes` put them wherever the
    header ended (three in four FP32 tensors misaligned, so copied), and each chunk is copied
    once, not appended to a growing bytearray and copied out again. uvicorn's protocol adds
    chunks with `+=` and reads `len()`, as it does a bytearray's."""

    __slots__ = ("_buffer", "_size", "_start")

    # Allocated ahead at most this much: a client that declares the largest body and sends
    # nothing holds no more memory than it has sent beyond it.
    AHEAD = 1 << 20

    def __init__(self, declared: int, header_length: int):
        self._start = -header_length % 8  # bytearray storage is malloc's, 16-byte aligned
        self._buffer = bytearray(self._start + min(declared, self.AHEAD))
        self._size = 0

    def __iadd__(self, chunk: bytes) -> Self:
        at = self._start + self._size
        # Chunks come in order: one that reaches past the buffer's end grows it, as bytearray's
        # += would (realloc keeps the start's alignment).
        self._buffer[at : at + len(chunk)] = chunk
        self._size += len(chunk)
        return self

    def __len__(self) -> int:
        return self._size

    def view(self) -> memoryview:
        return memoryview(self._buffer)[self._start : self._start + self._size]


def decoded(body: bytes | memoryview, encoding: str | None, limit: int) -> bytes | memoryview:
    """The body decompressed as its Content-Encoding says, within `limit` bytes."""
    if encoding is None:
        return body
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidInput(f"unsupported Content-Encoding '{encoding}'; use gzip or deflate")
    return _inflate(body, encoding, limit)


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    # tritonclient sends zlib-wrapped deflate; wbits +32 detects gzip and zlib headers alike.
    wbits = 32 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    parts, size, rest = [], 0, body
    while True:
        inflater = zlib.decompressobj(wbits=wbits)
        try:
            part = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:
            raise InvalidInput(f"body is not valid {encoding} data: {exc}") from None
        parts.append(part)
        size += len(part)
        if size > limit:
            raise PayloadTooLarge(f"decompressed request body is over the limit of {limit} bytes")
        if not inflater.eof:  # cut short: its end, and the gzip checksum, never came
            raise InvalidInput(f"body is truncated {encoding} data")
        rest = inflater.unused_data
        if not rest:
            return b"".join(parts)
        if encoding != "gzip":  # gzip members may follow one another (RFC 1952); else it is junk
            raise InvalidInput(f"body has {len(rest)} bytes after the end of its {encoding} data")


async def read_json_object(request: Request) -> dict:
    """A body's JSON object whatever its Content-Type says: tritonclient sends none, curl sends
    form-urlencoded, some clients text/plain. An empty body is `{}`, as it is for Triton."""
    return _object(await _read_json(request))


def json_object(body: bytes | memoryview, max_depth: int) -> dict:
    """read_json_object's answer for a body already read (service.http_stream)."""
    return _object(parse_json(body, max_depth))


def _object(document) -> dict:
    if not isinstance(document, dict):
        raise InvalidInput("the request body must be a JSON object")
    return document


async def _read_json(request: Request):
    state = request.app.state
    body = await read_body(request, state.settings.max_request_bytes)
    return parse_json(body, state.limits.max_json_depth)


async def read_model(request: Request, model: type[M]) -> M:
    """The body as a pydantic `model`, with the 400 the app's validation handler would give."""
    document = await _read_json(request)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(('body', *map(str, e['loc'])))}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid request: {problems}") from None


def body_schema(model: type[BaseModel]) -> dict:
    """The OpenAPI requestBody of a route that reads its body with `read_model` (optional)."""
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": model.model_json_schema()}}}}

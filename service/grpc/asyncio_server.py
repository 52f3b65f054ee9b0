"""The gRPC server on the event loop itself (--grpc-transport asyncio): HTTP/2 from service/grpc/h2c.py,
gRPC's message framing, status and deadlines here, and the same servicer as grpcio's server
(service/grpc/servicer.py) with the health and reflection services of grpcio-health-checking and
grpcio-reflection (their asyncio servicers), each call its own context (`Call`).

A call costs no thread hop: its request is parsed in the protocol's data_received and its
coroutine started there; the reply is written, with its headers and trailers, in one write.
"""

import asyncio
import base64
import logging
import time

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2

from service.access import KeyRules
from service.dataplane import DataPlane
from service.grpc.bridge import Abort
from service.grpc.h2c import H2Connection, Stream, hpack_length, literal
from service.grpc.lifecycle import Lifecycle, serving_statuses
from service.grpc.protocol import SERVICE, SERVICE_NAME, pb
from service.grpc.server import request_parser
from service.grpc.servicer import InferenceServicer
from service.protocol.v2_codec import Limits
from service.settings import Settings

log = logging.getLogger(__name__)

# :status 200 is the static table's entry 8 (RFC 7541 Appendix A); content-type a literal.
_RESPONSE_HEADERS = b"\x88" + literal(b"content-type", b"application/grpc")
_OK = literal(b"grpc-status", b"0")
_STATUS = {code: literal(b"grpc-status", str(code.value[0]).encode()) for code in grpc.StatusCode}
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# Request headers that are HTTP/2's or gRPC's, not the call's metadata (as grpcio leaves them out).
_NOT_METADATA = {"content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "user-agent"}
_UNARY, _STREAM, _SERVER_STREAM = range(3)
_HEADS = 256  # request heads remembered


def _parser(message_class):
    """A strict parser for the health and reflection messages: bytes that are not the message
    end the call with INTERNAL, as grpcio answers."""

    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except Exception:  # noqa: BLE001  (protobuf's DecodeError)
            raise Abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!", ()) from None

    return parse


class Call:
    """One RPC on one stream: gathers its request messages, runs the servicer's coroutine, answers.
    The stream's handler (h2c calls on_data, on_end, on_reset), and the servicer's context (what
    it uses of grpc.aio's ServicerContext)."""

    __slots__ = (
        "buffer",
        "deadline",
        "ended",
        "function",
        "headers_sent",
        "kind",
        "messages",
        "parse",
        "queue",
        "server",
        "stream",
        "task",
        "trailers",
    )

    def __init__(self, server: "AsyncioGrpcServer", stream: Stream, method, deadline: float | None):
        self.server, self.stream, self.deadline = server, stream, deadline
        self.kind, self.function, self.parse = method
        self.buffer = bytearray()
        self.messages: list[bytes] = []
        self.queue: asyncio.Queue | None = None
        self.ended = False  # the client half-closed (or the stream died)
        self.task: asyncio.Task | None = None
        self.headers_sent = False
        self.trailers: tuple = ()  # the servicer's trailing metadata

    # ---------------------------------------------------------------- the servicer's context
    def invocation_metadata(self) -> tuple:
        return self.stream.metadata

    def set_trailing_metadata(self, metadata) -> None:
        self.trailers = tuple(metadata)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: tuple = ()):
        raise Abort(code, details, tuple(trailing_metadata))

    async def write(self, message) -> None:
        """A server-streaming reply (health's Watch)."""
        self.send(message)
        await self.stream.wait_drained()

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    # ---------------------------------------------------------------- from h2c
    def on_data(self, data: bytes) -> None:
        if self.ended:
            return
        if not self.buffer and len(data) >= 5 and not data[0] and self.queue is None:
            # The common unary call: its whole message in one DATA frame.
            size = int.from_bytes(data[1:5], "big")
            if len(data) == 5 + size and size <= self.server.max_message:
                self.messages.append(data[5:])
                return
        buffer = self.buffer
        buffer += data
        # gRPC's message framing: 1 byte compressed flag, 4 bytes length, the message.
        while len(buffer) >= 5:
            size = int.from_bytes(buffer[1:5], "big")
            limit = self.server.max_message
            if size > limit:
                self._fail_early(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                 f"Received message larger than max ({size} vs. {limit})")
                return
            if buffer[0]:
                # We announce no grpc-accept-encoding, so a conforming client never compresses.
                self._fail_early(grpc.StatusCode.UNIMPLEMENTED, "compressed messages are not supported")
                return
            if len(buffer) < 5 + size:
                break
            message = bytes(buffer[5: 5 + size])
            del buffer[: 5 + size]
            if self.queue is not None:
                self.queue.put_nowait(message)
            else:
                self.messages.append(message)

    def on_end(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self.buffer:
            self._fail_early(grpc.StatusCode.INTERNAL, "the request ended inside a message")
        elif self.queue is not None:
            self.queue.put_nowait(None)
        elif self.task is None and not self.stream.closed:
            if len(self.messages) != 1:
                self._finish(grpc.StatusCode.UNIMPLEMENTED if not self.messages else grpc.StatusCode.INTERNAL,
                             f"a unary call takes one request message, got {len(self.messages)}", ())
                return
            self._start(self._unary(self.messages.pop()))

    def on_reset(self) -> None:
        self.ended = True
        if self.task is not None and not self.task.done():
            self.task.cancel()  # the client left, or reset the stream: the work stops at its next await
        elif self.queue is not None:
            self.queue.put_nowait(None)

    # ---------------------------------------------------------------- running
    def start_streaming(self) -> None:
        """Client-streaming calls start at their headers; requests arrive through a queue."""
        self.queue = asyncio.Queue()
        self._start(self._streaming())

    def _start(self, coroutine) -> None:
        self.task = asyncio.get_running_loop().create_task(coroutine)

    async def _unary(self, data: bytes) -> None:
        try:
            request = self.parse(data)
            if self.deadline is None:
                reply = await self.function(request, self)
            else:
                async with asyncio.timeout_at(self._loop_deadline()):
                    reply = await self.function(request, self)
            if self.kind == _SERVER_STREAM:
                self._finish(grpc.StatusCode.OK, "", self.trailers)
                return
            message = reply if type(reply) is bytes else reply.SerializeToString()  # ModelInfer's are bytes
        except BaseException as exc:  # noqa: BLE001  (every end of a call is rendered as a status)
            self._end_with(exc)
            return
        if self.stream.closed:
            return
        self.stream.send_response(_RESPONSE_HEADERS, b"\0" + len(message).to_bytes(4, "big"), message,
                                  _OK + _metadata(self.trailers))
        self.headers_sent = True

    async def _streaming(self) -> None:
        try:
            replies = self.function(self._requests(), self)
            if self.deadline is None:
                await self._pump(replies)
            else:
                async with asyncio.timeout_at(self._loop_deadline()):
                    await self._pump(replies)
        except BaseException as exc:  # noqa: BLE001
            self._end_with(exc)
            return
        self._finish(grpc.StatusCode.OK, "", self.trailers)

    async def _pump(self, replies) -> None:
        async for reply in replies:
            self.send(reply)
            if self.stream.pending:  # a slow reader holds the generation back
                try:
                    await self.stream.wait_drained()
                except asyncio.CancelledError as exc:
                    # Cancelled here rather than inside the generator: stop it as if it had been.
                    await replies.athrow(exc)
                    raise

    async def _requests(self):
        while (message := await self.queue.get()) is not None:
            yield self.parse(message)

    def send(self, reply) -> None:
        if self.stream.closed:
            return
        message = reply.SerializeToString()
        if not self.headers_sent:
            self.headers_sent = True
            self.stream.send_headers(_RESPONSE_HEADERS)
        self.stream.send_data(b"\0" + len(message).to_bytes(4, "big") + message)

    def _loop_deadline(self) -> float:
        loop = asyncio.get_running_loop()
        return loop.time() + (self.deadline - time.monotonic())

    def _end_with(self, exc: BaseException) -> None:
        """The call's end by an exception, as a status."""
        if isinstance(exc, Abort):
            self._finish(exc.code, exc.details, exc.trailers or self.trailers)
        elif isinstance(exc, TimeoutError):
            self._finish(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", self.trailers)
        elif isinstance(exc, asyncio.CancelledError):
            # The client reset the stream (nothing to answer), or the server is stopping.
            self._finish(grpc.StatusCode.UNAVAILABLE, "the server is shutting down", ())
            raise exc
        elif isinstance(exc, Exception):
            log.error("unhandled error on gRPC %s", getattr(self.function, "__name__", "call"), exc_info=exc)
            self._finish(grpc.StatusCode.UNKNOWN, "Unexpected error", ())
        else:
            raise exc

    def _finish(self, code: grpc.StatusCode, message: str, trailers: tuple) -> None:
        if self.stream.closed:
            return
        block = _STATUS[code] + (literal(b"grpc-message", _percent(message)) if message else b"") + _metadata(trailers)
        if self.headers_sent:
            self.stream.send_trailers(block)
        else:  # trailers-only: one HEADERS frame (gRPC over HTTP/2, "Trailers-Only")
            self.headers_sent = True
            self.stream.send_headers(_RESPONSE_HEADERS + block, end_stream=True)

    def _fail_early(self, code: grpc.StatusCode, message: str) -> None:
        """A request refused before its end (too big, compressed): answer, stop its work."""
        self.buffer.clear()
        if self.task is not None:
            self.task.cancel()
        self._finish(code, message, ())  # and RST_STREAM(NO_ERROR) if the client still sends
        self.ended = True


def _metadata(pairs) -> bytes:
    out = b""
    for key, value in pairs:
        head = _KEYS.get(key)
        if head is None:
            head = _key(key)
        if head[1]:
            value = base64.b64encode(value if isinstance(value, bytes) else value.encode()).rstrip(b"=")
        elif isinstance(value, str):
            value = value.encode()
        out += head[0] + hpack_length(value) + value
    return out


def _key(key: str) -> tuple[bytes, bool]:
    """A metadata key's literal up to its value (literal(key, value) = this + value's length +
    value), and whether it is binary; remembered, as a call's trailers repeat the same keys."""
    name = key.lower().encode()
    head = (literal(name, b"")[:-1], name.endswith(b"-bin"))
    if len(_KEYS) < 256:
        _KEYS[key] = head
    return head


_KEYS: dict[str, tuple[bytes, bool]] = {}


def _percent(message: str) -> bytes:
    """grpc-message's percent-encoding: printable ASCII but '%' as is, every other byte %XX."""
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in message.encode())


def _timeout(value: str) -> float | None:
    """grpc-timeout ("100m", "5S"...) in seconds; None for a malformed one (ignored, as grpcio)."""
    unit = _TIMEOUT_UNITS.get(value[-1:])
    if unit is None or not value[:-1].isdigit() or len(value) > 9:
        return None
    return int(value[:-1]) * unit


class AsyncioGrpcServer(Lifecycle):
    """Same doors as service/grpc/server.py's GrpcServer: start, begin_stop, stop."""

    def __init__(self, settings: Settings, dataplane: DataPlane, limits: Limits):
        self.settings, self.dataplane = settings, dataplane
        self.max_message = settings.max_request_bytes
        servicer = InferenceServicer(
            dataplane, KeyRules.from_settings(settings), limits, settings.request_timeout_s, settings.access_log
        )
        self.health = health_aio.HealthServicer()
        reflector = reflection_aio.ReflectionServicer((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME))
        self.methods = {}
        for method in SERVICE.methods:
            implementation = getattr(servicer, method.name, None)
            if implementation is not None:  # else UNIMPLEMENTED, as grpcio answers
                kind = _STREAM if method.client_streaming else _UNARY
                self.methods[f"/{SERVICE_NAME}/{method.name}"] = (
                    kind, implementation, request_parser(method.name, getattr(pb, method.input_type.name)))
        self.methods[f"/{health.SERVICE_NAME}/Check"] = (
            _UNARY, self.health.Check, _parser(health_pb2.HealthCheckRequest))
        self.methods[f"/{health.SERVICE_NAME}/Watch"] = (
            _SERVER_STREAM, self.health.Watch, _parser(health_pb2.HealthCheckRequest))
        self.methods[f"/{reflection.SERVICE_NAME}/ServerReflectionInfo"] = (
            _STREAM, reflector.ServerReflectionInfo, _parser(reflection_pb2.ServerReflectionRequest))
        self.connections: set[H2Connection] = set()
        self.heads: dict[int, tuple] = {}  # id(header list) -> (the list, _request_head's answer)
        self.server: asyncio.AbstractServer | None = None
        self.address = f"{settings.host}:{settings.grpc_port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # With --workers N each worker binds the port (SO_REUSEPORT), as grpcio's server does.
            self.server = await loop.create_server(
                self._connection, self.settings.host, self.settings.grpc_port,
                reuse_port=self.settings.workers > 1 or None, backlog=2048)
        except OSError as exc:
            raise RuntimeError(f"gRPC could not listen on {self.address}: {exc}") from exc
        await self._follow_readiness()
        log.info("gRPC listening on %s (asyncio transport)", self.address)

    def _connection(self) -> H2Connection:
        connection = H2Connection(self._on_headers, self.connections.discard)
        self.connections.add(connection)
        if self._stopping is not None:
            connection.going_away = True
        return connection

    def _on_headers(self, stream: Stream) -> None:
        path, content_type, timeout, metadata = self._request_head(stream.headers)
        stream.metadata = metadata
        method = self.methods.get(path)
        deadline = None if timeout is None else time.monotonic() + timeout
        call = Call(self, stream, method or (_UNARY, None, None), deadline)
        stream.handler = call
        if not content_type or not content_type.startswith("application/grpc"):
            # Not a gRPC client: HTTP's answer (gRPC over HTTP/2: 415 for a wrong content type).
            call.ended = True
            stream.send_headers(literal(b":status", b"415"), end_stream=True)
        elif method is None:
            call._fail_early(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        elif method[0] == _STREAM:
            call.start_streaming()

    def _request_head(self, headers: list) -> tuple:
        """(path, content type, timeout in seconds, metadata) of a request's headers; remembered
        per header list, which h2c hands out again for a block it has decoded before."""
        known = self.heads.get(id(headers))
        if known is not None and known[0] is headers:
            return known[1]
        path = content_type = timeout = None
        metadata = []
        for key, value in headers:
            if key == ":path":
                path = value
            elif key == "content-type":
                content_type = value
            elif key == "grpc-timeout":
                timeout = _timeout(value)
            elif key[0] != ":" and key not in _NOT_METADATA:
                if key.endswith("-bin"):
                    value = base64.b64decode(value + "=" * (-len(value) % 4))
                metadata.append((key, value))
        head = (path, content_type, timeout, tuple(metadata))
        if len(self.heads) >= _HEADS:
            self.heads.clear()
        self.heads[id(headers)] = (headers, head)  # the list kept alive, so its id stays its own
        return head

    async def _serving(self, ready: bool) -> None:
        for name, status in serving_statuses(ready):
            await self.health.set(name, status)

    async def _stop(self, grace_s: float) -> None:
        await self.health.enter_graceful_shutdown()
        self.server.close()
        for connection in list(self.connections):
            connection.go_away()
        if calls := self._calls():
            await asyncio.wait(calls, timeout=grace_s)
        for task in (calls := self._calls()):
            task.cancel()
        if calls:
            await asyncio.wait(calls, timeout=1.0)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.close()

    def _calls(self) -> list[asyncio.Task]:
        """The calls running: those of every connection's open streams."""
        return [stream.handler.task for connection in self.connections for stream in connection.streams.values()
                if stream.handler is not None and stream.handler.task is not None and not stream.handler.task.done()]

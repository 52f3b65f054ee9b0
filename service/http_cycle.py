"""One request answered from the HTTP protocol itself (service.http_infer): what an infer call
and a generate_stream have in common. uvicorn's protocol feeds a cycle (`body`, `more_body`,
`message_event.set()`), marks it (`disconnected`, `keep_alive` on shutdown), asks whether it is
done (`response_complete`) and starts it (`_start_asgi_task`: the connection's task runs
`run_asgi`), as its own cycles. The subclasses say what a request is answered with (`answer`)
and how it is written (`send`).
"""

import asyncio
import time
from collections.abc import Awaitable

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from service import access_log
from service.errors import ClientDisconnected
from service.middleware import timeout
from service.protocol.body import AlignedBody, decoded
from service.protocol.errors import render


class FastCycle:
    __slots__ = (
        "_waiter",
        "body",
        "content_type",
        "dataplane",
        "deadline",
        "disconnected",
        "encoding",
        "expired",
        "header_length",
        "keep_alive",
        "more_body",
        "name",
        "path",
        "protocol",
        "reading_body",
        "request_id",
        "response_complete",
        "started",
        "task",
        "version",
    )

    def __init__(self, protocol, dataplane, path: str, name: str, version: str | None,
                 content_type: str, encoding: str | None, header_length: str | None, request_id: str,
                 body: AlignedBody | bytearray | bytes, keep_alive: bool):
        self.protocol, self.dataplane = protocol, dataplane
        self.path, self.name, self.version = path, name, version
        self.content_type, self.encoding, self.header_length = content_type, encoding, header_length
        self.request_id, self.keep_alive = request_id, keep_alive
        self.body = body  # added to by on_body
        self.more_body = True
        self.disconnected = self.response_complete = self.expired = False
        self.reading_body = True
        self.started = time.perf_counter()
        self.deadline = 0.0
        self.task: asyncio.Task | None = None
        self._waiter: asyncio.Future | None = None

    async def run_asgi(self, app) -> None:  # the name uvicorn starts a cycle by; `app` is unused
        """The body, then `answer(body)` under the request's deadline, then `send` its result;
        an error before the response starts is rendered as the ASGI routes render it."""
        protocol = self.protocol
        self.begin()
        status = 200
        try:
            try:
                answer = await self.answer(await self.read_body())
            except asyncio.CancelledError:
                if not self.expired:  # shutdown's or a disconnection's, not our deadline's
                    raise
                status, content, lines = self.expiry()
            except Exception as exc:  # noqa: BLE001  (rendered: a logged 500 unless a ServiceError)
                status, content, lines = self.error(render(exc, f"POST {self.path}"))
            protocol.running = None  # answering now: the deadline no longer applies
            if status == 200:
                await self.send(answer)
            else:
                await self.respond(status, lines, content)
        finally:
            if protocol.running is self:
                protocol.running = None
        if protocol.infer.access_log:
            access_log.http_request(self.request_id, "POST", self.path, self.name, self.version, status, self.started)

    # Plain methods that return awaitables, so an infer call awaits its route's own coroutines
    # with no layer of ours between (this is the hottest path of the service).
    def answer(self, body: bytes | memoryview) -> Awaitable:
        """What the request asks, worked out before the response starts."""
        raise NotImplementedError

    def send(self, answer) -> Awaitable[None]:
        """Write `answer`'s response."""
        raise NotImplementedError

    @property
    def message_event(self) -> "FastCycle":
        return self  # uvicorn calls message_event.set() when body, its end or a disconnection arrives

    def set(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def expire(self) -> None:
        """The deadline passed before the answer started: stop the work where it waits."""
        self.expired = True
        self.task.cancel()

    def begin(self) -> None:
        """Run by `run_asgi` first, in the connection's worker (InferProtocol._serve): the task
        to cancel, and the deadline of the request's answer."""
        protocol = self.protocol
        self.task = protocol._worker
        timeout_s = protocol.infer.timeout_s
        if timeout_s > 0:
            self.deadline = protocol.loop.time() + timeout_s
            protocol.watch(self)

    async def read_body(self) -> bytes | memoryview:
        """The whole body, decompressed within the limit."""
        protocol = self.protocol
        while self.more_body and not self.disconnected:  # a body in more than one read
            protocol.flow.resume_reading()  # uvicorn's on_body pauses it past 64 KiB
            self._waiter = protocol.loop.create_future()
            await self._waiter
        if self.disconnected:
            raise ClientDisconnected(f"client disconnected after {len(self.body)} bytes of its body")
        self.reading_body = False
        body = self.body
        body = body.view() if type(body) is AlignedBody else bytes(body)  # bytes(bytes) is itself
        return decoded(body, self.encoding, protocol.infer.max_bytes)

    def expiry(self) -> tuple[int, bytes, bytes]:
        """The answer to a request whose deadline passed (the caller checked `expired`)."""
        self.task.uncancel()
        return self.error(render(timeout.expiry(self.reading_body, self.protocol.infer.timeout_s)))

    def error(self, rendered: tuple[int, bytes, list[tuple[bytes, bytes]]]) -> tuple[int, bytes, bytes]:
        """An error's (status, body, header lines but its length); a `Connection: close` among
        its headers closes the connection after it (as uvicorn's send does)."""
        status, content, headers = rendered
        kept = []
        for name, value in headers:
            if name == b"content-length":
                continue  # respond writes it
            if name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
            else:
                kept.append((name, value))
        return status, content, b"".join(b"%s: %s\r\n" % header for header in kept)

    def head(self, status: int, lines: bytes) -> bytes:
        """The response's status line and headers, uvicorn's date and server and the request id
        among them. `lines`: the response's own headers, each ending in CRLF."""
        return b"%s%s%sx-request-id: %s\r\n%s" % (
            STATUS_LINE[status], default_headers(self.protocol.server_state.default_headers), lines,
            self.request_id.encode(), b"" if self.keep_alive else b"connection: close\r\n")

    async def respond(self, status: int, lines: bytes, content: bytes) -> None:
        """Write the whole response at once, as uvicorn's send would, then let the protocol start
        the next pipelined request or its keep-alive timer. `lines`: the headers, each ending
        in CRLF, the content's length not among them."""
        protocol = self.protocol
        if protocol.flow.write_paused and not self.disconnected:
            await protocol.flow.drain()
        if self.disconnected:
            return
        protocol.transport.write(b"%scontent-length: %d\r\n\r\n%s" % (self.head(status, lines), len(content), content))
        self.complete()

    def complete(self) -> None:
        """The response is written: close the connection or go on to its next request."""
        self.response_complete = True
        protocol = self.protocol
        if not self.keep_alive:
            protocol.transport.close()
        protocol.on_response_complete()


_defaults: tuple[list, bytes] = ([], b"")


def default_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's date and server header lines, joined once per list: uvicorn makes a new list
    each second (the date), so the identity of the last one names its bytes."""
    global _defaults
    if _defaults[0] is not headers:
        _defaults = (headers, b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers))
    return _defaults[1]

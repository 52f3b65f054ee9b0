"""V2 infer answered from the HTTP protocol itself, without an ASGI request cycle.

On one core at 64 connections, uvicorn's per-request machinery (a scope, a RequestResponseCycle
and its Event, ASGI messages through five middlewares) cost more CPU than the codec and the
model together (docs/BENCHMARKS.md). This protocol recognises `POST /v2/models/{m}[/versions/
{v}]/infer` once its head is complete and nothing in it needs the general path, gathers the
body, answers with the route's own core (`v2.infer_body`) and writes the response to the
transport. What the middlewares decide is decided by their own functions: API keys
(service.access), the body limit and the deadline (service.middleware.body_limit, .timeout),
the request id and the access line (service.middleware.request_log, service.access_log), the
error bodies (service.protocol.errors.render).

Everything else takes uvicorn's ASGI path unchanged: other routes and methods, a query string or
%-escapes in the path, `Expect: 100-continue`, a chunked or length-less body, a body declared
over the limit, a refused key (the middlewares answer those), an `Origin` when CORS is on, a root
path or a concurrency limit. The request is a cycle uvicorn's protocol already drives (InferCycle
has the attributes it touches), so keep-alive, pipelining, flow control, disconnection and
graceful shutdown stay uvicorn's own code.
"""

import asyncio
import contextvars
import functools
import logging
import re
from collections.abc import Awaitable

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.access import RouteClass
from service.http_cycle import FastCycle
from service.http_protocol import HeadTimeoutProtocol
from service.http_stream import StreamCycle
from service.middleware import body_limit
from service.middleware.request_log import request_id_from
from service.middleware.routes import INFER_PATH, STREAM_PATH
from service.protocol.body import AlignedBody
from service.protocol.fast_infer import InferSettings
from service.protocol.v2 import infer_body

log = logging.getLogger(__name__)

_INFER_PATH = re.compile(INFER_PATH.pattern.encode())
_STREAM_PATH = re.compile(STREAM_PATH.pattern.encode())
_NOT_PLAIN = re.compile(rb"[%?#]|[^\x21-\x7e]")  # what the ASGI path would unquote, split or refuse


def protocol(head_timeout_s: float) -> functools.partial:
    """What to pass as uvicorn's `http`: a picklable factory, so --workers processes get it too."""
    return functools.partial(InferProtocol, head_timeout_s=head_timeout_s)


class InferProtocol(HeadTimeoutProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.infer = _infer_settings(self.app)  # None: an app without the fast path's settings
        self.running: InferCycle | None = None  # the fast request being answered, for its deadline
        self._deadline: asyncio.TimerHandle | None = None
        self._worker: asyncio.Task | None = None  # answers this connection's fast requests (_serve)
        self._next: InferCycle | None = None  # the fast request it is to answer next
        self._wake: asyncio.Future | None = None  # what it waits on while there is none
        self._lost = False

    def on_message_begin(self) -> None:
        # uvicorn builds the request's ASGI scope here; the fast path needs none, so it is built
        # only for a request that takes the ASGI path (_build_scope).
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.head_begins()

    def on_headers_complete(self) -> None:
        cycle = self._infer_cycle() if self.infer is not None else None
        if cycle is None:
            self._build_scope()
            super().on_headers_complete()
            return
        self.head_complete()
        # As uvicorn's own on_headers_complete: start it, or queue it behind the one in flight.
        previous, self.cycle = self.cycle, cycle
        if previous is None or previous.response_complete:
            self._start_asgi_task(cycle, None)
        else:
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, None))

    # uvicorn's on_body and on_message_complete, for a fast request: its head was checked not
    # to be an upgrade, so the parser need not be asked again for every read.
    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if not isinstance(cycle, FastCycle):
            super().on_body(body)
            return
        if cycle.response_complete:
            return
        gathered = cycle.body
        if type(gathered) is bytes:  # a JSON body: kept as the chunk itself while it is one
            cycle.body = gathered = body if not gathered else bytearray(gathered) + body
        else:
            gathered += body  # a bytearray's or AlignedBody's own +=, in place
        if len(gathered) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.set()

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if not isinstance(cycle, FastCycle):
            super().on_message_complete()
            return
        if cycle.response_complete:
            return
        cycle.more_body = False
        cycle.set()

    def _build_scope(self) -> None:
        """uvicorn's scope, by uvicorn's own code, over the head already read."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        HttpToolsProtocol.on_message_begin(self)
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers

    def connection_lost(self, exc) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)
        self._lost = True
        self._wake_worker()  # to end: no request can come any more

    # One task per connection answers its fast requests one after another, where uvicorn starts
    # a task per request: creating, registering (a WeakSet) and finishing a task cost about 3 µs
    # of a 1-row request's CPU more than waking one (measured on one core). Only one request of
    # a connection runs at a time anyway: uvicorn starts the next one (this method) when the
    # last has answered, or queues it in `pipeline`.
    def _start_asgi_task(self, cycle, app) -> None:
        if not isinstance(cycle, FastCycle):
            super()._start_asgi_task(cycle, app)
            return
        self._next = cycle
        if self._worker is None or self._worker.done():
            if self.config.reset_contextvars:
                self._worker = self.loop.create_task(self._serve(), context=contextvars.Context())
            else:
                self._worker = self.loop.create_task(self._serve())
            # In uvicorn's set of running tasks, as its own: a graceful shutdown waits for it,
            # and one past its timeout cancels it.
            self._worker.add_done_callback(self.tasks.discard)
            self.tasks.add(self._worker)
        else:
            self._wake_worker()

    def _wake_worker(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _serve(self) -> None:
        while True:
            cycle = self._next
            if cycle is None:
                if self._lost:
                    return
                self._wake = self.loop.create_future()
                try:
                    await self._wake
                finally:
                    self._wake = None
                continue
            self._next = None
            try:
                await cycle.run_asgi(None)
            except Exception:
                log.exception("unexpected error answering POST %s", cycle.path)

    def _infer_cycle(self) -> FastCycle | None:
        """The fast path's cycle for the request whose head just ended, or None for ASGI."""
        infer: InferSettings = self.infer
        if self.expect_100_continue or self.root_path or self.limit_concurrency is not None:
            return None
        route = _route(self.url)
        if route is None or self.parser.get_method() != b"POST":
            return None
        dataplane = infer.dataplane
        if dataplane is None or self.parser.should_upgrade():
            return None
        length = authorization = request_id = None
        content_type = encoding = header_length = None
        for name, value in self.headers:
            if name == b"content-length":
                if length is not None:
                    return None
                length = value
            elif name == b"authorization":
                authorization = value
            elif name == b"x-request-id":
                request_id = request_id or value
            elif name == b"content-type":
                content_type = content_type or value
            elif name == b"content-encoding":
                encoding = encoding or value
            elif name == b"inference-header-content-length":
                header_length = header_length or value
            elif name == b"transfer-encoding" or (name == b"origin" and infer.cors):
                return None
        declared = body_limit.declared_length(length)
        if declared is None or body_limit.refusal(declared, infer.max_bytes) is not None:
            return None
        if not infer.models_open and infer.rules.refusal(RouteClass.MODEL, authorization) is not None:
            return None
        kind, path, name, version = route
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        if kind is StreamCycle:
            # Server-sent events go out in chunks (HTTP/1.1); a form upload is read by the route.
            if self.parser.get_http_version() != "1.1" or (content_type or b"").lower().startswith(b"multipart/"):
                return None
            header_length = None  # the binary extension's header: not a generate request's
        return kind(
            self, dataplane, path, name, version,
            content_type.decode("latin-1") if content_type is not None else "",
            encoding.decode("latin-1") if encoding is not None else None,
            header_length.decode("latin-1") if header_length is not None else None,
            request_id_from(request_id),  # sent back whether or not the access log is on
            # The binary extension's body is gathered with its tensors aligned; a JSON one as bytes
            # (a body that comes in one chunk is that chunk: no copy in, none out; on_body).
            AlignedBody(declared, int(header_length)) if header_length is not None and header_length.isdigit()
            else b"",
            keep_alive,
        )

    # One timer per connection at most, re-armed only when it fires (as the head's): a fast
    # request is timed by a timestamp, not a TimerHandle of its own.
    def watch(self, cycle: FastCycle) -> None:
        self.running = cycle
        if self._deadline is None:
            self._deadline = self.loop.call_at(cycle.deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._deadline = None
        cycle = self.running
        if cycle is None:
            return
        if self.loop.time() < cycle.deadline:
            self._deadline = self.loop.call_at(cycle.deadline, self._check_deadline)
        else:
            cycle.expire()


class InferCycle(FastCycle):
    """One infer request on the fast path."""

    __slots__ = ()

    def answer(self, body: bytes | memoryview) -> Awaitable[tuple[bytes, dict[str, str]]]:
        infer: InferSettings = self.protocol.infer
        return infer_body(self.dataplane, infer.limits, self.name, self.version, body, self.content_type,
                          self.header_length)

    def send(self, answer: tuple[bytes, dict[str, str]]) -> Awaitable[None]:
        content, headers = answer
        return self.respond(200, _JSON_LINES if headers == _JSON_HEADERS else _header_lines(headers), content)


_JSON_HEADERS = {"content-type": "application/json"}  # the answer to a JSON request, nearly always
_JSON_LINES = b"content-type: application/json\r\n"


def _header_lines(headers: dict[str, str]) -> bytes:
    # The codec hands the same dict for answers of the same binary header: its bytes are kept
    # by the dict's identity (the dict itself held, so its id is not reused meanwhile).
    known = _lines_of.get(id(headers))
    if known is not None and known[0] is headers:
        return known[1]
    lines = b"".join(b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in headers.items())
    if len(_lines_of) >= 64:
        del _lines_of[next(iter(_lines_of))]
    _lines_of[id(headers)] = (headers, lines)
    return lines


_lines_of: dict[int, tuple[dict[str, str], bytes]] = {}


_routes: dict[bytes, tuple[type[FastCycle], str, str, str | None] | None] = {}
_MAX_ROUTES = 256


def _route(url: bytes) -> tuple[type[FastCycle], str, str, str | None] | None:
    """(cycle class, path, model, version) of an infer or generate_stream URL the fast path
    takes, else None; remembered for the URLs seen last (clients send the same few again and
    again)."""
    route = _routes.get(url, ())
    if route == ():
        kind, match = InferCycle, _INFER_PATH.match(url)
        if match is None:
            kind, match = StreamCycle, _STREAM_PATH.match(url)
        route = None
        if match is not None and _NOT_PLAIN.search(url) is None:
            version = match[2]
            route = (kind, url.decode(), match[1].decode(), version.decode() if version is not None else None)
        if len(_routes) >= _MAX_ROUTES:
            del _routes[next(iter(_routes))]
        _routes[url] = route
    return route


def _infer_settings(app) -> InferSettings | None:
    """The app's InferSettings, under whatever uvicorn wrapped it in (proxy headers...)."""
    for _ in range(8):
        state = getattr(app, "state", None)
        infer = getattr(state, "infer", None) if state is not None else None
        if isinstance(infer, InferSettings):
            return infer
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None

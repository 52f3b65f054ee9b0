"""uvicorn's HTTP protocol with a deadline on each request's head (request line and headers).

uvicorn closes a kept-alive connection that idles after a response (`timeout_keep_alive`), but
arms no timer before a connection's first request or while a request's head trickles in: a
client that connects and sends nothing, or sends its headers a byte at a time, holds a socket
and a file descriptor for ever. This protocol closes such a connection once a head has not
arrived within `head_timeout_s` of the connection opening or of the request's first byte.
The body is covered further in, by the request timeout (service.middleware.timeout).
uvicorn's own keep-alive timeout is kept, timed the same cheap way (below).
service.http_infer builds the protocol uvicorn runs on this one.
"""

import asyncio

# httptools comes with uvicorn[standard], a dependency; it is also what uvicorn's "auto" picks.
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadTimeoutProtocol(HttpToolsProtocol):
    def __init__(self, *args, head_timeout_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._head_timeout_s = head_timeout_s
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_started: float | None = None  # loop time the head now arriving began
        self._idle_deadline: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None  # loop time the last response ended, while idle

    # One timer per connection at most, re-armed only when it fires: arming and cancelling a
    # timer for each request's head cost a measurable share of a 1-row infer (TimerHandles and
    # heap operations on every keep-alive request), where a timestamp costs next to nothing.
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.head_begins()

    def on_message_begin(self) -> None:
        # The first byte of a later request on a kept-alive connection (uvicorn's keep-alive
        # timer stopped at that byte). A head still running since connect keeps its start.
        super().on_message_begin()
        self.head_begins()

    def on_headers_complete(self) -> None:
        self.head_complete()
        super().on_headers_complete()

    def head_complete(self) -> None:
        self._head_started = None

    def connection_lost(self, exc) -> None:
        self._head_started = self._idle_since = None
        for timer in (self._head_deadline, self._idle_deadline):
            if timer is not None:
                timer.cancel()
        self._head_deadline = self._idle_deadline = None
        super().connection_lost(exc)

    # uvicorn arms a keep-alive TimerHandle after every response and cancels it at the next
    # request's first bytes; the same deadline is kept here by a timestamp and one timer per
    # connection. This is uvicorn's on_response_complete with only that changed.
    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:  # pipelined requests waiting behind this one
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self._idle_deadline is None:
            self._idle_deadline = self.loop.call_at(self._idle_since + self.timeout_keep_alive, self._check_idle)

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this on every read: data has come, the connection is no longer idle.
        self._idle_since = None

    def _check_idle(self) -> None:
        self._idle_deadline = None
        if self._idle_since is None:
            return  # busy now; the next response arms a timer again
        deadline = self._idle_since + self.timeout_keep_alive
        if self.loop.time() < deadline:
            self._idle_deadline = self.loop.call_at(deadline, self._check_idle)
        elif not self.transport.is_closing():
            self.transport.close()

    def head_begins(self) -> None:
        if self._head_started is None:
            self._head_started = self.loop.time()
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_at(self._head_started + self._head_timeout_s, self._check_head)

    def _check_head(self) -> None:
        self._head_deadline = None
        if self._head_started is None:
            return  # no head arriving now; the next one arms a timer again
        deadline = self._head_started + self._head_timeout_s
        if self.loop.time() < deadline:  # a later head than the one this timer was set for
            self._head_deadline = self.loop.call_at(deadline, self._check_head)
        elif not self.transport.is_closing():
            self.transport.close()

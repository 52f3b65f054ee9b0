"""uvicorn's HTTP protocol with a deadline on each request's head (request line and headers).

uvicorn closes a kept-alive connection that idles after a response (`timeout_keep_alive`), but
arms no timer before a connection's first request or while a request's head trickles in: a
client that connects and sends nothing, or sends its headers a byte at a time, holds a socket
and a file descriptor for ever. This protocol closes such a connection once a head has not
arrived within `head_timeout_s` of the connection opening or of the request's first byte.
The body is covered further in, by the request timeout (service.middleware.timeout).
"""

import asyncio
import functools

# httptools comes with uvicorn[standard], a dependency; it is also what uvicorn's "auto" picks.
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def protocol(head_timeout_s: float) -> functools.partial:
    """What to pass as uvicorn's `http`: a picklable factory, so --workers processes get it too."""
    return functools.partial(HeadTimeoutProtocol, head_timeout_s=head_timeout_s)


class HeadTimeoutProtocol(HttpToolsProtocol):
    def __init__(self, *args, head_timeout_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._head_timeout_s = head_timeout_s
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        # The first byte of a later request on a kept-alive connection (uvicorn's keep-alive
        # timer stopped at that byte). A timer still running since connect is left as it is.
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

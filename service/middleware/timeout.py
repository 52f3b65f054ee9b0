"""504 when a request has not started its response within the timeout.

The deadline covers the time to the response's first byte: a streamed response (server-sent
events of generate_stream) may run on once it has started. On expiry the request's task is
cancelled where it awaits; work already handed to an ONNX Runtime thread finishes there and is
dropped. When the deadline finds the route still waiting for the client's body, the client is
the slow one: that is a 408, and the connection is closed, since it stands in the middle of a
body. One timer per request on the event loop: what asyncio.timeout does, at half the cost.
"""

import asyncio

from service.errors import ClientTimeout, RequestTimeout
from service.protocol.errors import send_error


class TimeoutMiddleware:
    def __init__(self, app, timeout_s: float):
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        expired = started = reading_body = False

        def expire():
            nonlocal expired
            expired = True
            task.cancel()

        timer = loop.call_at(loop.time() + self.timeout_s, expire)

        async def receive_noting_waits():
            nonlocal reading_body
            reading_body = True  # left True when the deadline cancels the wait
            message = await receive()
            reading_body = False
            return message

        async def send_and_lift_deadline(message):
            nonlocal started
            if not started:
                started = True
                timer.cancel()
            await send(message)

        try:
            await self.app(scope, receive_noting_waits, send_and_lift_deadline)
        except asyncio.CancelledError:
            if not expired or started:  # someone else's cancellation (shutdown, disconnect)
                raise
            task.uncancel()  # ours, and handled here
            await send_error(send, expiry(reading_body, self.timeout_s))
        finally:
            timer.cancel()


def expiry(reading_body: bool, timeout_s: float) -> ClientTimeout | RequestTimeout:
    """The answer to a request whose deadline passed (here and on service.http_infer's path):
    408 while the client still owed its body, else 504."""
    if reading_body:
        return ClientTimeout(f"request body not received within {timeout_s:g} s")
    return RequestTimeout(f"request did not complete within {timeout_s:g} s")

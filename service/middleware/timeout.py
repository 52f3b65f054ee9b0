"""504 when a request has not started its response within the timeout.

The deadline covers the time to the response's first byte: a streamed response (server-sent
events of generate_stream) may run on once it has started. On expiry the route is cancelled
where it awaits; work already handed to an ONNX Runtime thread finishes there and is dropped.
When the deadline finds the route still waiting for the client's body, the client is the slow
one: that is a 408, and the connection is closed, since it stands in the middle of a body.
"""

import asyncio

from service.errors import ClientTimeout, RequestTimeout
from service.middleware.reply import send_error


class TimeoutMiddleware:
    def __init__(self, app, timeout_s: float):
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        reading_body = False

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
                deadline.reschedule(None)
            await send(message)

        try:
            async with asyncio.timeout(self.timeout_s) as deadline:
                await self.app(scope, receive_noting_waits, send_and_lift_deadline)
        except TimeoutError:
            if started or not deadline.expired():  # a timeout of the route's own making
                raise
            if reading_body:
                await send_error(send, ClientTimeout(
                    f"request body not received within {self.timeout_s:g} s"))
                return
            await send_error(send, RequestTimeout(
                f"request did not complete within {self.timeout_s:g} s"))

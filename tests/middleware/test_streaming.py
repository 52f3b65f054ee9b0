"""Streamed responses (server-sent events) pass through the whole stack chunk by chunk.

Driven as ASGI calls: the app sends its next event only once the previous one has reached the
server, so a middleware that buffered the response would deadlock here instead of passing.
"""

import asyncio

from service.middleware import install
from service.settings import Settings

EVENTS = [f"data: {{\"step\": {i}}}\n\n".encode() for i in range(5)]


class Stack:
    """Just enough of Starlette's add_middleware to let `install` build the real stack."""

    def __init__(self, app):
        self.app = app

    def add_middleware(self, cls, **kwargs):
        self.app = cls(self.app, **kwargs)


def test_events_stream_through_every_middleware():
    delivered: list[bytes] = []
    sent = asyncio.Event()

    async def sse_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for event in EVENTS:
            sent.clear()
            await send({"type": "http.response.body", "body": event, "more_body": True})
            await asyncio.wait_for(sent.wait(), timeout=5)  # the server got it before we go on
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    started: list[dict] = []

    async def server_send(message):
        if message["type"] == "http.response.start":
            started.append(message)
        elif message.get("body"):
            delivered.append(message["body"])
            sent.set()

    settings = Settings(api_keys=["k"], cors_allow_origins=["https://app.example"], request_timeout_s=30)
    stack = Stack(sse_app)
    install(stack, settings)
    scope = {"type": "http", "method": "POST", "path": "/v2/models/m/generate_stream", "root_path": "",
             "headers": [(b"authorization", b"Bearer k"), (b"origin", b"https://app.example")]}
    asyncio.run(stack.app(scope, receive, server_send))

    assert delivered == EVENTS
    headers = dict(started[0]["headers"])
    assert started[0]["status"] == 200 and b"x-request-id" in headers
    assert headers[b"access-control-allow-origin"] == b"https://app.example"


def test_the_timeout_stops_at_the_first_byte_of_a_stream():
    """A stream may run past the request timeout once it has started answering."""

    async def long_stream(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.3)  # beyond the 0.05 s timeout below
        await send({"type": "http.response.body", "body": b"late", "more_body": False})

    messages: list[dict] = []

    async def server_send(message):
        messages.append(message)

    stack = Stack(long_stream)
    install(stack, Settings(request_timeout_s=0.05))
    scope = {"type": "http", "method": "GET", "path": "/x", "root_path": "", "headers": []}
    asyncio.run(stack.app(scope, None, server_send))
    assert [m.get("status") for m in messages] == [200, None] and messages[1]["body"] == b"late"

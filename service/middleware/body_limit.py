"""413 for a request body over the limit, on every route, before the body is read whole.

A declared Content-Length over the limit is refused before a byte of the body is read; a
chunked body (no Content-Length) is counted as it streams and refused at the chunk that
crosses the limit. The
route reading it gets PayloadTooLarge from `receive`, and whatever it then answers is replaced
with the 413 (FastAPI turns errors while parsing a body into 400s).
"""

from service.errors import PayloadTooLarge, too_large
from service.middleware.reply import header
from service.protocol.errors import send_error


class BodyLimitMiddleware:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await send_error(send, too_large(limit, int(declared)))
                return
            # The HTTP parser hands the app exactly Content-Length bytes: nothing to count.
            await self.app(scope, receive, send)
            return

        received = 0
        refused: PayloadTooLarge | None = None
        started = False

        async def counting_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = too_large(limit)
                    raise refused
            return message

        async def guarded_send(message):
            nonlocal started
            if refused is None:
                started = True
                await send(message)
            elif not started and message["type"] == "http.response.start":
                started = True
                await send_error(send, refused)
            # Anything else the app sends after the refusal is dropped.

        try:
            await self.app(scope, counting_receive, guarded_send)
        except PayloadTooLarge:
            if refused is None or started:
                raise
            await send_error(send, refused)

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
        declared = declared_length(header(scope, b"content-length"))
        if declared is not None:
            refused = refusal(declared, limit)
            if refused is not None:
                await send_error(send, refused)
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


def declared_length(value: bytes | None) -> int | None:
    """A Content-Length header's value as a number; None when absent or not plain digits."""
    return int(value) if value is not None and value.isdigit() else None


def refusal(declared: int, limit: int) -> PayloadTooLarge | None:
    """The 413 for a body declared over the limit (here and on service.http_infer's path)."""
    return too_large(limit, declared) if declared > limit else None

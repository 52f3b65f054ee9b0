"""Answering from a middleware: the app's error handler is not reached from out here."""

import orjson

from service.errors import ServiceError


async def send_error(send, error: ServiceError) -> None:
    """Send `error` as {"error": ...} with its status and headers."""
    body = orjson.dumps({"error": error.message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def header(scope, name: bytes) -> bytes | None:
    """The first value of a request header; `name` in lower case, as ASGI gives it."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None

"""The one HTTP rendering of errors: `{"error": message}` with the kind's status and headers.

Used by the app's exception handlers, by the ASGI fronts and middlewares (which answer before
the app's handlers could), and by a stream that has already started (its last event).
"""

import logging

import orjson

from service.errors import INTERNAL_MESSAGE, ServiceError

log = logging.getLogger(__name__)

_JSON = (b"content-type", b"application/json")


def error_document(exc: BaseException) -> dict:
    return {"error": exc.message if isinstance(exc, ServiceError) else INTERNAL_MESSAGE}


def render(exc: BaseException, where: str = "") -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """(status, body, raw headers) for `exc`; anything but a ServiceError is a logged 500."""
    if isinstance(exc, ServiceError):
        status, headers = exc.status_code, [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    else:
        log.error("unhandled error on %s", where or "a request", exc_info=exc)
        status, headers = 500, []
    body = orjson.dumps(error_document(exc))
    return status, body, [_JSON, (b"content-length", str(len(body)).encode()), *headers]


async def send_error(send, exc: BaseException, where: str = "") -> None:
    """Answer an ASGI request with the rendering of `exc`."""
    status, body, headers = render(exc, where)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

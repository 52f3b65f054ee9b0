"""A request id on every response (X-Request-ID), and one JSON log line per request when the
access log is on (`--access-log`; off by default, as in Triton).

The id is the client's X-Request-ID when it sends a sane one (so a trace spans the load
balancer and the replicas), else a new one. The line carries no headers and no body: keys and
tensors never reach the log.
"""

import itertools
import logging
import os
import time

from service import access_log
from service.middleware.reply import header
from service.middleware.routes import model_in_path

log = access_log.log

_MAX_ID_LENGTH = 128
# Ids need to be unique, not secret: a random prefix per process and a counter, far cheaper
# per request than uuid4's read of os.urandom.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


class RequestLogMiddleware:
    def __init__(self, app, log_lines: bool = True):
        self.app = app
        self.log_lines = log_lines  # False: the id only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.log_lines:
            await self._with_id(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(header(scope, b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500  # what the client sees when the app fails before it answers

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if log.isEnabledFor(logging.INFO):
                # Routing has filled path_params in this same scope by now, unless the
                # request was refused before it (401, 413): then read them off the path.
                params = scope.get("path_params") or model_in_path(scope["path"])
                access_log.http_request(request_id, scope["method"], scope["path"], params.get("name"),
                                        params.get("version"), status, started)


    async def _with_id(self, scope, receive, send):
        request_id = request_id_from(header(scope, b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id_from(given: bytes | None) -> str:
    global _id_block
    # Printable ASCII only, bounded, so a client can't forge log lines or bloat them.
    if given and len(given) <= _MAX_ID_LENGTH and given.isascii():
        text = given.decode()
        if text.isprintable():
            return text
    # A new id: the prefix and the counter as 16 hex digits, the last two from a table and the
    # rest made once per 256 ids (formatting the counter was most of an id's cost: ~0.6 -> ~0.3 µs).
    n = next(_ID_COUNTER)
    block = _id_block  # read once: another thread may replace it meanwhile
    if block[0] != n >> 8:
        block = _id_block = (n >> 8, f"{_ID_PREFIX}{n >> 8:014x}")
    return block[1] + _HEX_BYTE[n & 0xFF]


_HEX_BYTE = [f"{i:02x}" for i in range(256)]
_id_block = (-1, "")  # (counter >> 8, a new id's text before its last two hex digits)

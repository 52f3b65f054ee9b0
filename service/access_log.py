"""The access log's one JSON line per request, cheap enough to leave on by default.

Through stdlib logging a line costs a LogRecord, the handler's lock, the formatter and a write
plus flush (a system call) per request: a measured fifth of a 1-row infer's CPU at 64
connections (docs/BENCHMARKS.md). When the line would reach only the one stderr handler that
service.logs.config installs (the usual case), it is formatted here exactly as that handler's
JSONFormatter would, and lines are written in batches (_Batch). Any other logging set-up (more
handlers, filters, another formatter) gets each line as a record through logging, as before.
"""

import asyncio
import atexit
import logging
import time

import orjson

from service.logs import JSONFormatter, timestamp

log = logging.getLogger("modelserve.access")

_PREFIX = b'{"time":"%s","level":"info","logger":"modelserve.access","message":"request",'


def request(entry: dict) -> None:
    """Log one request: `entry` holds its fields (request_id, method, path, model, status...)."""
    if not log.isEnabledFor(logging.INFO):
        return
    handler = _batch.handler
    if handler is None:
        handler = _plain_handler()
        if handler is None:
            log.info("request", extra={"access": entry})
            return
    # The record's fields follow the formatter's four, in the order JSONFormatter writes them.
    line = _PREFIX % timestamp(time.time()).encode() + orjson.dumps(entry, default=str)[1:]
    if _batch.handler is None and not _batch.start(handler):
        _write(handler, [line])  # no event loop in this thread: write it now
        return
    _batch.add(line)


class _Batch:
    """Lines waiting to be written, and the handler they go to. As nginx's `access_log ...
    buffer= flush=`: written when 64 KiB have gathered or 50 ms after the first, not per line
    nor per turn of the event loop (measured: a write per turn was a third of the log's cost)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.size = 0
        self.handler: logging.StreamHandler | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self, handler: logging.StreamHandler) -> bool:
        """Collect lines for a while; False when this thread runs no event loop."""
        try:
            self._timer = asyncio.get_running_loop().call_later(_FLUSH_AFTER_S, self.flush)
        except RuntimeError:
            return False
        self.handler = handler
        return True

    def add(self, line: bytes) -> None:
        self.lines.append(line)
        self.size += len(line)
        if self.size >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        handler, self.handler = self.handler, None
        lines, self.lines, self.size = self.lines, [], 0
        if handler is not None and lines:
            _write(handler, lines)


_FLUSH_AFTER_S = 0.05
_FLUSH_BYTES = 64 * 1024
_batch = _Batch()


def flush() -> None:
    """Write the lines still gathered (the app's shutdown calls it, and so does atexit)."""
    _batch.flush()


atexit.register(flush)


def _write(handler: logging.StreamHandler, lines: list[bytes]) -> None:
    data = b"\n".join(lines) + b"\n"
    handler.acquire()  # the lock StreamHandler.emit holds: lines from other threads stay whole
    try:
        stream = handler.stream
        raw = getattr(stream, "buffer", None)  # the bytes under a text stream such as stderr
        if raw is None:
            stream.write(data.decode())
        else:
            stream.flush()  # what other records left in the text layer goes first
            raw.write(data)
            raw.flush()
        stream.flush()
    except (OSError, ValueError):  # a closed or broken stderr: logging too drops the line
        pass
    finally:
        handler.release()


def _plain_handler() -> logging.StreamHandler | None:
    """The one handler this logger's records reach, when it is a plain StreamHandler with our
    JSON formatter and nothing on the way filters; else None (log through logging)."""
    found = []
    logger = log
    while logger is not None:
        if logger.filters:
            return None
        found.extend(logger.handlers)
        if not logger.propagate:
            break
        logger = logger.parent
    if len(found) != 1:
        return None
    handler = found[0]
    if type(handler) is not logging.StreamHandler or handler.filters or handler.level > logging.INFO:
        return None
    if type(handler.formatter) is not JSONFormatter:
        return None
    return handler


def http_request(request_id: str, method: str, path: str, model: str | None, version: str | None,
                 status: int, started: float) -> None:
    """The line of one HTTP request (the ASGI middleware's and the fast path's): `started` is
    its time.perf_counter() at arrival."""
    # Whole microseconds: the value round(ms, 3) gives but at a tie, for half round()'s cost.
    duration_ms = int((time.perf_counter() - started) * 1e6 + 0.5) / 1000
    if _batch.handler is None or type(request_id) is not str or not log.isEnabledFor(logging.INFO):
        request({"request_id": request_id, "method": method, "path": path, "model": model, "version": version,
                 "status": status, "duration_ms": duration_ms})
        return
    # The line `request` would write for this entry, from pieces: the method, path, model and
    # version of most lines are a few strings, whose JSON is kept (measured: the dict and its
    # orjson.dumps were half the cost of a line; making the lines at flush time, all in one
    # orjson call, cost more than this).
    where = (method, path, model, version)
    text = _texts.get(where)
    if text is None:
        text = b'"method":%s,"path":%s,"model":%s,"version":%s' % tuple(orjson.dumps(v, default=str) for v in where)
        if len(_texts) < _MOST_TEXTS:  # paths and names come from clients: keep a bounded number
            _texts[where] = text
    _batch.add(_HTTP_LINE % (_time_text(), orjson.dumps(request_id), text, status, orjson.dumps(duration_ms)))


_HTTP_LINE = _PREFIX + b'"request_id":%s,%s,"status":%d,"duration_ms":%s}'
_texts: dict[tuple, bytes] = {}
_MOST_TEXTS = 4096
_time: tuple[int, bytes] = (0, b"")


def _time_text() -> bytes:
    """logs.timestamp's text of now, as bytes (made again once a millisecond)."""
    global _time
    now = time.time()
    milli = int(now * 1000)
    if milli != _time[0]:
        _time = (milli, timestamp(now).encode())
    return _time[1]

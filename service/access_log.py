"""The access log's one JSON line per request (`--access-log`; off by default), made cheap.

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
        # A line, or an HTTP request's fields (http_request's, and perf_counter at its end) to
        # make its line from when the batch is written (_made).
        self.lines: list[bytes | tuple] = []
        self.size = 0  # bytes of the lines made already
        self.handler: logging.StreamHandler | None = None
        self._timer: asyncio.TimerHandle | None = None
        # time.time() - time.perf_counter(), taken as each batch starts: a line's wall-clock time
        # from the perf_counter reading its duration needs (one clock call a line, not two),
        # following any step of the wall clock within a batch's 50 ms.
        self.clock = 0.0

    def start(self, handler: logging.StreamHandler) -> bool:
        """Collect lines for a while; False when this thread runs no event loop."""
        try:
            self._timer = asyncio.get_running_loop().call_later(_FLUSH_AFTER_S, self.flush)
        except RuntimeError:
            return False
        self.handler = handler
        self.clock = time.time() - time.perf_counter()
        return True

    def add(self, line: bytes) -> None:
        self.lines.append(line)
        self.size += len(line)
        if self.size >= _FLUSH_BYTES or len(self.lines) >= _FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        handler, self.handler = self.handler, None
        lines, self.lines, self.size = self.lines, [], 0
        if handler is not None and lines:
            _write(handler, _made(lines, self.clock))


_FLUSH_AFTER_S = 0.05
_FLUSH_BYTES = 64 * 1024
_FLUSH_LINES = 256  # ~64 KiB of infer lines (~250 bytes each)
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
    now = time.perf_counter()
    batch = _batch
    if batch.handler is None:
        # The first line of a batch: `request` checks the level and the handler, and opens one.
        request({"request_id": request_id, "method": method, "path": path, "model": model, "version": version,
                 "status": status, "duration_ms": _duration_ms(now - started)})
        return
    # The request's fields are kept and its line made with the batch's others when they are
    # written (_made): in one loop its code and data stay in the caches, where a line made here,
    # between requests, cost nearly three times as much (measured in bench/inprocess.py's
    # server: 3.1 µs a line made per request, 1.1 made in the batch's loop).
    lines = batch.lines
    lines.append((request_id, method, path, model, version, status, started, now))
    if len(lines) >= _FLUSH_LINES:
        batch.flush()


def _made(lines: list, clock: float) -> list[bytes]:
    """The batch's lines, each HTTP request's made from its fields: the line `request` would
    write for it, joined from pieces (a bytes join is half a %-format's cost). The text up to
    the request id is made once a millisecond, and the method, path, model, version and status
    of most lines are a few values whose JSON is kept. `clock` turns perf_counter into the wall
    clock's time."""
    made, milli, head, dumps, middles = [], -1, b"", orjson.dumps, _middles
    for line in lines:
        if type(line) is bytes:
            made.append(line)
            continue
        request_id, method, path, model, version, status, started, now = line
        if (at := int((now + clock) * 1000)) != milli:
            milli, head = at, _HEAD % timestamp((at + 0.5) / 1000).encode()
        where = (method, path, model, version, status)
        # (one line's pieces joined at once: all the batch's pieces in one join measured 5x slower)
        made.append(b"".join((head, dumps(request_id, default=str), middles.get(where) or _middle(where),
                              dumps(int((now - started) * 1e6 + 0.5) / 1000), b"}")))  # as _duration_ms
    return made


def _duration_ms(seconds: float) -> float:
    # Whole microseconds: the value round(ms, 3) gives but at a tie, for half round()'s cost.
    return int(seconds * 1e6 + 0.5) / 1000


def _middle(where: tuple) -> bytes:
    """`,"method":...,"version":...,"status":N,"duration_ms":` of a line (its JSON after the id)."""
    method, path, model, version, status = where
    middle = b',"method":%s,"path":%s,"model":%s,"version":%s,"status":%s,"duration_ms":' % (
        *(orjson.dumps(v, default=str) for v in (method, path, model, version)), orjson.dumps(status, default=str))
    if len(_middles) < _MOST_MIDDLES:  # paths and names come from clients: keep a bounded number
        _middles[where] = middle
    return middle


_HEAD = _PREFIX + b'"request_id":'
_middles: dict[tuple, bytes] = {}
_MOST_MIDDLES = 4096

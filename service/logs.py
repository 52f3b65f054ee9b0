"""Logging as JSON lines on stderr, for the service and for uvicorn, in every worker process.

`config(level)` is a logging.dictConfig dict handed to uvicorn, which applies it in the main
process and in each worker. uvicorn's own access log is off: service.access_log writes ours.
"""

import logging
import time

import orjson

# Attributes every LogRecord has; anything else came in through `extra=` and is kept.
# uvicorn's color_message is its message again, with terminal escapes.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName", "color_message"}

# The lines carry no source file, line, thread or process: don't have every record look them
# up (the logging HOWTO's "Optimization"; the caller's frame walk is the dearest). One access
# line per request made these a measurable share of a 1-row infer (bench/profile_infer.py).
logging._srcfile = None
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False


_second, _second_text = -1, ""  # the last second formatted: most lines share it
_milli, _milli_text = -1, ""  # and the last millisecond: many access lines share that


def timestamp(created: float) -> str:
    """A line's time as the lines write it: UTC, milliseconds, `2026-11-25T14:22:33.512Z`."""
    global _second, _second_text, _milli, _milli_text
    milli = int(created * 1000)
    if milli == _milli:
        return _milli_text
    second = milli // 1000
    if second != _second:
        _second_text, _second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)), second
    _milli_text, _milli = f"{_second_text}.{milli % 1000:03d}Z", milli
    return _milli_text


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if access is not None:
            entry.update(access)
        extra = record.__dict__.keys() - _STANDARD
        if extra:
            extra.discard("access")
            for key in extra:
                entry[key] = record.__dict__[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def config(level: str = "info") -> dict:
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JSONFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's loggers keep no handlers of their own: their records reach ours.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }

"""The access log writes a request's line itself, byte for byte as logging's JSON formatter would."""

import asyncio
import io
import json
import logging

import pytest

from service import access_log
from service.logs import JSONFormatter


@pytest.fixture
def patched(monkeypatch):
    yield monkeypatch
    access_log.flush()
    access_log.log.manager._clear_cache()  # before monkeypatch puts the levels back (it tears down after)


def only_handler(monkeypatch) -> io.BytesIO:
    """The one stderr-like handler service.logs.config installs, writing into memory. Set in
    the test itself: pytest adds its capturing handlers to the root logger after fixtures run."""
    raw = io.BytesIO()
    handler = logging.StreamHandler(io.TextIOWrapper(raw, encoding="utf-8", write_through=True))
    handler.setFormatter(JSONFormatter())
    monkeypatch.setattr(logging.root, "handlers", [handler])
    monkeypatch.setattr(logging.root, "level", logging.INFO)
    monkeypatch.setattr(access_log.log, "level", logging.NOTSET)
    access_log.log.manager._clear_cache()
    return raw


CALLS = [
    ("0123456789abcdef", "POST", "/v2/models/mlp/infer", "mlp", None, 200),
    ('q"uote\\back', "POST", "/v2/models/na\u00efve\"x/versions/2/infer", "na\u00efve\"x", "2", 404),
    ("id-3", "GET", "/v2/health/live", None, None, 200),
]


def test_lines_are_what_the_formatter_writes(patched):
    stream = only_handler(patched)

    async def log_all():
        for call in CALLS * 2:  # the first line of a batch goes through logging, the rest not
            access_log.http_request(*call, started=0.0)
        access_log.flush()

    asyncio.run(log_all())
    lines = stream.getvalue().decode().splitlines()
    assert len(lines) == 2 * len(CALLS)
    for line, (request_id, method, path, model, version, status) in zip(lines, CALLS * 2):
        written = json.loads(line)
        entry = {"request_id": request_id, "method": method, "path": path, "model": model, "version": version,
                 "status": status, "duration_ms": written["duration_ms"]}
        record = logging.LogRecord("modelserve.access", logging.INFO, __file__, 0, "request", None, None)
        record.created = 0.0
        record.access = entry
        expected = JSONFormatter().format(record)
        assert line == expected.replace('"1970-01-01T00:00:00.000Z"', json.dumps(written["time"]))


def test_lines_are_written_within_the_batch_window_when_traffic_stops(patched):
    # Lines gather for at most 50 ms: the last requests before a quiet spell are not held back.
    stream = only_handler(patched)

    async def two_then_quiet():
        for call in CALLS[:2]:  # the second is kept as fields and made when the batch is written
            access_log.http_request(*call, started=0.0)
        await asyncio.sleep(0.3)
        return stream.getvalue().decode().splitlines()

    lines = asyncio.run(two_then_quiet())
    assert [json.loads(line)["request_id"] for line in lines] == [CALLS[0][0], CALLS[1][0]]

"""Reading the server's JSON access log lines back in tests."""

import json
import time
from pathlib import Path


def log_path(repo: Path, url: str) -> Path:
    """Where tests.conftest.Server writes the log of the server at `url`."""
    return repo.parent / f"server-{url.rsplit(':', 1)[1]}.log"


def access_lines(path: Path) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "modelserve.access"]


def line_for(path: Path, request_id: str, timeout: float = 10.0) -> dict:
    """The request's line, once written: the server logs it just after the last byte is sent."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in access_lines(path) if line["request_id"] == request_id]
        if found or time.monotonic() > deadline:
            [line] = found
            return line
        time.sleep(0.02)

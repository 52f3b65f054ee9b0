"""Drive wrk (Debian's) with a request body from a file and parse what it reports."""

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LUA = """
wrk.method = "POST"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
{headers}
"""


@dataclass
class Result:
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, body: bytes, headers: dict[str, str], connections: int, seconds: float) -> Result:
    with tempfile.TemporaryDirectory() as folder:
        body_path = Path(folder) / "body"
        body_path.write_bytes(body)
        header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
        script = Path(folder) / "post.lua"
        script.write_text(LUA.format(body=body_path, headers=header_lines))
        threads = 1 if connections < 4 else 2
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), url],
            capture_output=True, text=True, check=True,
        ).stdout
    return Result(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_latency(out, "50%"),
        p90_ms=_latency(out, "90%"),
        p99_ms=_latency(out, "99%"),
        errors=_errors(out),
    )


def _latency(out: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", out).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _errors(out: str) -> int:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)

"""A closed-loop HTTP/1.1 load generator that checks answers.

Each connection sends a request, waits for its whole answer, and sends the next (keep-alive).
Requests rotate through a pool of distinct inputs whose expected outputs ONNX Runtime computed
in this process, so a server that mixes up the rows of a batch answers wrong and is caught.
Every answer's status and framing is read; every `check_every`-th answer is decoded and compared
with ORT's output, and one wrong answer raises WrongAnswer. Written on raw asyncio protocols
(uvloop when present) so one client core drives several times what any Python server answers.
"""

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import orjson

try:
    import uvloop
except ImportError:  # plain asyncio works, a little slower
    uvloop = None

Decode = Callable[[dict[bytes, bytes], bytes], np.ndarray]  # (headers, body) -> the output tensor


class WrongAnswer(AssertionError):
    """A server answered 200 with an output that is not ONNX Runtime's."""


@dataclass
class Case:
    """One request on the wire and the output it must produce."""

    request: bytes  # the whole HTTP request, head and body
    expected: np.ndarray
    decode: Decode
    inputs: np.ndarray | None = None  # what the request carries, for a client that writes its own
    # float32 results of the same graph on the same inputs: ONNX Runtime's own CPU kernels for one
    # row and for a batch agree to the bit on the bench's MLP, so this is room for another
    # build's kernels, not for a different answer (0.01 off is caught: tests/bench).
    rtol: float = 1e-4
    atol: float = 1e-5


@dataclass
class Result:
    connections: int
    requests: int
    seconds: float
    latencies_ms: np.ndarray
    errors: int  # non-2xx answers and dropped connections
    checked: int  # answers decoded and compared with ONNX Runtime
    client_cpu_s: float  # this process's CPU time in the window
    first_error: str = ""
    server_cpu_s: float | None = None

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


def http_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def decode_json(output: str) -> Decode:
    def decode(headers: dict[bytes, bytes], body: bytes) -> np.ndarray:
        for tensor in orjson.loads(body)["outputs"]:
            if tensor["name"] == output:
                return np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        raise WrongAnswer(f"no output {output!r} in {body[:200]!r}")

    return decode


def decode_binary(output: str) -> Decode:
    """The binary tensor data extension: a JSON header, then each binary output in order."""

    def decode(headers: dict[bytes, bytes], body: bytes) -> np.ndarray:
        length = int(headers[b"inference-header-content-length"])
        offset = length
        for tensor in orjson.loads(body[:length])["outputs"]:
            size = tensor["parameters"]["binary_data_size"]
            if tensor["name"] == output:
                return np.frombuffer(body[offset:offset + size], dtype=np.float32).reshape(tensor["shape"])
            offset += size
        raise WrongAnswer(f"no output {output!r} in {body[:length]!r}")

    return decode


def check(case: Case, headers: dict[bytes, bytes], body: bytes, pool: Sequence[Case] = ()) -> None:
    """Raise WrongAnswer unless the answer is ONNX Runtime's output for the case's input. The
    message says how far off it is and, from `pool`, whose answer it is when it is another
    request's (rows mixed up between requests) rather than a numeric difference."""
    try:
        got = case.decode(headers, body)
    except (KeyError, ValueError, TypeError) as exc:
        raise WrongAnswer(f"undecodable answer ({exc!r}): {body[:200]!r}") from exc
    if got.shape == case.expected.shape and np.allclose(got, case.expected, rtol=case.rtol, atol=case.atol):
        return
    if got.shape != case.expected.shape:
        how = f"shape {got.shape} vs {case.expected.shape}"
    else:
        how = f"shape {got.shape}, largest difference {float(np.abs(got - case.expected).max()):.3g}"
        others = [i for i, other in enumerate(pool) if other is not case and other.expected.shape == got.shape
                  and np.allclose(got, other.expected, rtol=case.rtol, atol=case.atol)]
        if others:
            how += f"; it is the answer to another request's input (#{others[0]} of {len(pool)})"
        elif pool:
            how += f"; it is no other request's answer either ({len(pool)} compared)"
    raise WrongAnswer(f"answer differs from ONNX Runtime's: got {got.reshape(-1)[:4]}..., "
                      f"expected {case.expected.reshape(-1)[:4]}... ({how})")




class _Connection(asyncio.Protocol):
    """One keep-alive connection; `exchange` sends a request and returns (status, headers, body)."""

    def __init__(self):
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def data_received(self, data):
        self.buffer += data
        answer = self._parse()
        if answer is not None and self.waiter and not self.waiter.done():
            self.waiter.set_result(answer)

    def _parse(self):
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body, used = _dechunk(self.buffer, start)
            if body is None:
                return None
            del self.buffer[:used]
        else:
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < start + length:
                return None
            body = bytes(self.buffer[start:start + length])
            del self.buffer[:start + length]
        return int(lines[0].split(b" ", 2)[1]), headers, body

    async def exchange(self, request: bytes):
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes | None, int]:
    body, at = bytearray(), start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None, 0
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        if len(buffer) < line_end + 2 + size + 2:
            return None, 0
        body += buffer[line_end + 2:line_end + 2 + size]
        at = line_end + 2 + size + 2
        if size == 0:
            return bytes(body), at


@dataclass
class _Tally:
    window: tuple[float, float]
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    checked: int = 0
    answers: int = 0
    first_error: str = ""


async def _drive(host: str, port: int, cases: Sequence[Case], connections: int, seconds: float,
                 warmup: float, check_every: int, on_window: Callable[[str], None]) -> _Tally:
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_Connection, host, port))[1] for _ in range(connections)]
    now = time.perf_counter()
    tally = _Tally(window=(now + warmup, now + warmup + seconds))
    window_start, deadline = tally.window

    async def window_marks():
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        on_window("start")
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        on_window("end")

    async def worker(index: int, conn: _Connection) -> None:
        i = index * 7  # connections start at different inputs
        while (began := time.perf_counter()) < deadline or i == index * 7:  # at least one each
            case = cases[i % len(cases)]
            i += 1
            try:
                status, headers, body = await conn.exchange(case.request)
            except ConnectionError as exc:
                tally.errors += 1
                tally.first_error = tally.first_error or str(exc)
                return
            done = time.perf_counter()
            tally.answers += 1
            if status != 200:
                tally.errors += 1
                tally.first_error = tally.first_error or f"{status}: {body[:200]!r}"
            elif tally.answers % check_every == 0:
                check(case, headers, body, cases)
                tally.checked += 1
            if window_start <= done <= deadline:  # answers completed in the window count
                tally.latencies.append(done - began)

    marks = asyncio.create_task(window_marks())
    try:
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(conns)))
    finally:
        for conn in conns:
            conn.transport.close()
    await marks
    return tally


def run(url: str, cases: Sequence[Case], connections: int, seconds: float, warmup: float = 1.0,
        check_every: int = 4, server_cpu: Callable[[], float] | None = None) -> Result:
    """Drive the server at `url` (scheme, host, port: the cases hold the path) with `connections` closed loops for warmup + seconds; count the window.

    The first answer of every connection is always checked; after that every `check_every`-th.
    `server_cpu` (CPU seconds of the server so far) is read at the window's edges.
    """
    host, port = urlsplit(url).hostname, urlsplit(url).port
    marks: dict[str, tuple[float, float | None]] = {}

    def on_window(edge: str) -> None:
        marks[edge] = (sum(os.times()[:2]), server_cpu() if server_cpu else None)

    runner = asyncio.Runner(loop_factory=uvloop.new_event_loop) if uvloop else asyncio.Runner()
    with runner:
        # One checked answer per connection first: a wrong server fails before it is timed.
        warm = runner.run(_drive(host, int(port), cases, connections, 0.0, 0.0, 1, lambda edge: None))
        if warm.errors:
            raise RuntimeError(f"the server failed before the run: {warm.first_error}")
        tally = runner.run(_drive(host, int(port), cases, connections, seconds, warmup, check_every, on_window))
    latencies = np.array(tally.latencies) * 1000
    server = marks["end"][1] - marks["start"][1] if server_cpu else None
    return Result(connections=connections, requests=len(latencies), seconds=seconds, latencies_ms=latencies, errors=tally.errors,
                  checked=tally.checked + warm.checked, client_cpu_s=marks["end"][0] - marks["start"][0],
                  first_error=tally.first_error, server_cpu_s=server)

"""wrk with every answer checked: the load generator for rates a Python client would cap.

bench/loadgen.py checks answers but needs 35-45% of a core at a few thousand requests a
second; on a machine whose cores the server uses too (`--workers 2` on 2 cores) that share is
taken from the server. wrk (C, LuaJIT) drives the same closed loops for a fraction of that, and
its Lua `response()` sees every answer:

- each distinct request carries an `id`, which V2 echoes in its answer;
- `expected()` sends each request once from Python and checks the answer numerically against
  ONNX Runtime's own output (bench/loadgen.py's check), keeping its exact bytes;
- under load, the Lua script finds each answer's `id` and compares the whole body with the
  verified one byte for byte; a JSON answer that differs only in the last digits of its numbers
  (another batch composition may round differently on some machines) is accepted when every
  number is within the same tolerance as loadgen's check, and counted apart;
- any other answer, or a status other than 200, counts as wrong, and `run` raises WrongAnswer.
"""

import re
import resource
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import loadgen
import orjson

# Lua 5.1 (LuaJIT): `%q` quoting of file names; globals are per thread, read in done() by thread:get.
LUA = r"""
local paths = {paths}
local expected_paths = {expected}
local headers = {headers}
local requests, expected = {}, {}
wrong, exact, close, non_200, first_wrong = 0, 0, 0, 0, ""
local next_request = 0
local threads = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i, path in ipairs(paths) do
    requests[i] = wrk.format("POST", nil, headers, read(path))
  end
  for id, path in pairs(expected_paths) do
    expected[id] = read(path)
  end
  next_request = math.random(#requests) - 1  -- threads start at different requests
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

local NUMBER = "%-?%d+%.?%d*[eE]?[-+]?%d*"

-- Every number of `got` within rtol 1e-4, atol 1e-5 of `want`'s, in the same text around them.
local function within_tolerance(got, want)
  if got:gsub(NUMBER, "#") ~= want:gsub(NUMBER, "#") then
    return false
  end
  local wanted = {}
  for n in want:gmatch(NUMBER) do
    wanted[#wanted + 1] = tonumber(n)
  end
  local i = 0
  for n in got:gmatch(NUMBER) do
    i = i + 1
    local a, b = tonumber(n), wanted[i]
    if a == nil or b == nil or math.abs(a - b) > 1e-5 + 1e-4 * math.abs(b) then
      return false
    end
  end
  return i == #wanted
end

local function fail(why)
  wrong = wrong + 1
  if first_wrong == "" then
    first_wrong = why
  end
end

function response(status, response_headers, body)
  if status ~= 200 then
    non_200 = non_200 + 1
    fail("status " .. status .. ": " .. body:sub(1, 200))
    return
  end
  local id = body:match('"id":"(r%d+)"')
  local want = id and expected[id]
  if want == nil then
    fail("no known id in " .. body:sub(1, 200))
  elseif body == want then
    exact = exact + 1
  elseif within_tolerance(body, want) then
    close = close + 1
  else
    fail("answer to " .. id .. " differs from the verified one: " .. body:sub(1, 200))
  end
end

function done(summary, latency, requests_done)
  local totals = {wrong = 0, exact = 0, close = 0, non_200 = 0}
  local first = ""
  for _, thread in ipairs(threads) do
    for key, _ in pairs(totals) do
      totals[key] = totals[key] + thread:get(key)
    end
    if first == "" then
      first = thread:get("first_wrong")
    end
  end
  io.write(string.format("CHECKED exact %d close %d wrong %d non_200 %d\n",
                         totals.exact, totals.close, totals.wrong, totals.non_200))
  io.write("FIRST_WRONG " .. first:gsub("\n", " ") .. "\n")
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("P%d %.3f\n", p, latency:percentile(p) / 1000))
  end
end
"""


@dataclass
class Checked:
    """One distinct request with its id, and the verified answer to it."""

    id: str
    body: bytes
    expected: bytes


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    exact: int  # answers byte for byte the verified ones
    close: int  # JSON answers within tolerance of them (other digits)
    wrong: int  # anything else, non-200 included
    non_200: int
    socket_errors: int
    client_cpu_s: float  # wrk's own CPU time (user + system)
    first_wrong: str = ""

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def checked(self) -> int:
        return self.exact + self.close + self.wrong


def expected(url: str, path: str, cases: Sequence[loadgen.Case], json_body, headers: dict[str, str]) -> list[Checked]:
    """Each case as a JSON request with its own id (`json_body(x, id)`), sent once; its answer
    checked against ONNX Runtime's output in Python, then kept byte for byte."""
    found = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for index, case in enumerate(cases):
            request_id = f"r{index}"
            body = json_body(case.inputs, request_id)
            answer = client.post(path, content=body, headers=headers)
            if answer.status_code != 200:
                raise loadgen.WrongAnswer(f"{answer.status_code} for the expected answer: {answer.text[:200]}")
            if orjson.loads(answer.content).get("id") != request_id:
                raise loadgen.WrongAnswer(f"the answer does not echo id {request_id}: {answer.content[:200]!r}")
            loadgen.check(case, {k.encode(): v.encode() for k, v in answer.headers.items()}, answer.content)
            found.append(Checked(request_id, body, answer.content))
    return found


def script(checked: Sequence[Checked], headers: dict[str, str], folder: Path) -> Path:
    """The Lua script, its request bodies and verified answers written into `folder`."""
    paths, expected_paths = [], {}
    for item in checked:
        body, answer = folder / f"{item.id}.body", folder / f"{item.id}.expected"
        body.write_bytes(item.body)
        answer.write_bytes(item.expected)
        paths.append(body)
        expected_paths[item.id] = answer
    lua = (LUA.replace("{paths}", _table([_quote(p) for p in paths]))
           .replace("{expected}", "{" + ", ".join(f"[{_quote(k)}] = {_quote(v)}" for k, v in expected_paths.items()) + "}")
           .replace("{headers}", "{" + ", ".join(f"[{_quote(k)}] = {_quote(v)}" for k, v in headers.items()) + "}"))
    target = folder / "checked.lua"
    target.write_text(lua)
    return target


def run(url: str, checked: Sequence[Checked], headers: dict[str, str], connections: int, seconds: float,
        threads: int = 2) -> Result:
    """wrk against `url` (the infer route's full URL) for `seconds`; raises WrongAnswer on any
    wrong or non-200 answer (a connection that timed out or dropped is counted in
    `socket_errors`). wrk's CPU is taken from this process's reaped children."""
    with tempfile.TemporaryDirectory(prefix="modelserve-wrk-") as folder:
        lua = script(checked, headers, Path(folder))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                              "-s", str(lua), url], capture_output=True, text=True, check=True).stdout
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = parse(out, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if result.wrong or result.checked != result.requests:  # socket errors (timeouts) are counted, as loadgen's
        raise loadgen.WrongAnswer(
            f"wrk: {result.wrong} wrong answers ({result.non_200} not 200), {result.checked} checked of "
            f"{result.requests}; first: {result.first_wrong}")
    return result


def parse(out: str, client_cpu_s: float) -> Result:
    """What wrk and the script's done() printed."""
    checked = re.search(r"CHECKED exact (\d+) close (\d+) wrong (\d+) non_200 (\d+)", out)
    if checked is None:
        raise loadgen.WrongAnswer(f"wrk's script reported nothing: {out[-2000:]}")
    exact, close, wrong, non_200 = map(int, checked.groups())
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    duration = re.search(r"requests in ([\d.]+)(ms|s|m)", out)
    seconds = float(duration.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[duration.group(2)]
    first = re.search(r"FIRST_WRONG (.*)", out)
    return Result(
        requests=int(re.search(r"(\d+) requests in", out).group(1)), seconds=seconds,
        p50_ms=float(re.search(r"P50 ([\d.]+)", out).group(1)), p90_ms=float(re.search(r"P90 ([\d.]+)", out).group(1)),
        p99_ms=float(re.search(r"P99 ([\d.]+)", out).group(1)), exact=exact, close=close, wrong=wrong,
        non_200=non_200, socket_errors=sum(map(int, socket.groups())) if socket else 0, client_cpu_s=client_cpu_s,
        first_wrong=first.group(1).strip() if first else "",
    )


def _quote(value) -> str:
    """A Lua string literal (long brackets cannot hold every byte; escapes can)."""
    return '"' + "".join(c if c.isalnum() or c in "/._-: " else f"\\{ord(c)}" for c in str(value)) + '"'


def _table(items: list[str]) -> str:
    return "{" + ", ".join(items) + "}"

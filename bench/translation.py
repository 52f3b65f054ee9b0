"""Translations/s, tokens/s, time to first token and inter-token latency with N concurrent
streams, all with in-flight batching (the running greedy sequences are rows of one decoder call
per step), with the key/value-cache decoder step (decoder_cached.onnx) and without it (the
full-prefix decoder.onnx over the padded prefix). "× one at a time" compares each row with
1 concurrent of the same decoder.

    .venv/bin/python bench/translation.py [--seconds 15] [--concurrency 1,4,16,64] [--rounds N] [--json FILE]

Each of N clients streams translations back to back (closed loop) over generate_stream,
English numbers drawn with a fixed seed. Every translation is checked: its whole output must be
the one the server gave for the same number alone, before the timing (greedy decoding is the
same in any batch); one wrong answer fails the run. The server is pinned to one core (`taskset -c
--server-cpus`, default 0) and the Python (httpx) clients to the others (`--client-cpus`,
default 1), so the clients' own work does not take the server's CPU. With `--profile N`, py-spy
(`record --gil`) samples the server during the measured window of N concurrent and prints where
its Python time went (bench/profile.py's summary). With `--graphs`, ONNX Runtime alone times
the cached decoder step and cross_kv at 1 and 16 rows in this process (pinned to the server's
core, one thread, best of 7 x 50 calls) and prints the most that sharing them can give: the
translations/s of 16 concurrent over one at a time if nothing but these graph calls cost.
`--api generate` runs the same closed loop over non-streaming `generate` calls instead (one
answer per translation, no token events): in-flight batching works the same, and its "TTFT"
columns are then each call's whole latency.
"""

import argparse
import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from num2words import num2words

sys.path.insert(0, str(Path(__file__).parent))
from servers import _modelserve, _Server  # the bench's own server starter

MODEL = "en-fr-numbers"
CONFIGS = ("KV cache", "no cache")  # the version as committed; without cross_kv and decoder_cached


def texts(count: int = 500, seed: int = 0) -> list[str]:
    numbers = np.random.default_rng(seed).integers(0, 1_000_000, count)
    return [num2words(int(n)) for n in numbers]


async def client(url: str, inputs: list[str], offset: int, until: float, out: dict, api: str = "stream",
                 expected: dict[str, str] | None = None) -> None:
    """One closed-loop client on one keep-alive connection. HTTP/1.1 by hand (a request, then
    the chunked event stream): httpx and a JSON parse per event cost the client more CPU than
    the server spends per token, and the clients would be what is measured. With api
    "generate", each translation is one non-streaming `generate` call: its latency is counted
    as its time to first token (the first token arrives with the last). Every translation's
    whole output is checked against `expected` (greedy decoding gives the same text in any
    batch as alone): one wrong answer fails the run."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    route = "generate_stream" if api == "stream" else "generate"
    try:
        i = offset
        while time.perf_counter() < until:
            text = inputs[i % len(inputs)]
            body = json.dumps({"text_input": text}).encode()
            i += 1
            writer.write(f"POST /v2/models/{MODEL}/{route} HTTP/1.1\r\nHost: {host}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                         .encode() + body)
            last = time.perf_counter()  # the request's start, then each token's arrival
            tokens = 0
            head = await reader.readuntil(b"\r\n\r\n")
            if api == "generate":
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected response {head[:200]!r}")
                size = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                                if line.lower().startswith(b"content-length:")))
                answer = json.loads(await reader.readexactly(size))
                _check(expected, text, answer["text_output"])
                out["ttft"].append(time.perf_counter() - last)
                out["sequences"] += 1
                out["tokens"] += answer["tokens"]
                continue
            if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
                raise RuntimeError(f"unexpected response {head[:200]!r}")
            while True:  # chunks: size line, data, CRLF; a zero size ends the response
                size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                now = time.perf_counter()
                for event in chunk.split(b"\n\n"):
                    if event.endswith(b'"event":"done"}'):
                        _check(expected, text, json.loads(event.removeprefix(b"data: "))["output"])
                        out["sequences"] += 1
                        out["tokens"] += tokens
                    elif b'"index":' in event:
                        (out["ttft"] if tokens == 0 else out["itl"]).append(now - last)
                        tokens += 1
                        last = now
                    elif event.strip():
                        raise RuntimeError(f"unexpected event {event[:200]!r}")
    finally:
        writer.close()


def _check(expected: dict[str, str] | None, text: str, output: str) -> None:
    if expected is not None and output != expected[text]:
        raise RuntimeError(f"wrong translation of {text!r}: {output!r}, alone {expected[text]!r}")


async def reference(url: str, inputs: list[str]) -> dict[str, str]:
    """Each input's translation, asked for one at a time (greedy: what any batch must give)."""
    expected = {}
    async with httpx.AsyncClient(timeout=60) as http:
        for text in dict.fromkeys(inputs):
            answer = await http.post(f"{url}/v2/models/{MODEL}/generate", json={"text_input": text})
            answer.raise_for_status()
            expected[text] = answer.json()["text_output"]
    return expected


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(url: str, concurrency: int, seconds: float, inputs: list[str], pid: int,
                  profile: Path | None = None, api: str = "stream", warmup: float = 1.0,
                  expected: dict[str, str] | None = None) -> dict:
    """One measured window of `seconds` at `concurrency`, after `warmup` seconds of load: its raw
    counts."""
    out = {"ttft": [], "itl": [], "sequences": 0, "tokens": 0}
    await asyncio.gather(*(client(url, inputs, 0, time.perf_counter() + warmup, {
        "ttft": [], "itl": [], "sequences": 0, "tokens": 0}, api, expected) for _ in range(min(concurrency, 4))))
    spy = None
    if profile is not None:  # samples the measured window only; py-spy runs on the clients' cores
        import profile as bench_profile  # bench/profile.py

        spy = subprocess.Popen([  # noqa: ASYNC220  (returns at once; py-spy runs beside the clients)
                               bench_profile.py_spy(), "record", "--pid", str(pid), "--gil", "--duration",
                                str(int(seconds)), "--rate", "250", "--nonblocking", "--format", "raw",
                                "--output", str(profile)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        await asyncio.sleep(0.5)  # py-spy attaches
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    until = started + seconds
    await asyncio.gather(*(client(url, inputs, k * 37, until, out, api, expected) for k in range(concurrency)))
    out["elapsed"] = time.perf_counter() - started
    out["cpu"] = cpu_seconds(pid) - cpu
    if spy is not None:
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0:
            sys.exit(f"py-spy failed: {err.decode()[-2000:]}")
    return out


def summary(concurrency: int, windows: list[dict]) -> dict:
    """The row of one concurrency from its measured windows (one, or one per round)."""
    ttft = [v for w in windows for v in w["ttft"]]
    itl = [v for w in windows for v in w["itl"]]
    sequences = sum(w["sequences"] for w in windows)
    elapsed, cpu = sum(w["elapsed"] for w in windows), sum(w["cpu"] for w in windows)

    def ms(values, q):
        return round(float(np.percentile(values, q)) * 1e3, 2) if values else None

    return {"concurrency": concurrency, "seconds": round(elapsed, 1), "rounds": len(windows),
            "sequences_per_s": round(sequences / elapsed, 2),
            "tokens_per_s": round(sum(w["tokens"] for w in windows) / elapsed, 1),
            # The server's own CPU per translation: what batching saves, whatever share of
            # its core the machine's other jobs leave it.
            "server_cpu_ms_per_sequence": round(cpu / max(sequences, 1) * 1e3, 2),
            "server_cpu_share": round(cpu / elapsed, 2),
            "ttft_ms_p50": ms(ttft, 50), "ttft_ms_p99": ms(ttft, 99),
            "itl_ms_p50": ms(itl, 50), "itl_ms_p99": ms(itl, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models") / MODEL)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--server-cpus", default="0", help="taskset -c list for the server")
    parser.add_argument("--client-cpus", default="1", help="CPU list for the clients (this process)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="which of: " + ", ".join(CONFIGS))
    parser.add_argument("--profile", type=int, metavar="N", help="py-spy the server at N concurrent")
    parser.add_argument("--graphs", action="store_true", help="also time the graphs alone (the bound)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure the concurrencies in turn this many times, seconds / rounds each, "
                             "and pool the windows: a machine whose speed drifts over a run then slows "
                             "every concurrency alike")
    parser.add_argument("--api", default="stream", choices=("stream", "generate"),
                        help="generate_stream (token events; the default) or non-streaming generate")
    args = parser.parse_args()
    os.sched_setaffinity(0, _cpus(args.client_cpus))
    inputs = texts()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label in args.configs.split(","):
            repo = Path(folder) / label.replace(" ", "-")
            shutil.copytree(args.model, repo / MODEL)
            if label == "no cache":  # the stepper then runs the full-prefix decoder.onnx
                version = repo / MODEL / "1" / "config.yaml"
                version.write_text(version.read_text().replace(", cross_kv: cross_kv.onnx, decoder_cached: decoder_cached.onnx", ""))
            server = _Server(["taskset", "-c", args.server_cpus, *_modelserve(repo, 1)])
            levels = [int(c) for c in args.concurrency.split(",")]
            windows = {c: [] for c in levels}
            with server as url:  # taskset execs the server: its pid is the server's
                expected = asyncio.run(reference(url, inputs))
                for _ in range(args.rounds):  # each round: every concurrency for seconds / rounds
                    for c in levels:
                        raw = Path(folder) / "profile.txt" if c == args.profile and not windows[c] else None
                        windows[c].append(asyncio.run(measure(  # a shorter warm-up once warm
                            url, c, args.seconds / args.rounds, inputs, server.process.pid, raw, args.api,
                            1.0 if not windows[c] else 0.25, expected)))
                        if raw is not None:
                            print_profile(raw, label, c)
            for c in levels:
                row = {"config": label, "api": args.api, **summary(c, windows[c])}
                print(row, flush=True)
                rows.append(row)
    print_table(rows)
    if args.graphs:
        os.sched_setaffinity(0, _cpus(args.server_cpus))
        tokens = [r["tokens_per_s"] / r["sequences_per_s"] for r in rows if r["sequences_per_s"]]
        print_graph_bound(args.model / "1", float(np.mean(tokens)) + 1 if tokens else 11.5)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


def _cpus(spec: str) -> set[int]:
    """A taskset-style CPU list ("1", "1-3", "0,2") as a set."""
    out = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def print_graph_bound(version: Path, steps: float, rows: int = 16) -> None:
    """ONNX Runtime alone: ms per call of the cached decoder step and of cross_kv at 1 and
    `rows` rows, and the bound they set on `rows` concurrent over one at a time, for a
    translation of `steps` decoder steps (its tokens and the EOS)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    decoder, cross_kv = (ort.InferenceSession(str(version / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
                         for name in ("decoder_cached", "cross_kv"))
    outputs = cross_kv.get_outputs()
    packed = len(outputs) == 1 and len(outputs[0].shape) == 5  # (B, C, H, S, dk): C context inputs
    past = decoder.get_inputs()[3 + (outputs[0].shape[1] if packed else len(outputs)):]  # (B, H, P, dk) each
    ms = {}
    for n in (1, rows):
        source = np.full((n, 14), 4, dtype=np.int64)  # a padded source of one word repeated
        cross = cross_kv.run(None, {cross_kv.get_inputs()[0].name: source})
        cross = list(cross[0].swapaxes(0, 1)) if packed else cross
        feeds = dict(zip([i.name for i in decoder.get_inputs()], [
            np.full(n, 8, dtype=np.int64), np.full(n, 5, dtype=np.int64), source, *cross,
            *(np.zeros((n, *p.shape[1:]), dtype=np.float32) for p in past)], strict=True))

        ms["decoder_cached", n] = _best(functools.partial(decoder.run, None, feeds))
        ms["cross_kv", n] = _best(functools.partial(cross_kv.run, None, {cross_kv.get_inputs()[0].name: source}))
    print(f"\nONNX Runtime alone, one thread, best of 7 x 50 calls (load average {os.getloadavg()[0]:.2f}):\n")
    print("| graph | rows | ms per call | ms per row |\n|---|---:|---:|---:|")
    for (name, n), value in ms.items():
        print(f"| {name} | {n} | {value:.3f} | {value / n:.3f} |")
    alone = steps * ms["decoder_cached", 1] + ms["cross_kv", 1]
    shared = (steps * ms["decoder_cached", rows] + ms["cross_kv", rows]) / rows
    print(f"\nA translation of {steps:.1f} decoder steps: {alone:.2f} ms of graph calls alone, {shared:.2f} ms "
          f"with {rows} sharing each call: at most {alone / shared:.1f}x the translations/s of one at a "
          f"time, were the graphs all the server's work.")


def _best(call) -> float:
    """ms per call: the best of 7 runs of 50 calls."""
    return min(timeit.repeat(call, number=50, repeat=7)) / 50 * 1e3


def print_profile(raw: Path, label: str, concurrency: int) -> None:
    import profile as bench_profile  # bench/profile.py

    stacks = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks[stack] += int(count)
    print(f"\npy-spy --gil, {label}, {concurrency} concurrent, load average {os.getloadavg()[0]:.2f}:\n")
    print(bench_profile.summary(stacks, 25), flush=True)


def print_table(rows: list[dict]) -> None:
    solo = {r["config"]: r for r in rows if r["concurrency"] == 1}
    print(f"\napi: {rows[0]['api'] if rows else ''}")
    print("\n| decoding | concurrent | translations/s | × one at a time | tokens/s | TTFT p50 / p99 ms "
          "| TTFT × alone | inter-token p50 / p99 ms | server CPU ms / translation | CPU alone ÷ this "
          "| server's share of its core |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["config"] not in solo:  # no one-at-a-time row to compare with
            continue
        print(f"| {r['config']} | {r['concurrency']} | {r['sequences_per_s']:.1f} "
              f"| {r['sequences_per_s'] / solo[r['config']]['sequences_per_s']:.2f} | {r['tokens_per_s']:.0f} "
              f"| {r['ttft_ms_p50']} / {r['ttft_ms_p99']} "
              f"| {r['ttft_ms_p50'] / solo[r['config']]['ttft_ms_p50']:.2f} "
              f"| {r['itl_ms_p50']} / {r['itl_ms_p99']} | {r['server_cpu_ms_per_sequence']} "
              f"| {solo[r['config']]['server_cpu_ms_per_sequence'] / r['server_cpu_ms_per_sequence']:.2f} "
              f"| {r['server_cpu_share']:.0%} |")


if __name__ == "__main__":
    main()

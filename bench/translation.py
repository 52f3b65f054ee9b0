"""Translations/s, tokens/s, time to first token and inter-token latency with N concurrent
streams, with in-flight batching (decoder steps of concurrent sequences share executions) and
without it (max_batch_size 0: each sequence runs its own decoder calls).

    .venv/bin/python bench/translation.py [--seconds 15] [--concurrency 1,4,16,64] [--json FILE]

Each of N clients streams translations back to back (closed loop) over generate_stream,
English numbers drawn with a fixed seed. The clients are Python (httpx) on the same machine as
the server, so at high concurrency they take CPU from it: the numbers are a floor.
"""

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from num2words import num2words

sys.path.insert(0, str(Path(__file__).parent))
from run import _modelserve, _Server  # the bench's own server starter

MODEL = "en-fr-numbers"
CONFIGS = {"in-flight batching": "max_batch_size: 64\nmax_queue_delay_ms: 0\n",
           "one sequence per execution": "max_batch_size: 0\n"}


def texts(count: int = 500, seed: int = 0) -> list[str]:
    numbers = np.random.default_rng(seed).integers(0, 1_000_000, count)
    return [num2words(int(n)) for n in numbers]


async def client(url: str, inputs: list[str], offset: int, until: float, out: dict) -> None:
    async with httpx.AsyncClient(timeout=120) as http:
        i = offset
        while time.perf_counter() < until:
            body = {"text_input": inputs[i % len(inputs)]}
            i += 1
            last = time.perf_counter()  # the request's start, then each token's arrival
            tokens = 0
            async with http.stream("POST", f"{url}/v2/models/{MODEL}/generate_stream", json=body) as r:
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    now = time.perf_counter()
                    event = json.loads(line[6:])
                    if "index" in event:
                        (out["ttft"] if tokens == 0 else out["itl"]).append(now - last)
                        tokens += 1
                        last = now
                    elif event.get("event") == "done":
                        out["sequences"] += 1
                        out["tokens"] += tokens
                    else:
                        raise RuntimeError(f"unexpected event {event}")


async def measure(url: str, concurrency: int, seconds: float, inputs: list[str]) -> dict:
    out = {"ttft": [], "itl": [], "sequences": 0, "tokens": 0}
    await asyncio.gather(*(client(url, inputs, 0, time.perf_counter() + 1.0, {
        "ttft": [], "itl": [], "sequences": 0, "tokens": 0}) for _ in range(min(concurrency, 4))))
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(client(url, inputs, k * 37, until, out) for k in range(concurrency)))
    elapsed = time.perf_counter() - started

    def ms(values, q):
        return round(float(np.percentile(values, q)) * 1e3, 2) if values else None

    return {"concurrency": concurrency, "seconds": round(elapsed, 1),
            "sequences_per_s": round(out["sequences"] / elapsed, 2),
            "tokens_per_s": round(out["tokens"] / elapsed, 1),
            "ttft_ms_p50": ms(out["ttft"], 50), "ttft_ms_p99": ms(out["ttft"], 99),
            "itl_ms_p50": ms(out["itl"], 50), "itl_ms_p99": ms(out["itl"], 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models") / MODEL)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    inputs = texts()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, config in CONFIGS.items():
            repo = Path(folder) / label.replace(" ", "-")
            shutil.copytree(args.model, repo / MODEL)
            (repo / MODEL / "config.yaml").write_text(config)
            with _Server(_modelserve(repo, 1)) as url:
                for c in (int(c) for c in args.concurrency.split(",")):
                    row = {"config": label, **asyncio.run(measure(url, c, args.seconds, inputs))}
                    print(row, flush=True)
                    rows.append(row)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


def print_table(rows: list[dict]) -> None:
    solo = next(r for r in rows if r["config"] == "in-flight batching" and r["concurrency"] == 1)
    print("\n| decoding | concurrent | translations/s | × one at a time | tokens/s | TTFT p50 / p99 ms "
          "| TTFT × alone | inter-token p50 / p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['concurrency']} | {r['sequences_per_s']:.1f} "
              f"| {r['sequences_per_s'] / solo['sequences_per_s']:.2f} | {r['tokens_per_s']:.0f} "
              f"| {r['ttft_ms_p50']} / {r['ttft_ms_p99']} "
              f"| {r['ttft_ms_p50'] / solo['ttft_ms_p50']:.2f} "
              f"| {r['itl_ms_p50']} / {r['itl_ms_p99']} |")


if __name__ == "__main__":
    main()

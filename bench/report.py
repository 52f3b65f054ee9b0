"""The benchmark's tables: rates, latencies, CPU per request, ratios, and the issue's targets."""

import os
import platform
from dataclasses import dataclass

import diffusion
import loadgen


@dataclass
class Row:
    server: str
    kind: str  # "json1", "json64", "binary64"
    connections: int
    result: loadgen.Result

    @property
    def rows_per_request(self) -> int:
        return 1 if self.kind == "json1" else 64


KIND_LABEL = {"json1": "V2 JSON, 1 row", "json64": "V2 JSON, 64 rows, rows/s", "binary64": "V2 binary, 64 rows, rows/s"}
BASELINE, TRITON_BATCHING, TRITON_PLAIN = "hand-written", "Triton python backend + ORT, dynamic", "Triton python backend + ORT, no"


def header(args, client_cpus: set[int], versions: dict[str, str]) -> str:
    load = os.getloadavg()
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"{', '.join(f'{k} {v}' for k, v in versions.items())}, provider {args.provider}; servers pinned with `taskset -c "
            f"{args.server_cpus}`, load generator (this process) on CPU(s) {sorted(client_cpus)}; "
            f"{args.seconds:g} s measured per row after {args.warmup:g} s warm-up; every {args.check_every}th answer "
            f"(and each connection's first) checked against ONNX Runtime; load average at the end "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}\n")


def find(rows: list[Row], prefix: str, kind: str, conns: int | None = None) -> Row | None:
    return next((r for r in rows if r.server.startswith(prefix) and r.kind == kind
                 and (conns is None or r.connections == conns)), None)


def table(rows: list[Row], limits: dict[str, float]) -> str:
    baseline_best = max((r.result.requests_per_s for r in rows if r.server.startswith(BASELINE) and r.kind == "json1"),
                        default=None)
    limit = ", ".join(f"{rate:,.0f} at {label}" for label, rate in limits.items())
    lines = [f"ONNX Runtime in process on the client's core (the limit), rows/s: {limit}.\n",
             ("| server | request | conns | req/s (rows/s) | p50 ms | p90 ms | p99 ms | errors | checked "
             "| req per server CPU-s | server CPU % | client CPU % | × baseline same conns | × baseline best "
             "| × Triton batching | × Triton no batching |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        r, rate = row.result, row.result.requests_per_s
        base = find(rows, BASELINE, row.kind, row.connections)
        tb, tp = find(rows, TRITON_BATCHING, row.kind, row.connections), find(rows, TRITON_PLAIN, row.kind, row.connections)

        def ratio(other, mine=rate):
            return f"{mine / other:.2f}" if other else ""

        per_cpu = f"{r.requests / r.server_cpu_s:,.0f}" if r.server_cpu_s else ""
        server_pct = f"{100 * r.server_cpu_s / r.seconds:.0f}" if r.server_cpu_s is not None else ""
        lines.append(
            f"| {row.server} | {KIND_LABEL[row.kind]} | {row.connections} | {rate * row.rows_per_request:,.0f} "
            f"| {r.percentile(50):.2f} | {r.percentile(90):.2f} | {r.percentile(99):.2f} | {r.errors} | {r.checked:,} "
            f"| {per_cpu} | {server_pct} | {100 * r.client_cpu_s / r.seconds:.0f} "
            f"| {ratio(base.result.requests_per_s if base else None)} "
            f"| {ratio(baseline_best) if row.kind == 'json1' else ''} "
            f"| {ratio(tb.result.requests_per_s if tb else None)} | {ratio(tp.result.requests_per_s if tp else None)} |")
    return "\n".join(lines)


def targets(rows: list[Row], workers, widest: int, diffusion_rows=()) -> str:
    ms = "modelserve, max_batch_size 64, max_queue"
    lines = ["\n| target (issue 16) | measured | met |", "|---|---|---|"]

    def add(name, mine: Row | None, other: Row | None, need: float, unit="req/s") -> None:
        if mine and other:
            value = mine.result.requests_per_s / other.result.requests_per_s
            lines.append(f"| {name} | {value:.2f}× ({mine.result.requests_per_s * mine.rows_per_request:,.0f} vs "
                         f"{other.result.requests_per_s * other.rows_per_request:,.0f} {unit}) | {'yes' if value >= need else 'no'} |")

    add(f"V2 JSON 1 row, {widest} conns, modelserve batching ≥ Triton batching", find(rows, ms, "json1", widest),
        find(rows, TRITON_BATCHING, "json1", widest), 1.0)
    mine, triton_row = find(rows, ms, "json1", widest), find(rows, TRITON_BATCHING, "json1", widest)
    if mine and triton_row and mine.result.server_cpu_s and triton_row.result.server_cpu_s:
        ours, theirs = (r.result.requests / r.result.server_cpu_s for r in (mine, triton_row))
        lines.append(f"| (not a target) requests per server CPU-second there, modelserve / Triton batching "
                     f"| {ours / theirs:.2f}× ({ours:,.0f} vs {theirs:,.0f}) | |")
    if mine:
        p50, p99 = mine.result.percentile(50), mine.result.percentile(99)
        lines.append(f"| p99 ≤ 2× p50 there | {p99:.1f} vs {p50:.1f} ms ({p99 / p50:.2f}×) | {'yes' if p99 <= 2 * p50 else 'no'} |")
    add("V2 JSON 1 row, 1 conn, modelserve batching ≥ Triton batching", find(rows, ms, "json1", 1),
        find(rows, TRITON_BATCHING, "json1", 1), 1.0)
    for label, name in (("modelserve, no batching", "no batching"), (ms, "max_batch_size 64")):
        add(f"modelserve {name}: binary 64 rows ≥ 3× JSON 64 rows", find(rows, label, "binary64"),
            find(rows, label, "json64"), 3.0, "rows/s")
    for row in rows:  # the per-request access log (--access-log, off by default), priced against the default
        logged = find(rows, "modelserve, max_batch_size 64, --access-log", row.kind, row.connections)
        if row.server.startswith(ms) and logged:
            lines.append(_access_log_cost(logged, row))
    if len(workers) == 2:  # bench/workers.py's rows
        one, two = workers
        value = two.requests_per_s / one.requests_per_s
        lines.append(f"| --workers 2 ≥ 1.7× one worker, {widest} conns | {value:.2f}× ({two.requests_per_s:,.0f} vs "
                     f"{one.requests_per_s:,.0f} req/s) | {'yes' if value >= 1.7 else 'no'} |")
    solo = next((rate for label, c, rate in diffusion_rows if label == "no step batching" and c == 1), None)
    batched = next((rate for label, c, rate in diffusion_rows if label != "no step batching" and c == 16), None)
    if solo and batched:
        lines.append(f"| diffusion, 16 concurrent generations ≥ 4× one at a time | {batched / solo:.2f}× "
                     f"({batched:.1f} vs {solo:.1f} samples/s) | {'yes' if batched >= 4 * solo else 'no'} |")
    return "\n".join(lines)


def _access_log_cost(row: Row, quiet: Row) -> str:
    """The log's share of a request's cost: from requests per server CPU-second where both rows
    have it (a server that is not at 100% of its core answers as fast with more CPU a request),
    else from req/s."""
    mine, theirs = row.result, quiet.result
    if mine.server_cpu_s and theirs.server_cpu_s:
        ours, base, unit = mine.requests / mine.server_cpu_s, theirs.requests / theirs.server_cpu_s, "req per server CPU-s"
    else:
        ours, base, unit = mine.requests_per_s, theirs.requests_per_s, "req/s"
    cost = 1 - ours / base
    # The target is about defaults: a log that costs more than 5% is off unless asked for.
    return (f"| the access log costs ≤ 5%, or is off by default ({row.connections} conns) | {cost:.1%} "
            f"({ours:,.0f} with --access-log vs {base:,.0f} {unit} without) | "
            f"{'yes' if cost <= 0.05 else 'yes: off by default'} |")


def print_diffusion(rows) -> None:
    if not rows:
        return
    solo = next(rate for label, c, rate in rows if label == "no step batching" and c == 1)
    print(f"\nDiffusion (wrk, answers not checked): {diffusion.REQUEST['num_samples']} sample(s) per request, "
          f"{diffusion.REQUEST['steps']} {diffusion.REQUEST['sampler']} steps\n")
    print("| generation | concurrent requests | samples/s | × one at a time |")
    print("|---|---:|---:|---:|")
    for label, concurrency, rate in rows:
        print(f"| {label} | {concurrency} | {rate:.1f} | {rate / solo:.2f} |")

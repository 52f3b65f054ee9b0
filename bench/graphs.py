"""Does joining concurrent graphs into one disjoint graph pay? Measured two ways.

1. In process, ONNX Runtime alone: microseconds per graph when each of k held-out test graphs
   runs by itself, and when the k run as one joined graph (join and split included).
2. Through the service: graphs/s and latency with C concurrent V2 clients (binary tensors, a
   different test graph each request), the model's config at max_batch_size 0 (every graph
   alone) and 64 (joined), and the graphs per execution the server's statistics report.

python bench/graphs.py [--models models] [--seconds 5] [--concurrency 1 8 32]
"""

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from service.graph_join import join, split
from training import graphs

MODELS = ("graph-gcn", "graph-gcn-deep")


def in_process(path: Path, test: list[graphs.Graph], repeats: int = 5) -> list[tuple[int, float, float]]:
    """[(k, us per graph alone, us per graph joined)], the best of `repeats` timings each."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    rows = []
    for k in (1, 4, 16, 64):
        batch = test[:k]
        alone, joined = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            for g in batch:
                sess.run(None, {"x": g.x, "edge_index": g.edge_index})
            alone.append(time.perf_counter() - started)
            started = time.perf_counter()
            x, edge_index = join([g.x for g in batch], [g.edge_index for g in batch])
            split(dict(zip(names, sess.run(None, {"x": x, "edge_index": edge_index}))), [g.nodes for g in batch])
            joined.append(time.perf_counter() - started)
        rows.append((k, min(alone) / k * 1e6, min(joined) / k * 1e6))
    return rows


def body(g: graphs.Graph) -> tuple[bytes, dict[str, str]]:
    """A V2 request with binary tensors, asking for the logits only."""
    header = orjson.dumps({
        "inputs": [{"name": "x", "shape": list(g.x.shape), "datatype": "FP32", "parameters": {"binary_data_size": g.x.nbytes}},
                   {"name": "edge_index", "shape": list(g.edge_index.shape), "datatype": "INT64",
                    "parameters": {"binary_data_size": g.edge_index.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    })
    return header + g.x.tobytes() + g.edge_index.tobytes(), {
        "Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}


async def load(url: str, model: str, bodies: list, concurrency: int, seconds: float) -> tuple[int, list[float]]:
    """C clients, each sending the next test graph as soon as its last answer came: (graphs, latencies)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(c: int, http: httpx.AsyncClient) -> None:
        i = c
        while time.perf_counter() < deadline:
            content, headers = bodies[i % len(bodies)]
            started = time.perf_counter()
            reply = await http.post(f"{url}/v2/models/{model}/infer", content=content, headers=headers)
            if reply.status_code != 200:
                raise RuntimeError(reply.text)
            latencies.append(time.perf_counter() - started)
            i += concurrency

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as http:
        await asyncio.gather(*(client(c, http) for c in range(concurrency)))
    return len(latencies), latencies


def stats(url: str, model: str) -> tuple[int, int]:
    s = httpx.get(f"{url}/v2/models/{model}/stats").json()["model_stats"][0]
    return s["inference_count"], s["execution_count"]


def serve(repo: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "service", "--model-repository", str(repo), "--host", "127.0.0.1",
                                "--port", str(port), "--log-level", "warning", "--no-access-log"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the server did not become ready")


def through_service(models: Path, test: list[graphs.Graph], concurrencies: list[int], seconds: float) -> list[tuple]:
    bodies = [body(g) for g in test]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, batch in (("alone", 0), ("joined", 64)):
            repo = Path(folder) / label
            for name in MODELS:
                shutil.copytree(models / name, repo / name)
                (repo / name / "config.yaml").write_text(f"max_batch_size: {batch}\n")
            port = 18_000 + batch
            process = serve(repo, port)
            url = f"http://127.0.0.1:{port}"
            try:
                for name in MODELS:
                    for c in concurrencies:
                        before = stats(url, name)
                        count, latencies = asyncio.run(load(url, name, bodies, c, seconds))
                        after = stats(url, name)
                        per_execution = (after[0] - before[0]) / max(1, after[1] - before[1])
                        ms = np.percentile(np.array(latencies) * 1e3, [50, 99])
                        rows.append((name, label, c, count / seconds, ms[0], ms[1], per_execution))
            finally:
                process.terminate()
                process.wait(timeout=30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    test = graphs.split("test")
    print(f"Held-out test graphs: {len(test)}, {np.mean([g.nodes for g in test]):.0f} nodes and "
          f"{np.mean([g.edge_index.shape[1] for g in test]):.0f} directed edges on average\n")
    print("| model | graphs k | µs/graph alone | µs/graph joined | speed-up |\n|---|---:|---:|---:|---:|")
    for name in MODELS:
        for k, alone, joined in in_process(args.models / name / "1" / "model.onnx", test):
            print(f"| {name} | {k} | {alone:.0f} | {joined:.0f} | {alone / joined:.2f}× |")
    print("\n| model | graphs | clients | graphs/s | p50 ms | p99 ms | graphs per execution |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, label, c, rate, p50, p99, per in through_service(args.models, test, args.concurrency, args.seconds):
        print(f"| {name} | {label} | {c} | {rate:.0f} | {p50:.1f} | {p99:.1f} | {per:.1f} |")


if __name__ == "__main__":
    main()

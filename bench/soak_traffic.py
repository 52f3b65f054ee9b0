"""The request mix of bench/soak.py: each kind one async call that says whether it got the
answer it should (a 200, or for a malformed request the 4xx it deserves).

V2 answers are checked, not only counted: each is compared with what ONNX Runtime, run here on
the same version's graph, gives for the same input; a wrong one answers WRONG instead of 200.

Kinds are built from what the server has: a kind whose models are not in the repository, or
whose endpoint the server lacks, is left out and named in `skipped`.
"""

import json
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort

Call = Callable[[httpx.AsyncClient], Awaitable[int]]  # -> the status answered
NINE = [0, 0, 13, 10, 1, 0, 0, 0, 0, 5, 16, 14, 7, 0, 0, 0, 0, 4, 16, 8, 14, 0, 0, 0, 0, 2, 14, 16, 16, 6,
        0, 0, 0, 0, 1, 4, 9, 13, 1, 0, 0, 0, 0, 0, 0, 13, 6, 0, 0, 0, 5, 8, 5, 9, 14, 0, 0, 0, 13, 13, 15, 16, 13, 0]
PATIENT = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]
TENSOR_MODELS = ["digits-cnn", "digits-shallow", "digits-deep", "diabetes-regressor"]
WRONG = -3  # the status a call reports for a 200 whose tensors are not ONNX Runtime's
DTYPES = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "INT8": np.int8, "INT16": np.int16,
          "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "BOOL": np.bool_}


@dataclass
class Kind:
    name: str
    weight: float
    calls: list[Call]
    expected: frozenset[int] = frozenset({200})


@dataclass
class Mix:
    kinds: list[Kind] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def build(url: str, repository: Path | None = None) -> Mix:
    """The kinds this server can take, from its repository index and model metadata.

    With the server's `repository`, V2 answers are compared with ONNX Runtime's own output;
    without it (or for a model whose graph is not model.onnx) they are counted only, and the
    mix says so in `skipped`."""
    ready = {row["name"] for row in httpx.post(f"{url}/v2/repository/index", json={"ready": True}).json()}
    paths = set(httpx.get(f"{url}/openapi.json").json()["paths"])
    metadata = {name: httpx.get(f"{url}/v2/models/{name}").json() for name in ready}
    mix = Mix()
    tensor = [m for m in TENSOR_MODELS if m in ready]

    def add(name: str, weight: float, calls: list[Call], missing: str, expected=frozenset({200})) -> None:
        if calls:
            mix.kinds.append(Kind(name, weight, calls, frozenset(expected)))
        else:
            mix.skipped[name] = missing

    expected = {m: _expected(repository, metadata[m]) for m in tensor}
    unchecked = [m for m in tensor if expected[m] is None]
    if unchecked:
        mix.skipped["answer checks"] = f"no graph to compare with for {', '.join(unchecked)}"
    add("v2_json", 30, [_v2_json(metadata[m], expected[m]) for m in tensor], "no classifier or regressor in the repository")
    add("v2_binary", 20, [_v2_binary(metadata[m], expected[m]) for m in tensor], "no classifier or regressor in the repository")
    has_predict = "/v1/models/{name}:predict" in paths
    predict = [(m, i) for m, i in [("digits-cnn", NINE), ("digits-shallow", NINE), ("diabetes-regressor", PATIENT),
                                   ("digits-flow", NINE), ("moons-flow", [0.0, 0.5]), ("digits-vae", NINE)] if m in ready]
    add("predict", 20, [_predict(m, i) for m, i in predict] if has_predict else [],
        "no :predict route" if not has_predict else "no task model in the repository")
    has_generate = "/v2/models/{name}/generate" in paths
    generate = [(m, p) for m, p in [("digits-gan", {"num_samples": 4}), ("digits-vae", {"num_samples": 4}),
                                    ("moons-flow", {"num_samples": 16}), ("digits-flow", {"num_samples": 2}),
                                    ("digits-diffusion", {"num_samples": 1, "steps": 10})] if m in ready]
    add("generate", 10, [_generate(m, p) for m, p in generate] if has_generate else [],
        "no generate route" if not has_generate else "no generative model in the repository")
    # Abandoned after the first event: diffusion sends one per step, the others one per sample.
    stream = [(m, p) for m, p in [("digits-diffusion", {"num_samples": 4, "steps": 100}),
                                  ("digits-gan", {"num_samples": 32}), ("digits-flow", {"num_samples": 16})] if m in ready]
    has_stream = "/v2/models/{name}/generate_stream" in paths
    add("stream_abandoned", 5, [_abandoned_stream(m, p) for m, p in stream] if has_stream else [],
        "no generate_stream route" if not has_stream else "no generative model in the repository")
    if tensor:
        add("malformed", 15, _malformed(metadata[tensor[0]], has_predict and predict, has_generate and generate),
            "", expected={400, 404})
    return mix


# ------------------------------------------------------------------------------ V2

def _inputs(meta: dict, rows: int = 1) -> list[tuple[str, str, list[int], np.ndarray]]:
    rng = np.random.default_rng(0)
    found = []
    for spec in meta["inputs"]:
        shape = [rows if d < 0 else d for d in spec["shape"]]
        found.append((spec["name"], spec["datatype"], shape, rng.uniform(0, 16, shape).astype(np.float32)))
    return found


Expected = dict[int, dict[str, np.ndarray]] | None  # rows -> output name -> ORT's answer


def _expected(repository: Path | None, meta: dict) -> Expected:
    """ONNX Runtime's outputs for the inputs this mix sends, from the served version's graph."""
    version = max(meta.get("versions") or ["1"], key=int)
    graph = repository / meta["name"] / version / "model.onnx" if repository else None
    if graph is None or not graph.exists():
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return {rows: dict(zip(names, session.run(None, {n: a for n, _, _, a in _inputs(meta, rows)}), strict=True))
            for rows in (1, 4)}


def _agrees(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> bool:
    return all(name in got and got[name].shape == want.shape and np.allclose(got[name], want, rtol=1e-4, atol=1e-5)
               for name, want in expected.items())


def _v2_json(meta: dict, expected: Expected = None) -> Call:
    body = {"inputs": [{"name": n, "datatype": t, "shape": s, "data": a.reshape(-1).tolist()}
                       for n, t, s, a in _inputs(meta)]}
    path = f"/v2/models/{meta['name']}/infer"

    async def call(client: httpx.AsyncClient) -> int:
        response = await client.post(path, json=body)
        if response.status_code == 200 and expected:
            got = {o["name"]: np.asarray(o["data"], dtype=DTYPES[o["datatype"]]).reshape(o["shape"])
                   for o in response.json()["outputs"]}
            if not _agrees(got, expected[1]):
                return WRONG
        return response.status_code

    return call


def _v2_binary(meta: dict, expected: Expected = None) -> Call:
    inputs = _inputs(meta, rows=4)
    header = json.dumps({
        "inputs": [{"name": n, "datatype": t, "shape": s, "parameters": {"binary_data_size": a.nbytes}}
                   for n, t, s, a in inputs],
        "outputs": [{"name": o["name"], "parameters": {"binary_data": True}} for o in meta["outputs"]],
    }).encode()
    body = header + b"".join(a.tobytes() for *_, a in inputs)
    headers = {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}
    path = f"/v2/models/{meta['name']}/infer"

    async def call(client: httpx.AsyncClient) -> int:
        response = await client.post(path, content=body, headers=headers)
        if response.status_code == 200:  # the binary answer must frame correctly, and be right
            length = int(response.headers["inference-header-content-length"])
            outputs = json.loads(response.content[:length])["outputs"]
            sizes = [o["parameters"]["binary_data_size"] for o in outputs]
            if length + sum(sizes) != len(response.content):
                return -1
            if expected:
                got, offset = {}, length
                for o, size in zip(outputs, sizes, strict=True):
                    got[o["name"]] = np.frombuffer(response.content[offset:offset + size], DTYPES[o["datatype"]]).reshape(o["shape"])
                    offset += size
                if not _agrees(got, expected[4]):
                    return WRONG
        return response.status_code

    return call


# ------------------------------------------------------------------------------ tasks

def _predict(model: str, instance: list) -> Call:
    body = {"instances": [instance, instance]}

    async def call(client: httpx.AsyncClient) -> int:
        return (await client.post(f"/v1/models/{model}:predict", json=body)).status_code

    return call


def _generate(model: str, params: dict) -> Call:
    async def call(client: httpx.AsyncClient) -> int:
        return (await client.post(f"/v2/models/{model}/generate", json=params)).status_code

    return call


def _abandoned_stream(model: str, params: dict) -> Call:
    async def call(client: httpx.AsyncClient) -> int:
        async with client.stream("POST", f"/v2/models/{model}/generate_stream", json=params) as response:
            if response.status_code != 200:
                return response.status_code
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    return 200 if "error" not in json.loads(line[5:]) else -1  # leave after the first event
        return -2  # the stream ended without an event

    return call


# ------------------------------------------------------------------------------ malformed

def _malformed(meta: dict, predict: list, generate: list) -> list[Call]:
    name = meta["name"]
    good = json.dumps({"inputs": [{"name": n, "datatype": t, "shape": s, "parameters": {"binary_data_size": a.nbytes}}
                                  for n, t, s, a in _inputs(meta)]}).encode()
    cases: list[tuple[str, dict]] = [
        (f"/v2/models/{name}/infer", {"content": b'{"inputs": [{"name": '}),  # cut-off JSON
        (f"/v2/models/{name}/infer", {"json": {"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1], "data": [1]}]}}),
        (f"/v2/models/{name}/infer", {"json": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2**40], "data": []}]}}),
        (f"/v2/models/{name}/infer", {"content": good + b"\0" * 3,  # binary shorter than declared
                                      "headers": {"Inference-Header-Content-Length": str(len(good))}}),
        (f"/v2/models/{name}/infer", {"content": good + struct.pack("<I", 7),
                                      "headers": {"Inference-Header-Content-Length": str(len(good) + 99)}}),
        ("/v2/models/no-such-model/infer", {"json": {"inputs": []}}),
    ]
    if predict:
        cases.append((f"/v1/models/{predict[0][0]}:predict", {"json": {"instances": [[1, 2, 3]]}}))
        cases.append((f"/v1/models/{predict[0][0]}:predict", {"json": {"instances": [{"image_b64": "bm90IGFuIGltYWdl"}]}}))
    if generate:
        cases.append((f"/v2/models/{generate[0][0]}/generate", {"json": {"num_samples": "4"}}))
        cases.append((f"/v2/models/{generate[0][0]}/generate", {"json": {"num_samples": 10**6}}))

    def one(path: str, request: dict) -> Call:
        async def call(client: httpx.AsyncClient) -> int:
            return (await client.post(path, **request)).status_code

        return call

    return [one(path, request) for path, request in cases]

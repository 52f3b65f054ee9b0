"""The benchmark's requests: distinct inputs, each with ONNX Runtime's own answer to compare with."""

import time
from pathlib import Path

import loadgen
import numpy as np
import onnxruntime as ort
import orjson

POOL = 64  # distinct inputs per request kind: a server that swaps rows between requests is caught


def set_provider(repositories: list[Path], provider: str) -> None:
    if provider != "CPUExecutionProvider":
        for repo in repositories:
            config = repo / "mlp" / "config.yaml"
            config.write_text(config.read_text() + f"providers: [{provider}]\nrequire_first_provider: true\n")


def session(model_path: Path, provider: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(model_path), options, providers=[provider])


def build(session: ort.InferenceSession, kind: str) -> list[loadgen.Case]:
    """POOL requests with distinct inputs, each with ONNX Runtime's answer to it."""
    rng = np.random.default_rng(0)
    rows = 1 if kind == "json1" else 64
    # On a GPU ONNX Runtime's CUDA provider multiplies in TF32 (10-bit mantissa), and a row's
    # answer depends on the batch it ran in: a wrong answer is still far outside these.
    cpu = session.get_providers()[0] == "CPUExecutionProvider"
    tolerance = {} if cpu else {"rtol": 1e-2, "atol": 2e-3}
    found = []
    for _ in range(POOL):
        x = rng.random((rows, 64)).astype(np.float32).round(4)  # 4 decimals: JSON carries them exactly
        (expected,) = session.run(None, {"input": x})
        if kind == "binary64":
            body, headers = binary_body(x)
            decode = loadgen.decode_binary("logits")
        else:
            body, headers = json_body(x), {"Content-Type": "application/json"}
            decode = loadgen.decode_json("logits")
        request = loadgen.http_request("127.0.0.1", 0, "/v2/models/mlp/infer", body, headers)
        found.append(loadgen.Case(request, expected, decode, x, **tolerance))
    return found


def json_body(x: np.ndarray, request_id: str | None = None) -> bytes:
    tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}
    return orjson.dumps({"id": request_id, "inputs": [tensor]} if request_id is not None else {"inputs": [tensor]})


def binary_body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps({
        "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    })
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}


def ort_in_process(session: ort.InferenceSession, seconds: float = 1.0) -> dict[str, float]:
    """Rows/s of ONNX Runtime alone at batch 1 and 64, on this (the client's) core: the limit.

    On a GPU also with I/O binding: the input copied to the device once and the output left
    there, which is what a server keeping tensors on the device could reach; and bound from and
    to host memory, which is what a server answering over the network could use."""
    rates = {}
    on_device = session.get_providers()[0] == "CUDAExecutionProvider"
    for rows in (1, 64):
        x = np.random.default_rng(0).random((rows, 64)).astype(np.float32)
        rates[f"batch {rows}"] = rows * _rate(lambda x=x: session.run(None, {"input": x}), seconds)
        if on_device:
            binding = session.io_binding()
            binding.bind_ortvalue_input("input", ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            binding.bind_output("logits", "cuda", 0)
            rates[f"batch {rows}, I/O binding on the device"] = rows * _rate(
                lambda b=binding: session.run_with_iobinding(b), seconds)
            # What a server gets: its input arrives in host memory and its answer leaves from
            # there, so binding can only save ONNX Runtime's own allocations, not the copies.
            host = session.io_binding()
            host.bind_cpu_input("input", x)
            host.bind_output("logits", "cpu")
            rates[f"batch {rows}, I/O binding from and to host memory"] = rows * _rate(
                lambda b=host: (session.run_with_iobinding(b), b.copy_outputs_to_cpu()), seconds)
    return rates


def _rate(call, seconds: float) -> float:
    call()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call()
        count += 1
    return count / (time.perf_counter() - started)

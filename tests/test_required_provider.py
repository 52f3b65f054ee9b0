"""The execution provider a model asks for, required: the server runs it there or fails the load.

MODELSERVE_TEST_PROVIDER picks the provider (CPUExecutionProvider by default, so this runs
everywhere); bench/gpu_check.sh sets CUDAExecutionProvider on a machine with a GPU and
onnxruntime-gpu, where a silent fallback to the CPU would otherwise pass unnoticed.
"""

import os
import re

import httpx
import numpy as np
import onnxruntime as ort

from tests import onnx_models

PROVIDER = os.environ.get("MODELSERVE_TEST_PROVIDER", "CPUExecutionProvider")
WEIGHTS = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
BIAS = np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32)


def test_a_required_provider_serves_the_model_and_answers_as_the_cpu_does(tmp_path, serve_repository):
    onnx_models.save(onnx_models.linear(WEIGHTS, BIAS), tmp_path, "linear")
    (tmp_path / "linear" / "config.yaml").write_text(
        f"providers: [{PROVIDER}]\nrequire_first_provider: true\nmax_batch_size: 8\n")
    url = serve_repository(tmp_path, args=["--providers", PROVIDER])
    metadata = httpx.get(f"{url}/v2/models/linear")
    assert metadata.status_code == 200 and PROVIDER in metadata.text, metadata.text
    metrics = httpx.get(f"{url}/metrics").text
    assert re.search(rf'^modelserve_model_loaded\{{model="linear",provider="{PROVIDER}",version="1"\}} 1', metrics, re.MULTILINE)

    x = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    answer = httpx.post(f"{url}/v2/models/linear/infer", json={"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [5, 3], "data": x.reshape(-1).tolist()}]})
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    cpu = ort.InferenceSession(str(tmp_path / "linear" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = cpu.run(None, {"x": x})[0]
    # ONNX Runtime's CUDA provider multiplies in TF32 by default (10-bit mantissa, ~5e-4 relative
    # per product) where the GPU has it; the CPU's float32 is the reference.
    tolerance = {"rtol": 1e-3, "atol": 1e-4} if PROVIDER == "CPUExecutionProvider" else {"rtol": 5e-3, "atol": 2e-3}
    np.testing.assert_allclose(np.asarray(output["data"], np.float32).reshape(output["shape"]), expected, **tolerance)

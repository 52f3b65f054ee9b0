"""--workers N: several processes, one set of metrics."""

import re

import httpx

from tests import onnx_models


def test_metrics_add_up_across_workers(tmp_path, serve_repository):
    onnx_models.save(onnx_models.add_constant(1.0), tmp_path, "m")
    url = serve_repository(tmp_path, args=["--workers", "2"])
    body = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}
    for _ in range(40):
        # A new connection each time, so the kernel spreads them over both workers.
        with httpx.Client() as client:
            response = client.post(f"{url}/v2/models/m/infer", json=body)
            assert response.status_code == 200
    for _ in range(6):
        with httpx.Client() as client:
            text = client.get(f"{url}/metrics").text
        total = re.search(r'^modelserve_inference_request_success_total\{model="m",protocol="http",version="1"\} (\S+)$', text, re.MULTILINE)
        assert total is not None and float(total.group(1)) == 40.0
        loaded = re.search(r'^modelserve_model_loaded\{model="m",provider="CPUExecutionProvider",version="1"\} (\S+)$', text, re.MULTILINE)
        assert loaded is not None and float(loaded.group(1)) == 1.0

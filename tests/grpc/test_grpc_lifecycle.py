"""gRPC beside HTTP in every worker, and drained on SIGTERM like HTTP."""

import re
import signal
import threading
import time

import httpx
import numpy as np
import tritonclient.grpc as tg

from tests import onnx_models
from tests.conftest import Server


def test_every_worker_serves_grpc_and_metrics_add_up(tmp_path, serve_repository):
    onnx_models.save(onnx_models.add_constant(1.0), tmp_path, "m")
    url = serve_repository(tmp_path, args=["--workers", "2"])
    for _ in range(20):  # a new connection each time, so the kernel spreads them over both
        client = tg.InferenceServerClient(url.grpc)
        tensor = tg.InferInput("x", [1, 1], "FP32")
        tensor.set_data_from_numpy(np.ones((1, 1), np.float32))
        assert client.infer("m", [tensor]).as_numpy("y").item() == 2.0
        client.close()
    text = httpx.get(f"{url}/metrics").text
    total = re.search(r'^modelserve_inference_request_success_total\{model="m",protocol="grpc",version="1"\} (\S+)$',
                      text, re.MULTILINE)
    assert total is not None and float(total.group(1)) == 20.0


def test_an_rpc_in_flight_finishes_after_sigterm(tmp_path):
    onnx_models.save(onnx_models.slow(), tmp_path / "repo", "slow")
    server = Server(tmp_path / "repo", env={"MODELSERVE_LOG_LEVEL": "info"})
    try:
        server.wait_ready()
        client = tg.InferenceServerClient(server.grpc_address)
        tensor = tg.InferInput("iterations", [], "INT64")
        tensor.set_data_from_numpy(np.array(2_000, np.int64))
        answers, started = [], threading.Event()

        def slow_call():
            started.set()
            answers.append(client.infer("slow", [tensor]).as_numpy("y"))

        caller = threading.Thread(target=slow_call)
        caller.start()
        started.wait()
        time.sleep(0.5)  # sent and running: 2,000 iterations take seconds here
        assert not answers
        server.process.send_signal(signal.SIGTERM)
        caller.join(60)
        assert len(answers) == 1 and answers[0].shape == ()
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        server.stop()

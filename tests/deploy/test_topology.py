"""The compose topology without containers: two replicas behind the real nginx, with the
compose's nginx config, on 127.0.0.1. One replica is SIGKILLed under steady load; nginx
retries what failed on the other one, and no client sees an error.

What no proxy can retry is a response whose head has reached it when the replica dies: nginx
has already answered the client. A replica spends a few microseconds between writing a head
and its body, and a model that computes for milliseconds makes that a negligible share of its
time; with a model that does nothing (identity) it is a few percent, and so is a failed run.
"""

import queue
import subprocess
import threading
import time

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg

from tests import onnx_models
from tests.conftest import Server, ServerURL, free_port
from tests.deploy.tools import local_nginx_config, nginx_command, tool
from tests.middleware.access_log import access_lines
from tests.tasks import builders

# Each request runs 30 matmuls of 256 x 256: a model that computes, as served models do.
BODY = {"inputs": [{"name": "iterations", "shape": [], "datatype": "INT64", "data": [30]}]}


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def stack(tmp_path):
    nginx = tool("nginx")
    repo = tmp_path / "models"
    onnx_models.save(onnx_models.slow(), repo, "slow")
    builders.write(repo, "gan", {"task": "gan", "latent_dim": builders.LATENT, "data": builders.digits_data()},
                   {"generator.onnx": builders.decoder()})
    replicas = [Server(repo, env={"MODELSERVE_LOG_LEVEL": "info", "MODELSERVE_ACCESS_LOG": "true"}) for _ in range(2)]
    process = None
    try:
        for replica in replicas:
            replica.wait_ready()
        port, grpc_port = free_port(), free_port()
        (tmp_path / "nginx").mkdir()
        config = local_nginx_config(tmp_path / "nginx", [r.port for r in replicas], port,
                                    [r.grpc_port for r in replicas], grpc_port)
        process = subprocess.Popen(nginx_command(nginx, config), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = ServerURL(f"http://127.0.0.1:{port}")
        url.grpc = f"127.0.0.1:{grpc_port}"

        def nginx_ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {process.stderr.read().decode()}")
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(nginx_ready, "nginx")
        yield url, replicas
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        for replica in replicas:
            replica.stop()


def served(replica: Server) -> int:
    return sum(1 for line in access_lines(replica.log_path) if line["path"].endswith("/infer"))


def test_killing_a_replica_under_load_fails_no_request(stack):
    url, (doomed, survivor) = stack
    results: list[int | str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:  # keep-alive, as real clients do
            while not stop.is_set():
                try:
                    response = http.post("/v2/models/slow/infer", json=BODY)
                    ok = response.status_code == 200 and response.json()["outputs"][0]["name"] == "y"
                    results.append(response.status_code if ok else f"{response.status_code} {response.text[:200]}")
                except httpx.HTTPError as exc:
                    results.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        # Both replicas are taking load before one dies...
        wait_until(lambda: len(results) >= 200 and served(doomed) > 0 and served(survivor) > 0, "load on both replicas")
        doomed.process.kill()
        doomed.process.wait(timeout=10)
        before_kill = len(results)
        # ...and the load goes on, all of it on the survivor now.
        wait_until(lambda: len(results) >= before_kill + 300, "load after the kill")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    failures = [r for r in results if r != 200]
    assert failures == [], f"{len(failures)} of {len(results)} requests failed: {failures[:5]}"
    assert doomed.process.returncode == -9


def test_grpc_infer_and_a_generation_stream_through_nginx(stack):
    url, replicas = stack
    client = tg.InferenceServerClient(url.grpc)
    assert client.is_server_ready()
    tensor = tg.InferInput("iterations", [], "INT64")
    tensor.set_data_from_numpy(np.array(3, np.int64))
    for i in range(6):
        result = client.infer("slow", [tensor], headers={"x-request-id": f"through-nginx-{i}"})
        assert result.as_numpy("y").shape == ()
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put(error or result))
    count = tg.InferInput("num_samples", [1], "INT32")
    count.set_data_from_numpy(np.array([3], np.int32))
    client.async_stream_infer("gan", [count])
    events = [answers.get(timeout=30) for _ in range(4)]
    client.stop_stream()
    assert [e.get_response().parameters["event"].string_param for e in events] == ["sample"] * 3 + ["done"]
    # nginx passed the request id on to the replica that served each call (whose access lines
    # are written in batches, within 50 ms)
    wanted = {f"through-nginx-{i}" for i in range(6)}

    def logged() -> set:
        return {line["request_id"] for r in replicas for line in access_lines(r.log_path)}

    wait_until(lambda: wanted <= logged(), "the six request ids in the replicas' access logs", timeout=10)

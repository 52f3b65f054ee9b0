"""gRPC beside HTTP in every worker, and drained on SIGTERM like HTTP."""

import asyncio
import re
import signal
import threading
import time

import grpc
import httpx
import numpy as np
import tritonclient.grpc as tg
from tritonclient.grpc import service_pb2 as pb
from tritonclient.utils import InferenceServerException

from tests import onnx_models
from tests.conftest import Server
from tests.middleware import raw_http
from tests.test_shutdown import start_held_request


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
        # A call of about 3 s on this machine, whatever its CPU: 2,000 iterations took seconds
        # on one machine and under 0.5 s on another (AVX-512), where the call ended before SIGTERM.
        tensor.set_data_from_numpy(np.array(200, np.int64))
        began = time.perf_counter()
        client.infer("slow", [tensor])
        per_iteration = (time.perf_counter() - began) / 200
        tensor.set_data_from_numpy(np.array(min(200_000, max(2_000, int(3.0 / per_iteration))), np.int64))
        answers, started = [], threading.Event()

        def slow_call():
            started.set()
            answers.append(client.infer("slow", [tensor]).as_numpy("y"))

        caller = threading.Thread(target=slow_call)
        caller.start()
        started.wait()
        time.sleep(0.5)  # sent and running: the call takes about 3 s
        assert not answers
        server.process.send_signal(signal.SIGTERM)
        caller.join(60)
        assert len(answers) == 1 and answers[0].shape == ()
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        server.stop()


def test_a_full_queue_is_resource_exhausted_with_retry_after(tmp_path, serve_repository):
    # About 10 ms a call: on a busy machine the 40 calls must still arrive faster than they run.
    onnx_models.save(onnx_models.slow_chain(depth=400), tmp_path, "slow")
    (tmp_path / "slow" / "config.yaml").write_text("max_batch_size: 1\nmax_queue_size: 2\n")
    url = serve_repository(tmp_path, env={"MODELSERVE_MAX_CONCURRENT_BATCHES": "1"})
    request = pb.ModelInferRequest(model_name="slow")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 256])
    request.raw_input_contents.append(np.ones((1, 256), np.float32).tobytes())

    async def send_all():
        async with grpc.aio.insecure_channel(url.grpc) as channel:
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")

            async def one():
                try:
                    await call(request.SerializeToString())
                    return grpc.StatusCode.OK, "", ()
                except grpc.aio.AioRpcError as exc:
                    return exc.code(), exc.details(), exc.trailing_metadata()

            return await asyncio.gather(*(one() for _ in range(40)))

    answers = asyncio.run(send_all())
    codes = {code for code, _, _ in answers}
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED} and len(codes) == 2
    _, message, trailers = next(a for a in answers if a[0] == grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "queue is full" in message and dict(trailers)["retry-after"] == "1"
    text = httpx.get(f"{url}/metrics").text
    assert re.search(r'failure_total\{model="slow",protocol="grpc",reason="overloaded",version="1"\} [1-9]', text)


def test_grpc_drains_from_the_signal_on_while_http_drains(tmp_path):
    onnx_models.save(onnx_models.slow(), tmp_path / "repo", "slow")
    server = Server(tmp_path / "repo")
    try:
        server.wait_ready()
        client = tg.InferenceServerClient(server.grpc_address)
        assert client.is_server_live()
        sock, rest = start_held_request(server, iterations=1)  # HTTP waits for the last byte
        server.process.send_signal(signal.SIGTERM)
        for _ in range(100):  # a new call is refused while HTTP still drains
            try:
                client.is_server_live()
            except InferenceServerException:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("gRPC still took calls during HTTP's drain")
        assert server.process.poll() is None
        sock.sendall(rest)
        assert raw_http.read_response(sock)[0] == 200
        sock.close()
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        server.stop()

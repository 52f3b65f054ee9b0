"""ModelStreamInfer: generation as a stream of responses, and work that stops with the stream."""

import contextlib
import queue
import threading
import time
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
from tritonclient.grpc import service_pb2 as pb

from tests.tasks import builders
from tests.tasks.test_stream import generated, metric, settled, stream


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    repo = builders.task_repository(tmp_path_factory.mktemp("repo"))
    return module_server(builders.slow_diffusion(repo))


def tensor(name: str, value, datatype: str) -> tg.InferInput:
    array = np.array(value if isinstance(value, list) else [value], dtype=object if datatype == "BYTES" else None)
    if datatype != "BYTES":
        array = array.astype({"INT32": np.int32, "INT64": np.int64, "FP32": np.float32}[datatype])
    result = tg.InferInput(name, list(array.shape), datatype)
    result.set_data_from_numpy(array)
    return result


@contextlib.contextmanager
def open_stream(url, request: pb.ModelInferRequest) -> Iterator[grpc.Future]:
    """A raw ModelStreamInfer call that sends `request` and keeps its side open (as a client
    that has not finished) until the block ends, so a test can cancel it mid-generation."""
    done = threading.Event()

    def requests():
        yield request
        done.wait(60)

    with grpc.insecure_channel(url.grpc) as channel:
        rpc = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer",
                                    request_serializer=pb.ModelInferRequest.SerializeToString,
                                    response_deserializer=pb.ModelStreamInferResponse.FromString)
        try:
            yield rpc(requests())
        finally:
            done.set()


def grpc_stream(url, model, inputs, parameters=None, count: int = 1) -> list:
    """The responses (or error strings) of `count` requests sent on one stream."""
    answers: queue.Queue = queue.Queue()
    client = tg.InferenceServerClient(url.grpc)
    client.start_stream(callback=lambda result, error: answers.put(error or result))
    try:
        for i in range(count):
            client.async_stream_infer(model, inputs, request_id=f"r{i}", parameters=parameters)
        received, finals = [], 0
        while finals < count:
            answer = answers.get(timeout=60)
            received.append(answer)
            if not isinstance(answer, tg.InferResult) or answer.get_response().parameters["triton_final_response"].bool_param:
                finals += 1
        return received
    finally:
        client.stop_stream()
        client.close()


def test_diffusion_streams_each_requested_step_then_the_samples_as_http_does(url):
    params = {"num_samples": 2, "seed": 3, "steps": 10, "label": 4}
    inputs = [tensor("num_samples", 2, "INT32"), tensor("seed", 3, "INT64"), tensor("steps", 10, "INT32"),
              tensor("label", 4, "INT32")]
    responses = grpc_stream(url, "diffusion", inputs, parameters={"every": 3})
    events = [r.get_response().parameters["event"].string_param for r in responses]
    assert events == ["progress"] * 3 + ["done"]
    assert [r.get_response().parameters["step"].int64_param for r in responses[:-1]] == [3, 6, 9]
    assert all(r.get_response().id == "r0" for r in responses)
    over_http = stream(url, "diffusion", every=3, **params)
    for response, event in zip(responses, over_http):
        np.testing.assert_array_equal(response.as_numpy("samples"), np.array(event["samples"], np.float32))
    assert responses[-1].as_numpy("seed").tolist() == [3]
    batch = np.array(generated(url, "diffusion", **params)["samples"], np.float32)
    np.testing.assert_array_equal(responses[-1].as_numpy("samples"), batch)  # the same generation


@pytest.mark.parametrize("model", ["gan", "vae", "flow"])
def test_latent_models_stream_one_response_per_sample(url, model):
    inputs = [tensor("num_samples", 3, "INT32"), tensor("seed", 8, "INT64")]
    responses = grpc_stream(url, model, inputs)
    kinds = [(r.get_response().parameters["event"].string_param, r.get_response().parameters["index"].int64_param)
             for r in responses]
    assert kinds == [("sample", 0), ("sample", 1), ("sample", 2), ("done", 0)]
    np.testing.assert_allclose(np.concatenate([r.as_numpy("samples") for r in responses[:3]]),
                               responses[3].as_numpy("samples"))


def test_errors_go_on_the_stream_which_goes_on(url):
    answers = grpc_stream(url, "diffusion", [tensor("steps", 101, "INT32")], count=1)
    assert "max_steps" in str(answers[0])
    answers = grpc_stream(url, "missing", [tensor("steps", 1, "INT32")])
    assert "unknown model 'missing'" in str(answers[0])
    # a model that does not generate answers once, marked final
    x = tg.InferInput("x", [1, 10], "FP32")
    x.set_data_from_numpy(np.zeros((1, 10), np.float32))
    regression = grpc_stream(url, "regressor", [x], count=2)
    assert len(regression) == 2 and all(isinstance(r, tg.InferResult) for r in regression)


def test_sampling_stops_when_the_stream_is_cancelled(url):
    executions = lambda: metric(url, "modelserve_inference_exec_count_total", "slow-diffusion")
    cancelled = lambda: metric(url, "modelserve_inference_request_failure_total", "slow-diffusion",
                               reason="cancelled", protocol="grpc")
    before, cancelled_before = executions(), cancelled()
    request = pb.ModelInferRequest(model_name="slow-diffusion")
    steps = 4000
    for name, datatype, value in (("seed", "INT64", 0), ("steps", "INT32", steps)):
        request.inputs.add(name=name, datatype=datatype, shape=[1]).contents.CopyFrom(
            pb.InferTensorContents(**({"int64_contents": [value]} if datatype == "INT64" else {"int_contents": [value]})))
    with open_stream(url, request) as call:
        assert next(call).infer_response.parameters["step"].int64_param == 1
        for _ in range(200):  # leave only once the loop is running
            if executions() - before >= 3:
                break
            time.sleep(0.02)
        call.cancel()
    ran = settled(executions) - before
    assert 3 <= ran < steps
    assert settled(cancelled) == cancelled_before + 1
    assert httpx.get(f"{url}/v2/health/live").status_code == 200

"""ModelStreamInfer for the committed translation model: one response per token as the SSE stream
sends them, a last one with the finish reason, and a cancelled stream that stops decoding."""

import shutil

import httpx
import pytest
import tritonclient.grpc as tg
from tritonclient.grpc import service_pb2 as pb

from tests.conftest import ROOT
from tests.grpc.test_grpc_stream import grpc_stream, open_stream, tensor
from tests.tasks.test_stream import metric, settled
from tests.tasks.test_translation import KNOWN, MODEL, stream

TRAINED = ROOT / "models" / MODEL
SLOW = "en-fr-slow"  # the same graphs, each decoder step held 150 ms for company
LONG = "seven hundred and ninety-seven thousand, seven hundred and ninety-seven"

pytestmark = pytest.mark.skipif(not TRAINED.is_dir(), reason="models/en-fr-numbers is not trained")


@pytest.fixture(scope="module")
def url(module_server, tmp_path_factory) -> str:
    repo = tmp_path_factory.mktemp("translation") / "models"
    shutil.copytree(TRAINED, repo / MODEL)
    shutil.copytree(TRAINED, repo / SLOW)
    (repo / SLOW / "config.yaml").write_text("{max_batch_size: 64, max_queue_delay_ms: 150}\n")
    return module_server(repo)


def text(value: str) -> tg.InferInput:
    return tensor("text_input", [value.encode()], "BYTES")


def parameter(response, key: str):
    entry = response.get_response().parameters[key]
    return getattr(entry, entry.WhichOneof("parameter_choice"))


def test_one_response_per_token_then_the_finish_reason_as_the_sse_stream(url):
    responses = grpc_stream(url, MODEL, [text(LONG)])
    tokens, done = responses[:-1], responses[-1]
    events = stream(url, LONG)
    assert len(tokens) == len(events) - 1
    for response, event in zip(tokens, events):
        assert response.as_numpy("text_output").tolist() == [event["text_output"].encode()]
        assert parameter(response, "index") == event["index"] and parameter(response, "token") == event["token"]
        assert parameter(response, "triton_final_response") is False
    assert b"".join(r.as_numpy("text_output")[0] for r in tokens).decode() == KNOWN[LONG]
    assert parameter(done, "triton_final_response") is True and parameter(done, "event") == "done"
    assert done.as_numpy("finish_reason").tolist() == [b"stop"] and done.as_numpy("text_output").tolist() == [b""]
    assert parameter(done, "output") == KNOWN[LONG] and parameter(done, "tokens") == len(tokens)


def test_decoding_options_as_tensors_or_request_parameters(url):
    as_tensor = grpc_stream(url, MODEL, [text("ninety-nine"), tensor("max_tokens", 1, "INT32")])
    as_parameter = grpc_stream(url, MODEL, [text("ninety-nine")], parameters={"max_tokens": 1})
    for responses in (as_tensor, as_parameter):
        assert [r.as_numpy("text_output").tolist() for r in responses] == [[b"quatre"], [b""]]
        assert responses[-1].as_numpy("finish_reason").tolist() == [b"length"]
    sampled = [grpc_stream(url, MODEL, [text(LONG)], parameters={"temperature": 1.5, "seed": 7}) for _ in range(2)]
    assert [parameter(r[-1], "output") for r in sampled] == [parameter(sampled[0][-1], "output")] * 2
    assert parameter(sampled[0][-1], "seed") == 7


def test_bad_requests_are_errors_on_the_stream(url):
    [error] = grpc_stream(url, MODEL, [tensor("text_input", [b"one", b"two"], "BYTES")])
    assert "one string" in str(error)
    [error] = grpc_stream(url, MODEL, [text("zebra")])
    assert "'zebra'" in str(error)
    [error] = grpc_stream(url, MODEL, [text("one"), tensor("max_tokens", 1, "INT32")], parameters={"max_tokens": 2})
    assert "max_tokens given both" in str(error)
    [error] = grpc_stream(url, MODEL, [text("one")], parameters={"beam": 2})
    assert "unknown parameter 'beam'" in str(error)


def test_a_cancelled_stream_stops_decoding_at_the_next_step(url):
    executions = lambda: metric(url, "modelserve_inference_exec_count_total", SLOW)
    cancelled = lambda: metric(url, "modelserve_inference_request_failure_total", SLOW,
                               reason="cancelled", protocol="grpc")
    before, cancelled_before = executions(), cancelled()
    request = pb.ModelInferRequest(model_name=SLOW)
    request.inputs.add(name="text_input", datatype="BYTES", shape=[1]).contents.bytes_contents.append(LONG.encode())
    with open_stream(url, request) as call:
        first = next(call).infer_response
        assert first.parameters["index"].int64_param == 0
        call.cancel()  # after the first token: 1 encoder call and 1 decoder step have run
    ran = settled(executions) - before
    tokens = len(grpc_stream(url, MODEL, [text(LONG)])) - 1  # a full run: 1 + tokens + 1 (EOS) calls
    assert 2 <= ran <= 3 < tokens  # at most the step already running when it was cancelled
    assert settled(cancelled) == cancelled_before + 1
    assert metric(url, "modelserve_running_sequences", SLOW) == 0
    assert httpx.get(f"{url}/v2/health/live").status_code == 200

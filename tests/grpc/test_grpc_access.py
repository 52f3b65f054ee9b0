"""gRPC's keys, health, reflection, logs, deadlines and model control, against a real server."""

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tritonclient.utils import InferenceServerException

from service.access import ADMIN_KEY_NEEDED, CONTROL_DISABLED
from tests import onnx_models
from tests.middleware.access_log import line_for, log_path

API_KEY, ADMIN_KEY = "k-infer-7f3a", "k-admin-51d0"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.identity("FP32"), repo, "ident")
    onnx_models.save(onnx_models.add_constant(1.0), repo, "m")
    onnx_models.save(onnx_models.slow(), repo, "slow")
    return repo


@pytest.fixture(scope="module")
def url(repo, module_server):
    return module_server(repo, env={
        "MODELSERVE_API_KEYS": API_KEY, "MODELSERVE_ADMIN_KEYS": ADMIN_KEY, "MODELSERVE_LOG_LEVEL": "info",
        "MODELSERVE_ACCESS_LOG": "true",
    }, args=["--model-control-mode", "explicit", "--load-model", "*"])


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def infer(url, headers=None, request_id=""):
    client = tg.InferenceServerClient(url.grpc)
    try:
        tensor = tg.InferInput("input", [1, 3], "FP32")
        tensor.set_data_from_numpy(np.ones((1, 3), np.float32))
        return client.infer("ident", [tensor], headers=headers, request_id=request_id).as_numpy("output")
    finally:
        client.close()


def refusal(action) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as error:
        action()
    return error.value.status(), error.value.message()


def test_keys_follow_the_http_rules(url):
    assert infer(url, bearer(API_KEY)).tolist() == [[1, 1, 1]]
    assert infer(url, bearer(ADMIN_KEY)).tolist() == [[1, 1, 1]]
    for headers in (None, bearer("wrong"), {"authorization": f"Basic {API_KEY}"}):
        status, message = refusal(lambda headers=headers: infer(url, headers))
        assert status == "StatusCode.UNAUTHENTICATED" and "API key" in message
    client = tg.InferenceServerClient(url.grpc)
    assert client.is_server_live() and client.is_server_ready()  # open, as /v2/health is
    status, message = refusal(lambda: client.get_model_repository_index(headers=bearer(API_KEY)))
    assert status == "StatusCode.PERMISSION_DENIED" and message == ADMIN_KEY_NEEDED
    assert [m.name for m in client.get_model_repository_index(headers=bearer(ADMIN_KEY)).models] == ["ident", "m", "slow"]


def test_admin_keys_load_and_unload(url):
    client = tg.InferenceServerClient(url.grpc)
    admin = bearer(ADMIN_KEY)
    client.unload_model("m", headers=admin)
    assert not client.is_model_ready("m", headers=admin)
    status, message = refusal(lambda: client.unload_model("m", headers=admin))
    assert status == "StatusCode.NOT_FOUND" and "not loaded" in message
    client.load_model("m", headers=admin)
    assert client.is_model_ready("m", headers=admin)
    status, message = refusal(lambda: client.load_model("m", headers=admin, config="{}"))
    assert status == "StatusCode.INVALID_ARGUMENT" and "not accepted" in message
    status, _ = refusal(lambda: client.load_model("nowhere", headers=admin))
    assert status == "StatusCode.NOT_FOUND"


def test_model_control_disabled_is_failed_precondition(repo, serve_repository):
    url = serve_repository(repo)  # no admin keys, control not allowed; mode none
    client = tg.InferenceServerClient(url.grpc)
    status, message = refusal(lambda: client.load_model("m"))
    assert status == "StatusCode.FAILED_PRECONDITION" and message == CONTROL_DISABLED
    trusted = serve_repository(repo, env={"MODELSERVE_ALLOW_MODEL_CONTROL_WITHOUT_ADMIN_KEYS": "true"})
    status, message = refusal(lambda: tg.InferenceServerClient(trusted.grpc).load_model("m"))
    assert status == "StatusCode.FAILED_PRECONDITION" and "model-control-mode none" in message


def test_health_service_and_reflection(url):
    with grpc.insecure_channel(url.grpc) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        for service in ("", "inference.GRPCInferenceService"):
            assert check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [answer] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in answer.list_services_response.service}
        assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names


def test_request_id_from_metadata_reaches_the_log(repo, url):
    infer(url, {**bearer(API_KEY), "x-request-id": "trace-grpc-1"})
    line = line_for(log_path(repo, url), "trace-grpc-1")
    assert line["protocol"] == "grpc" and line["model"] == "ident" and line["status"] == "OK"
    assert line["path"] == "/inference.GRPCInferenceService/ModelInfer"
    refusal(lambda: infer(url, {"x-request-id": "trace-grpc-2"}))
    assert line_for(log_path(repo, url), "trace-grpc-2")["status"] == "UNAUTHENTICATED"


def test_deadline_is_honoured(url):
    client = tg.InferenceServerClient(url.grpc)
    tensor = tg.InferInput("iterations", [], "INT64")
    # Seconds of work (0.85 ms an iteration here), several times the deadline on any CPU; not
    # more, as the run the deadline abandoned holds a core until it ends (and the shutdown waits).
    tensor.set_data_from_numpy(np.array(5_000, np.int64))
    status, _ = refusal(lambda: client.infer("slow", [tensor], headers=bearer(API_KEY), client_timeout=0.3))
    assert status == "StatusCode.DEADLINE_EXCEEDED"
    assert client.is_server_live()


def test_request_timeout_answers_deadline_exceeded(repo, serve_repository):
    # The server's own --request-timeout-s, not the client's deadline: the call that outlives it
    # is answered with HTTP's 504 message, the next one is served as usual.
    url = serve_repository(repo, env={"MODELSERVE_REQUEST_TIMEOUT_S": "0.3"})
    client = tg.InferenceServerClient(url.grpc)
    tensor = tg.InferInput("iterations", [], "INT64")
    tensor.set_data_from_numpy(np.array(5_000, np.int64))
    status, message = refusal(lambda: client.infer("slow", [tensor]))
    assert status == "StatusCode.DEADLINE_EXCEEDED"
    assert message == "request did not complete within 0.3 s"
    assert (infer(url) == np.ones((1, 3), np.float32)).all()
    client.close()


def test_a_known_request_header_follows_its_model_through_load_and_unload(tmp_path, serve_repository):
    """ModelInfer keeps a request header's checked reading (service/grpc/infer_wire.py), never the
    model: a new latest version answers the same header, and an unloaded model refuses it as it
    refuses a header never seen."""
    onnx_models.save(onnx_models.add_constant(1.0), tmp_path, "m", version=1)
    url = serve_repository(tmp_path, env={"MODELSERVE_ALLOW_MODEL_CONTROL_WITHOUT_ADMIN_KEYS": "true"},
                           args=["--model-control-mode", "explicit", "--load-model", "*"])
    client = tg.InferenceServerClient(url.grpc)

    def add(rows: int) -> tuple[str, list]:
        tensor = tg.InferInput("x", [rows, 1], "FP32")
        tensor.set_data_from_numpy(np.arange(rows, dtype=np.float32).reshape(rows, 1))
        result = client.infer("m", [tensor])
        return result.get_response().model_version, result.as_numpy("y").reshape(-1).tolist()

    assert add(2) == add(2) == ("1", [1.0, 2.0])
    onnx_models.save(onnx_models.add_constant(5.0), tmp_path, "m", version=2)
    client.load_model("m")
    assert add(2) == ("2", [5.0, 6.0])
    client.unload_model("m")
    known, new = refusal(lambda: add(2)), refusal(lambda: add(3))
    assert known == new and known[0] in ("StatusCode.NOT_FOUND", "StatusCode.UNAVAILABLE")
    client.load_model("m")
    assert add(2) == ("2", [5.0, 6.0])

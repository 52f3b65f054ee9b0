"""Triton's model repository extension and control modes, against a real server."""

import shutil
import threading
import time

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests import onnx_models

# Model control is for admins; these tests run on a trusted loopback without keys.
TRUSTED = {"MODELSERVE_ALLOW_MODEL_CONTROL_WITHOUT_ADMIN_KEYS": "true"}
ONE = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}


def answer(url: str, model: str = "m", version: str | None = None) -> float:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    response = httpx.post(url + path, json=ONE, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["outputs"][0]["data"][0]


def index(url: str, **body) -> dict:
    rows = httpx.post(f"{url}/v2/repository/index", json=body or None).json()
    return {(r["name"], r["version"]): r for r in rows}


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "models"
    onnx_models.save(onnx_models.add_constant(1.0), repo, "m", version=1)
    onnx_models.save(onnx_models.add_constant(10.0), repo, "other", version=1)
    onnx_models.save(onnx_models.add_constant(0.0), repo, "broken").write_bytes(b"\x00garbage")
    return repo


def test_mode_none_refuses_changes_but_indexes(repo, serve_repository):
    url = serve_repository(repo, env=TRUSTED)
    response = httpx.post(f"{url}/v2/repository/models/m/load")
    assert response.status_code == 403 and "model-control-mode none" in response.json()["error"]
    rows = index(url)
    assert rows[("m", "1")]["state"] == "READY" and rows[("broken", "1")]["state"] == "UNAVAILABLE"
    assert "could not be loaded" in rows[("broken", "1")]["reason"]
    assert set(index(url, ready=True)) == {("m", "1"), ("other", "1")}


def test_explicit_mode_loads_what_it_is_told(repo, serve_repository):
    url = serve_repository(repo, env=TRUSTED, args=["--model-control-mode", "explicit", "--load-model", "m"])
    assert answer(url) == 2.0
    assert httpx.get(f"{url}/v2/models/other").status_code == 404
    assert index(url)[("other", "")]["reason"] == "unloaded"

    assert httpx.post(f"{url}/v2/repository/models/other/load").status_code == 200
    assert answer(url, "other") == 11.0
    assert httpx.post(f"{url}/v2/repository/models/m/unload").status_code == 200
    assert httpx.post(f"{url}/v2/models/m/infer", json=ONE).status_code == 404
    assert httpx.post(f"{url}/v2/repository/models/m/unload").status_code == 404

    failed = httpx.post(f"{url}/v2/repository/models/broken/load")
    assert failed.status_code == 400 and "could not be loaded" in failed.json()["error"]
    assert httpx.post(f"{url}/v2/repository/models/nowhere/load").status_code == 404
    assert httpx.post(f"{url}/v2/repository/models/..%2Fm/load").status_code in (404, 400)
    for parameters in ({"config": "{}"}, {"file:1/model.onnx": "AAAA"}):
        refused = httpx.post(f"{url}/v2/repository/models/m/load", json={"parameters": parameters})
        assert refused.status_code == 400 and "not accepted" in refused.json()["error"]


def test_explicit_star_loads_everything(repo, serve_repository):
    url = serve_repository(repo, env=TRUSTED, args=["--model-control-mode", "explicit", "--load-model", "*"])
    assert answer(url) == 2.0 and answer(url, "other") == 11.0


def test_reload_swaps_atomically_under_load(repo, serve_repository):
    url = serve_repository(repo, env=TRUSTED, args=["--model-control-mode", "explicit", "--load-model", "m"])
    failures, answers, stop = [], set(), threading.Event()

    def hammer():
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                response = client.post(f"{url}/v2/models/m/infer", json=ONE)
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    answers.add(response.json()["outputs"][0]["data"][0])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: 2.0 in answers)  # on a busy machine the first reload could come first
        for step in range(2, 7):
            onnx_models.save(onnx_models.add_constant(float(step)), repo, "m", version=step)
            assert httpx.post(f"{url}/v2/repository/models/m/load", timeout=30).status_code == 200
            assert answer(url) == 1.0 + step
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert {2.0, 7.0} <= answers


def test_a_failed_reload_keeps_the_old_version_serving(repo, serve_repository):
    url = serve_repository(repo, env=TRUSTED, args=["--model-control-mode", "explicit", "--load-model", "m"])
    model_file = repo / "m" / "1" / "model.onnx"
    model_file.write_bytes(model_file.read_bytes()[:40])  # truncated in place
    response = httpx.post(f"{url}/v2/repository/models/m/load")
    assert response.status_code == 400 and "serving the files loaded before" in response.json()["error"]
    assert answer(url) == 2.0
    row = index(url)[("m", "1")]
    assert row["state"] == "READY" and "reload failed" in row["reason"]
    assert 'modelserve_model_load_failure_total{model="m",version="1"} 1.0' in httpx.get(f"{url}/metrics").text


def test_poll_mode_follows_the_repository(repo, serve_repository):
    url = serve_repository(repo, env=TRUSTED, args=["--model-control-mode", "poll", "--repository-poll-secs", "0.2"])
    assert answer(url) == 2.0
    assert httpx.post(f"{url}/v2/repository/models/m/load").status_code == 403

    onnx_models.save(onnx_models.add_constant(2.0), repo, "m", version=2)  # new version
    wait_for(lambda: answer(url) == 3.0)

    (repo / "m" / "config.yaml").write_text("version_policy: {latest: 1}\nnot_a_field: true\n")  # invalid
    wait_for(lambda: "reload failed" in index(url)[("m", "2")]["reason"])
    assert answer(url) == 3.0

    (repo / "m" / "config.yaml").write_text("version_policy: {all: {}}\n")  # fixed: both versions
    wait_for(lambda: ("m", "1") in index(url, ready=True))
    assert answer(url, version="1") == 2.0 and answer(url, version="2") == 3.0

    shutil.rmtree(repo / "m" / "2")  # a version folder removed
    wait_for(lambda: httpx.post(f"{url}/v2/models/m/versions/2/infer", json=ONE).status_code == 404)
    assert answer(url) == 2.0

    onnx_models.save(onnx_models.add_constant(5.0), repo, "newcomer")  # a new model
    wait_for(lambda: httpx.get(f"{url}/v2/models/newcomer/ready").status_code == 200)
    shutil.rmtree(repo / "other")  # a model removed
    wait_for(lambda: httpx.get(f"{url}/v2/models/other").status_code == 404)


def test_statistics_in_tritons_shape(repo, serve_repository):
    url = serve_repository(repo, env=TRUSTED)
    for _ in range(3):
        answer(url)
    httpx.post(f"{url}/v2/models/m/infer", json={"inputs": []})  # fails validation
    stats = httpx.get(f"{url}/v2/models/m/stats").json()["model_stats"]
    assert len(stats) == 1
    entry = stats[0]
    assert entry["name"] == "m" and entry["version"] == "1"
    assert entry["inference_count"] == 3 and entry["execution_count"] == 3
    assert entry["inference_stats"]["success"]["count"] == 3 and entry["inference_stats"]["success"]["ns"] > 0
    assert entry["inference_stats"]["fail"]["count"] == 1
    assert entry["inference_stats"]["compute_infer"]["count"] == 3
    assert entry["batch_stats"][0]["batch_size"] == 1 and entry["batch_stats"][0]["compute_infer"]["count"] == 3
    assert entry["last_inference"] > 0
    everything = httpx.get(f"{url}/v2/models/stats").json()["model_stats"]
    assert {(e["name"], e["version"]) for e in everything} == {("m", "1"), ("other", "1")}
    assert httpx.get(f"{url}/v2/models/m/versions/1/stats").json()["model_stats"][0]["inference_count"] == 3
    assert httpx.get(f"{url}/v2/models/nope/stats").status_code == 404


def test_tritonclient_repository_statistics_and_infer_calls(repo, serve_repository):
    # tritonclient sends its repository bodies ({} and {"parameters": ...}) with no Content-Type;
    # they were 400s when the routes read JSON only under application/json.
    url = serve_repository(repo, env=TRUSTED, args=["--model-control-mode", "explicit", "--load-model", "m"])
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        rows = {(r["name"], r.get("version", "")): r["state"] for r in client.get_model_repository_index()}
        assert rows[("m", "1")] == "READY" and rows[("other", "")] == "UNAVAILABLE"
        client.load_model("other")
        assert client.is_model_ready("other") and answer(url, "other") == 11.0
        client.unload_model("other")
        assert not client.is_model_ready("other")
        with pytest.raises(InferenceServerException, match="not accepted"):
            client.load_model("m", config='{"backend": "onnxruntime"}')
        with pytest.raises(InferenceServerException, match="no model folder named 'nowhere'"):
            client.load_model("nowhere")

        x = triton.InferInput("x", [1, 1], "FP32")
        x.set_data_from_numpy(np.array([[1.0]], np.float32))
        assert client.infer("m", [x]).as_numpy("y").tolist() == [[2.0]]
        assert client.infer("m", [x], model_version="1").as_numpy("y").tolist() == [[2.0]]
        everything = client.get_inference_statistics()["model_stats"]
        assert [(e["name"], e["version"]) for e in everything] == [("m", "1")]
        assert client.get_inference_statistics("m")["model_stats"][0]["inference_count"] == 2
        assert client.get_inference_statistics("m", "1")["model_stats"][0]["inference_count"] == 2
        assert client.get_model_config("m")["input"][0]["optional"] is False
    finally:
        client.close()


def test_repository_bodies_are_json_whatever_their_content_type(repo, serve_repository):
    url = serve_repository(repo, env=TRUSTED, args=["--model-control-mode", "explicit", "--load-model", "m"])
    with httpx.Client(base_url=url) as client:
        for content_type in (None, "text/plain", "application/octet-stream", "application/x-www-form-urlencoded"):

            def post(path: str, body: bytes, content_type: str | None = content_type) -> httpx.Response:
                request = client.build_request("POST", path, content=body)
                if content_type is None:
                    request.headers.pop("content-type", None)
                else:
                    request.headers["content-type"] = content_type
                return client.send(request)

            assert post("/v2/repository/models/other/load", b"").status_code == 200  # empty: {}
            unload = post("/v2/repository/models/other/unload", b'{"parameters": {"unload_dependents": false}}')
            assert unload.status_code == 200, (content_type, unload.text)
            assert post("/v2/repository/models/other/load", b"{}").status_code == 200
            ready = post("/v2/repository/index", b'{"ready": true}').json()
            assert {(r["name"], r["version"]) for r in ready} == {("m", "1"), ("other", "1")}
            assert len(post("/v2/repository/index", b"").json()) == 3
            refused = post("/v2/repository/models/m/load", b'{"parameters": {"config": "{}"}}')
            assert refused.status_code == 400 and "not accepted" in refused.json()["error"]
            malformed = post("/v2/repository/index", b'{"ready": ')
            assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
            wrong = post("/v2/repository/index", b'{"ready": "yes"}').json()["error"]
            assert wrong.startswith("invalid request: body.ready"), wrong

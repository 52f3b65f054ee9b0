"""The tasks merged after the gRPC server, over gRPC with tritonclient: text-to-image streams with
its prompt as a BYTES tensor, node classification answers ModelInfer with its two tensors; each
gives what HTTP gives."""

import json

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th

from tests.conftest import ROOT
from tests.grpc.test_grpc_stream import grpc_stream, tensor
from tests.tasks import builders

GCN = ROOT / "models" / "graph-gcn"


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    repo = builders.task_repository(tmp_path_factory.mktemp("repo"))
    builders.write(repo, "graph", {"task": "node-classification", "labels": ["a", "b", "c"]},
                   {"model.onnx": builders.node_classifier()})
    if GCN.is_dir():
        (repo / "graph-gcn").symlink_to(GCN.resolve(), target_is_directory=True)
    return module_server(repo)


def test_text_to_image_streams_the_prompt_as_bytes_as_http_does(url):
    params = {"prompt": "a thick seven", "num_samples": 2, "seed": 4, "steps": 10, "guidance": 3.0}
    inputs = [tensor("prompt", [b"a thick seven"], "BYTES"), tensor("num_samples", 2, "INT32"),
              tensor("seed", 4, "INT64"), tensor("steps", 10, "INT32"), tensor("guidance", 3.0, "FP32")]
    responses = grpc_stream(url, "text2img", inputs, parameters={"every": 3})
    kinds = [r.get_response().parameters["event"].string_param for r in responses]
    assert kinds == ["progress"] * 3 + ["done"]
    with httpx.stream("POST", f"{url}/v2/models/text2img/generate_stream", json={**params, "every": 3},
                      timeout=60) as reply:
        events = [json.loads(line[6:]) for line in reply.iter_lines() if line.startswith("data: ")]
    for response, event in zip(responses, events):
        np.testing.assert_array_equal(response.as_numpy("samples"), np.array(event["samples"], np.float32))
    [bad] = grpc_stream(url, "text2img", [tensor("prompt", [b"zebra"], "BYTES")])
    assert "'zebra'" in str(bad)


def _graph_inputs(module, x: np.ndarray, edge_index: np.ndarray) -> list:
    inputs = [module.InferInput("x", list(x.shape), "FP32"), module.InferInput("edge_index", list(edge_index.shape), "INT64")]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(edge_index)
    return inputs


def _both(url, model: str, x: np.ndarray, edge_index: np.ndarray) -> tuple:
    over_grpc = tg.InferenceServerClient(url.grpc).infer(model, _graph_inputs(tg, x, edge_index))
    over_http = th.InferenceServerClient(url.removeprefix("http://")).infer(model, _graph_inputs(th, x, edge_index))
    return over_grpc, over_http


def test_node_classification_model_infer_takes_the_two_tensors(url):
    x = np.array([[0.5, -0.5], [1.0, 0.0], [0.0, 1.0]], np.float32)
    edge_index = np.array([[0, 1, 1, 2], [1, 0, 2, 1]], np.int64)
    over_grpc, over_http = _both(url, "graph", x, edge_index)
    h = x @ builders.NODE_W
    np.testing.assert_allclose(over_grpc.as_numpy("logits"), h + np.array([h[1], h[0] + h[2], h[1]]), rtol=1e-6)
    np.testing.assert_array_equal(over_grpc.as_numpy("logits"), over_http.as_numpy("logits"))
    bad = np.array([[0, 7], [7, 0]], np.int64)  # node 7 of a 3-node graph
    with pytest.raises(tg.InferenceServerException) as refused:
        tg.InferenceServerClient(url.grpc).infer("graph", _graph_inputs(tg, x, bad))
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT" and "7" in refused.value.message()


@pytest.mark.skipif(not GCN.is_dir(), reason="models/graph-gcn is not trained")
def test_the_committed_gcn_answers_the_same_over_both_transports(url):
    card = json.loads(max((p for p in GCN.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
                      .joinpath("card.json").read_text())
    graph = card["graphs"]["karate"]
    pairs = np.array(graph["edges"], dtype=np.int64)
    x, edge_index = np.array(graph["nodes"], np.float32), np.concatenate([pairs, pairs[:, ::-1]]).T.copy()
    over_grpc, over_http = _both(url, "graph-gcn", x, edge_index)
    for name in ("logits", "embeddings"):
        np.testing.assert_array_equal(over_grpc.as_numpy(name), over_http.as_numpy(name))

"""The node-classification task on the committed graph models: V2 infer with the two tensors
(tritonclient), V1 :predict with graphs as JSON, bad graphs refused with a 400 naming the problem,
and concurrent graphs sharing executions without changing any answer."""

import asyncio
import json
import shutil

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import ROOT

MODELS = ROOT / "models"
SERVED = ("graph-gcn", "graph-gcn-deep")
LIMITED = "graph-limited"  # graph-gcn under an operator's small limits
LIMITS = {"max_nodes": 40, "max_edges": 200}
JOINED = "graph-joined"  # graph-gcn-deep with concurrent graphs joined (max_batch_size 64)


def version_dir(name: str):
    folder = MODELS / name
    versions = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()] if folder.is_dir() else []
    return max(versions, key=lambda p: int(p.name), default=None)


@pytest.fixture(scope="module")
def card() -> dict:
    if any(version_dir(n) is None for n in SERVED):
        pytest.skip("graph-gcn and graph-gcn-deep are not in models/ (python -m training graph-gcn)")
    return json.loads((version_dir("graph-gcn") / "card.json").read_text())


@pytest.fixture(scope="module")
def url(card, module_server, tmp_path_factory) -> str:
    repo = tmp_path_factory.mktemp("graphs") / "models"
    repo.mkdir()
    for name in SERVED:
        (repo / name).symlink_to((MODELS / name).resolve(), target_is_directory=True)
    limited = repo / LIMITED
    shutil.copytree(version_dir("graph-gcn"), limited / "1")
    (limited / "config.yaml").write_text("".join(f"{k}: {v}\n" for k, v in LIMITS.items()))
    shutil.copytree(version_dir("graph-gcn-deep"), repo / JOINED / "1")
    (repo / JOINED / "config.yaml").write_text("max_batch_size: 64\n")
    return module_server(repo)


def karate(card: dict) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The card's karate club: features (34, F), edge_index (2, 156) both ways, clubs."""
    graph = card["graphs"]["karate"]
    pairs = np.array(graph["edges"], dtype=np.int64)
    edge_index = np.concatenate([pairs, pairs[:, ::-1]]).T.copy()
    return np.array(graph["nodes"], dtype=np.float32), edge_index, graph["communities"]


def ort_run(name: str, x: np.ndarray, edge_index: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(version_dir(name) / "model.onnx"), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x, "edge_index": edge_index})


def v2(url: str, name: str, x: np.ndarray, edge_index: np.ndarray, binary: bool = True) -> dict[str, np.ndarray]:
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    inputs = [triton.InferInput("x", list(x.shape), "FP32"), triton.InferInput("edge_index", list(edge_index.shape), "INT64")]
    inputs[0].set_data_from_numpy(x, binary_data=binary)
    inputs[1].set_data_from_numpy(edge_index, binary_data=binary)
    result = client.infer(name, inputs)
    return {"logits": result.as_numpy("logits"), "embeddings": result.as_numpy("embeddings")}


def test_signature_has_dynamic_nodes_and_edges(url):
    meta = httpx.get(f"{url}/v2/models/graph-gcn").json()
    assert meta["inputs"][0] | {"shape": None} == {"name": "x", "datatype": "FP32", "shape": None}
    assert meta["inputs"][0]["shape"][0] == -1
    assert meta["inputs"][1] == {"name": "edge_index", "datatype": "INT64", "shape": [2, -1]}
    assert meta["outputs"][0]["name"] == "logits" and meta["outputs"][0]["shape"] == [-1, 5]
    assert meta["parameters"]["task"] == "node-classification"


@pytest.mark.parametrize("name", SERVED)
def test_v2_infer_is_the_onnx_graph(url, card, name):
    x, edge_index, _ = karate(card)
    got = v2(url, name, x, edge_index)
    want = ort_run(name, x, edge_index)
    np.testing.assert_allclose(got["logits"], want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["embeddings"], want[1], rtol=1e-5, atol=1e-6)
    json_result = v2(url, name, x, edge_index, binary=False)
    np.testing.assert_allclose(json_result["logits"], want[0], rtol=1e-5, atol=1e-6)


def test_v1_labels_every_node_and_measures_oversmoothing(url, card):
    graph = card["graphs"]["karate"]
    x, edge_index, clubs = karate(card)
    body = {"instances": [{"nodes": graph["nodes"], "edges": graph["edges"]}]}
    reply = httpx.post(f"{url}/v1/models/graph-gcn:predict", json=body)
    assert reply.status_code == 200, reply.text
    [prediction] = reply.json()["predictions"]
    logits, embeddings = ort_run("graph-gcn", x, edge_index)
    labels = card["dataset"]["labels"]
    assert [n["label"] for n in prediction["nodes"]] == [labels[i] for i in logits.argmax(1)]
    for node in prediction["nodes"]:
        assert sum(node["probabilities"].values()) == pytest.approx(1.0)
        assert node["probability"] == max(node["probabilities"].values())
    accuracy = np.mean([labels.index(n["label"]) == c for n, c in zip(prediction["nodes"], clubs)])
    assert accuracy == pytest.approx(card["metrics"]["karate_accuracy"], abs=1e-6)
    from training.gcn import measures  # the card's own formulas

    want = measures(embeddings, edge_index)
    for key, value in want.items():
        assert prediction["oversmoothing"][key] == pytest.approx(value, rel=1e-4, abs=1e-7)


def test_the_deep_model_is_oversmoothed_live(url, card):
    graph = card["graphs"]["generated"]
    body = {"instances": [{"nodes": graph["nodes"], "edges": graph["edges"]}]}
    shallow, deep = (httpx.post(f"{url}/v1/models/{n}:predict", json=body).json()["predictions"][0] for n in SERVED)
    assert deep["oversmoothing"]["cosine_similarity"] > 0.99 > shallow["oversmoothing"]["cosine_similarity"]
    labels = card["dataset"]["labels"]
    right = [sum(labels.index(n["label"]) == c for n, c in zip(p["nodes"], graph["communities"])) for p in (shallow, deep)]
    assert right[0] > right[1]


def test_undirected_pairs_are_both_directions_and_directed_ones_are_not(url, card):
    graph = card["graphs"]["karate"]
    given_twice = graph["edges"] + [[b, a] for a, b in graph["edges"]]
    once, twice, directed = (
        httpx.post(f"{url}/v1/models/graph-gcn:predict", json=body).json()["predictions"][0]
        for body in ({"instances": [{"nodes": graph["nodes"], "edges": graph["edges"]}]},
                     {"instances": [{"nodes": graph["nodes"], "edges": given_twice}]},
                     {"instances": [{"nodes": graph["nodes"], "edges": given_twice}], "directed": True}))
    assert once == twice
    assert [n["label"] for n in directed["nodes"]] == [n["label"] for n in once["nodes"]]
    one_way = httpx.post(f"{url}/v1/models/graph-gcn:predict", json={
        "instances": [{"nodes": graph["nodes"], "edges": graph["edges"]}], "directed": True}).json()
    assert one_way["predictions"][0]["oversmoothing"] != once["oversmoothing"]


def test_a_graph_without_edges_and_one_of_a_single_node(url):
    body = {"instances": [{"nodes": [[0.5] * 8]}, {"nodes": [[0.1] * 8, [0.2] * 8], "edges": []}]}
    reply = httpx.post(f"{url}/v1/models/graph-gcn:predict", json=body)
    assert reply.status_code == 200, reply.text
    assert [len(p["nodes"]) for p in reply.json()["predictions"]] == [1, 2]


NODE = [0.0] * 8
V1_BAD = {
    "an edge naming a node that does not exist": (
        {"nodes": [NODE, NODE], "edges": [[0, 1], [1, 2]]}, "edge 1 names node 2, but the graph has 2 nodes (0..1)"),
    "a negative index": ({"nodes": [NODE, NODE], "edges": [[0, -1]]}, "edge 0 has a negative node index (-1)"),
    "a feature width that does not match": ({"nodes": [NODE, [0.0] * 5]}, "nodes[1] has 5 features, but the model takes 8"),
    "more nodes than the limit": ({"nodes": [NODE] * 41}, "41 nodes is over this model's limit of 40"),
    "more edges than the limit": ({"nodes": [NODE] * 40, "edges": [[i, (i + j) % 40] for i in range(40) for j in (1, 2, 3)]},
                                  "240 edges is over this model's limit of 200"),
    "a feature beyond float32": ({"nodes": [NODE, [1e39] + NODE[1:]]}, "node 1 feature 0 is 1e+39"),
    "no nodes": ({"nodes": []}, "a graph needs at least one node"),
    "an edge that is not a pair of integers": ({"nodes": [NODE], "edges": [[0, 0.5]]}, "pairs of node indices (integers)"),
    "an index beyond int64": ({"nodes": [NODE], "edges": [[0, 2**63]]}, "beyond int64"),
    "not a graph": ({"vertices": [NODE]}, 'a graph is {"nodes"'),
}


@pytest.mark.parametrize("case", V1_BAD)
def test_v1_bad_graphs_are_a_400_naming_the_problem(url, case):
    graph, message = V1_BAD[case]
    reply = httpx.post(f"{url}/v1/models/{LIMITED}:predict", json={"instances": [graph]})
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["error"] and reply.json()["error"].startswith("instances[0]")


def _x(n: int) -> np.ndarray:
    return np.random.default_rng(n).normal(size=(n, 8)).astype(np.float32)


NAN = _x(3)
NAN[2, 4] = np.nan
V2_BAD = {
    "an edge naming a node that does not exist": (_x(3), np.array([[0, 1], [1, 3]]), "edge 1 names node 3"),
    "a negative index": (_x(3), np.array([[0, -5], [1, 0]]), "edge 1 has a negative node index (-5)"),
    "NaN features": (NAN, np.array([[0], [1]]), "node 2 feature 4 is nan: features must be finite"),
    "a feature width that does not match": (_x(3)[:, :5], np.array([[0], [1]]), "input 'x' has shape [3, 5]"),
    "more nodes than the limit": (_x(41), np.array([[0], [1]]), "41 nodes is over this model's limit of 40"),
    "more edges than the limit": (_x(3), np.zeros((2, 201)), "201 edges is over this model's limit of 200"),
    "no nodes": (_x(0), np.zeros((2, 0)), "a graph needs at least one node"),
}


@pytest.mark.parametrize("case", V2_BAD)
def test_v2_bad_graphs_are_a_400_before_the_network_runs(url, case):
    x, edge_index, message = V2_BAD[case]
    with pytest.raises(InferenceServerException) as error:
        v2(url, LIMITED, x, edge_index.astype(np.int64))
    assert error.value.status() == "400" and message in error.value.message(), error.value.message()


def test_concurrent_graphs_share_executions_and_get_their_own_answers(url, card):
    from training import graphs

    test_graphs = graphs.split("test", 24)
    alone = [ort_run("graph-gcn-deep", g.x, g.edge_index)[0] for g in test_graphs]
    before = httpx.get(f"{url}/v2/models/{JOINED}/stats").json()["model_stats"][0]

    async def ask_all() -> list[np.ndarray]:
        async with httpx.AsyncClient(timeout=60) as client:
            async def ask(g):
                body = {"inputs": [
                    {"name": "x", "shape": list(g.x.shape), "datatype": "FP32", "data": g.x.ravel().tolist()},
                    {"name": "edge_index", "shape": list(g.edge_index.shape), "datatype": "INT64",
                     "data": g.edge_index.ravel().tolist()}], "outputs": [{"name": "logits"}]}
                reply = await client.post(f"{url}/v2/models/{JOINED}/infer", json=body)
                out = reply.json()["outputs"][0]
                return np.array(out["data"], dtype=np.float32).reshape(out["shape"])
            return await asyncio.gather(*(ask(g) for g in test_graphs))

    for got, want in zip(asyncio.run(ask_all()), alone):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    after = httpx.get(f"{url}/v2/models/{JOINED}/stats").json()["model_stats"][0]
    requests = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert requests == len(test_graphs) and executions < requests


def test_the_committed_models_run_each_graph_alone(url, card):
    """Joining did not pay on CPU (bench/graphs.py): the operator config turns it off."""
    from training import graphs

    before = httpx.get(f"{url}/v2/models/graph-gcn/stats").json()["model_stats"][0]

    async def ask_all() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            await asyncio.gather(*(client.post(f"{url}/v1/models/graph-gcn:predict", json={
                "instances": [{"nodes": g.x.tolist(), "edges": g.edge_index.T.tolist()}], "directed": True})
                for g in graphs.split("test", 8)))

    asyncio.run(ask_all())
    after = httpx.get(f"{url}/v2/models/graph-gcn/stats").json()["model_stats"][0]
    assert after["execution_count"] - before["execution_count"] == 8


@pytest.fixture(scope="module")
def tiny_url(module_server, tmp_path_factory) -> str:
    from tests.tasks import builders

    repo = tmp_path_factory.mktemp("tiny-graph") / "models"
    builders.write(repo, "graph", {"task": "node-classification", "labels": ["a", "b", "c"]},
                   {"model.onnx": builders.node_classifier()})
    return module_server(repo)


def test_a_tiny_graph_computed_by_hand(tiny_url):
    from tests.tasks.builders import NODE_W

    x = np.array([[0.5, -0.5], [1.0, 0.0], [0.0, 1.0]])
    reply = httpx.post(f"{tiny_url}/v1/models/graph:predict",
                       json={"instances": [{"nodes": x.tolist(), "edges": [[0, 1], [1, 2]]}]})
    assert reply.status_code == 200, reply.text
    h = x @ NODE_W
    logits = h + np.array([h[1], h[0] + h[2], h[1]])  # each node adds its neighbours' h
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    [prediction] = reply.json()["predictions"]
    assert [n["label"] for n in prediction["nodes"]] == [["a", "b", "c"][i] for i in p.argmax(1)]
    np.testing.assert_allclose([list(n["probabilities"].values()) for n in prediction["nodes"]], p, rtol=1e-5)
    assert "oversmoothing" not in prediction  # the graph gives no embeddings


def test_the_card_serves_the_depth_chart_and_the_graphs_to_draw(url):
    body = httpx.get(f"{url}/v2/models/graph-gcn/card").json()
    assert "depth.png" in body["files"] and set(body["card"]["graphs"]) == {"karate", "generated"}
    chart = httpx.get(f"{url}/v2/models/graph-gcn/files/depth.png")
    assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")

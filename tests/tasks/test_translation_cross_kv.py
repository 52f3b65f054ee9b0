"""cross_kv.onnx's two shapes: the committed one packs every decoder layer's cross-attention
keys and values in one output (B, C, H, S, dk) over sources of a fixed width; a graph with one
output per array (the first contract, and any graph exported that way) serves the same
translations. A packed output whose C is not fixed, or a fixed source width other than
max_input_tokens, is a load error that says so."""

import asyncio
import shutil
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import helper

ROOT = Path(__file__).resolve().parents[2]
MODEL = "en-fr-numbers"
TRAINED = ROOT / "models" / MODEL
TEXTS = ["twelve", "seven hundred and ninety-seven thousand, seven hundred and ninety-seven", "eighty",
         "four hundred thousand and one", "six", "twenty-one thousand and twenty-one"]

pytestmark = pytest.mark.skipif(not TRAINED.is_dir(), reason="models/en-fr-numbers is not trained")


def copy_model(tmp_path_factory, label: str) -> Path:
    repo = tmp_path_factory.mktemp(label) / "models"
    shutil.copytree(TRAINED, repo / MODEL)
    return repo


def unpacked(path: Path) -> None:
    """Rewrite cross_kv.onnx with one output per array (cross_k0, cross_v0, ...: (B, H, S, dk)),
    each a Gather of the packed output's second axis: what the graph gave before it was packed."""
    model = onnx.load(str(path))
    graph = model.graph
    packed = graph.output[0]
    dims = packed.type.tensor_type.shape.dim
    count = dims[1].dim_value
    assert count > 0
    names = [f"cross_{kv}{layer}" for layer in range(count // 2) for kv in ("k", "v")]
    del graph.output[:]
    for c, name in enumerate(names):
        graph.initializer.append(helper.make_tensor(f"{name}_index", onnx.TensorProto.INT64, [], [c]))
        graph.node.append(helper.make_node("Gather", [packed.name, f"{name}_index"], [name], axis=1))
        graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [
            "batch", dims[2].dim_value, dims[3].dim_value, dims[4].dim_value]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


async def translate_all(url: str, texts: list[str], **parameters) -> list[dict]:
    async with httpx.AsyncClient(timeout=120) as client:
        responses = await asyncio.gather(*(
            client.post(f"{url}/v2/models/{MODEL}/generate", json={"text_input": t, "parameters": parameters})
            for t in texts))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


def test_the_committed_cross_kv_is_packed_over_fixed_width_sources():
    model = onnx.load(str(TRAINED / "1" / "cross_kv.onnx"))
    (source,), (packed,) = model.graph.input, model.graph.output
    assert [d.dim_value or d.dim_param for d in source.type.tensor_type.shape.dim][1] == 14
    dims = [d.dim_value or d.dim_param for d in packed.type.tensor_type.shape.dim]
    assert len(dims) == 5 and isinstance(dims[0], str) and dims[1] == 4  # (B, 2 x 2 layers, H, S, dk)


def test_one_output_per_array_serves_the_same_translations(module_server, tmp_path_factory):
    packed_url = module_server(copy_model(tmp_path_factory, "packed"))
    repo = copy_model(tmp_path_factory, "unpacked")
    unpacked(repo / MODEL / "1" / "cross_kv.onnx")
    unpacked_url = module_server(repo)
    for parameters in ({"attention": True}, {"temperature": 1.2, "seed": 5, "attention": True}):
        want = asyncio.run(translate_all(packed_url, TEXTS, **parameters))  # concurrent: rows share steps
        got = asyncio.run(translate_all(unpacked_url, TEXTS, **parameters))
        for a, b in zip(got, want, strict=True):
            assert a["text_output"] == b["text_output"] and a["finish_reason"] == b["finish_reason"]
            assert np.array_equal(np.asarray(a["attention"]["weights"]), np.asarray(b["attention"]["weights"]))
    assert want[0]["text_output"] == "douze"


def test_a_packed_output_without_a_fixed_array_count_is_a_load_error(module_server, tmp_path_factory):
    """A cross_kv whose one rank-5 output has as many arrays as the batch has rows (zeros of
    shape (B, B, 2, 14, 24)): how many context inputs it gives is not known at load."""
    repo = copy_model(tmp_path_factory, "symbolic")
    t = onnx.TensorProto
    graph = helper.make_graph(
        [helper.make_node("Shape", ["source"], ["shape"], end=1),
         helper.make_node("Concat", ["shape", "shape", "rest"], ["dims"], axis=0),
         helper.make_node("ConstantOfShape", ["dims"], ["cross_kv"],
                          value=helper.make_tensor("zero", t.FLOAT, [1], [0.0]))],
        "symbolic", [helper.make_tensor_value_info("source", t.INT64, ["batch", 14])],
        [helper.make_tensor_value_info("cross_kv", t.FLOAT, ["batch", "arrays", 2, 14, 24])],
        [helper.make_tensor("rest", t.INT64, [3], [2, 14, 24])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(repo / MODEL / "1" / "cross_kv.onnx"))
    url = module_server(repo)
    response = httpx.post(f"{url}/v2/models/{MODEL}/generate", json={"text_input": "six"})
    assert response.status_code == 503
    assert "C is not a fixed size" in response.json()["error"]


def test_a_fixed_source_width_other_than_max_input_tokens_is_a_load_error(module_server, tmp_path_factory):
    repo = copy_model(tmp_path_factory, "width")
    config = repo / MODEL / "1" / "config.yaml"
    text = config.read_text(encoding="utf-8")
    assert "max_input_tokens: 14" in text
    config.write_text(text.replace("max_input_tokens: 14", "max_input_tokens: 12"), encoding="utf-8")
    url = module_server(repo)
    response = httpx.post(f"{url}/v2/models/{MODEL}/generate", json={"text_input": "six"})
    assert response.status_code == 503
    assert "takes sources 14 wide, but max_input_tokens is 12" in response.json()["error"]

"""Committed model files name no machine: no absolute path, host or user name; and the stripping
that keeps them so leaves what a graph computes untouched."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.training.portable import traces
from training.export import strip_exporter_metadata
from training.scrub import scrub_card, scrub_graph

MODELS = Path(__file__).resolve().parents[2] / "models"
TRACE = 'File "/home/someone/project/training/net.py", line 12, in forward'


@pytest.mark.parametrize("path", sorted(p.relative_to(MODELS) for p in MODELS.rglob("*") if p.is_file()),
                         ids=str)
def test_no_committed_model_file_names_the_machine_that_wrote_it(path):
    assert traces(MODELS / path) == [], f"models/{path}: run `python -m training.scrub`"


def traced_graph(path: Path) -> Path:
    """y = x @ W + b with the kind of debugging metadata torch.onnx's exporter leaves behind."""
    weight = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2), "W")
    bias = numpy_helper.from_array(np.array([0.5, -1.0], dtype=np.float32), "b")
    matmul = helper.make_node("MatMul", ["x", "W"], ["h"], doc_string=TRACE)
    add = helper.make_node("Add", ["h", "b"], ["y"])
    helper.set_metadata_props(add, {"pkg.torch.onnx.stack_trace": TRACE})
    graph = helper.make_graph(
        [matmul, add], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], [weight, bias],
        doc_string=TRACE)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], doc_string=TRACE)
    helper.set_metadata_props(model, {"author": "modelserve"})
    onnx.save(model, str(path))
    return path


def run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_stripping_removes_the_traces_and_keeps_weights_and_outputs(tmp_path):
    path = traced_graph(tmp_path / "model.onnx")
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    before, weights = run(path, x), onnx.load(str(path)).graph.initializer
    assert "/home/someone/project/training/net.py" in traces(path)

    strip_exporter_metadata(path)
    stripped = onnx.load(str(path))
    assert traces(path) == []
    assert [t.SerializeToString() for t in stripped.graph.initializer] == [t.SerializeToString() for t in weights]
    assert run(path, x).tobytes() == before.tobytes()
    assert {p.key: p.value for p in stripped.metadata_props} == {"author": "modelserve"}  # on purpose


def test_scrub_rewrites_an_old_version_folder_once(tmp_path):
    graph = traced_graph(tmp_path / "model.onnx")
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "m", "version": 3, "quick": False,
                                "command": "python -m training m --output /srv/x/models --version 3",
                                "argv": ["/srv/x/training/__main__.py", "m"]}))
    assert scrub_graph(graph) and scrub_card(card)
    assert traces(graph) == [] and traces(card) == []
    assert json.loads(card.read_text()) == {"name": "m", "version": 3, "quick": False,
                                            "command": "python -m training m --version 3"}
    assert not scrub_graph(graph) and not scrub_card(card)  # nothing left to do

"""Export a GCN to ONNX with dynamic node and edge counts, and prove ORT matches torch on graphs
of several sizes. Inputs: x (N, F) FP32 and edge_index (2, E) INT64; outputs: logits (N, C) and
embeddings (N, H). training/export.py assumes a batch axis on every input; edge_index has none.
"""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from training import graphs
from training.export import PARITY_TOLERANCE, ExportError
from training.gcn import GCN

INPUTS, OUTPUTS = ["x", "edge_index"], ["logits", "embeddings"]
EXAMPLE_SEED = 20_070  # the test graph the playground shows (51 nodes, 5 communities)


def example_graph() -> graphs.Graph:
    return graphs.sbm(EXAMPLE_SEED)


def parity_graphs() -> dict[str, graphs.Graph]:
    """Graphs of several sizes and kinds: real ones, a joined batch, random ones, no edges."""
    test = graphs.split("test")
    by_size = sorted(test, key=lambda g: g.nodes)
    rng = np.random.default_rng(0)
    n = 57
    random_edges = graphs.undirected(rng.integers(0, n, size=(150, 2)))
    y = rng.integers(0, graphs.CLASSES, size=n)
    return {
        "karate club (34 nodes)": graphs.karate(),
        f"smallest test graph ({by_size[0].nodes} nodes)": by_size[0],
        f"a middle test graph ({by_size[len(by_size) // 2].nodes} nodes)": by_size[len(by_size) // 2],
        f"largest test graph ({by_size[-1].nodes} nodes)": by_size[-1],
        "ten test graphs joined": graphs.join(test[:10]),
        "random features and edges (57 nodes)": graphs.Graph(
            rng.normal(0, 3, size=(n, graphs.FEATURES)).astype(np.float32), random_edges, y),
        "no edges (3 nodes)": graphs.Graph(test[0].x[:3], np.zeros((2, 0), np.int64), test[0].y[:3]),
        "one node": graphs.Graph(test[0].x[:1], np.zeros((2, 0), np.int64), test[0].y[:1]),
    }


def scrub(path: Path) -> None:
    """Drop what the exporter records about this machine: stack traces and source paths live in
    node metadata and doc strings. A committed graph carries no host's paths."""
    model = onnx.load(str(path))
    for nodes in [model.graph.node, *(f.node for f in model.functions)]:
        for node in nodes:
            node.doc_string = ""
            del node.metadata_props[:]
    del model.metadata_props[:]
    model.doc_string = model.graph.doc_string = ""
    onnx.save(model, str(path))
    if b'File "/' in path.read_bytes():
        raise ExportError(f"{path.name} still holds a source path after scrubbing")


def export(net: GCN, path: Path) -> None:
    net.eval()
    example = graphs.split("train", 1)[0]
    torch.onnx.export(
        net, (torch.from_numpy(example.x), torch.from_numpy(example.edge_index)), str(path),
        dynamo=True, external_data=False, input_names=INPUTS, output_names=OUTPUTS,
        dynamic_shapes={"x": {0: "nodes"}, "edge_index": {1: "edges"}}, verbose=False,
    )
    scrub(path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    if any(node.op_type == "ScatterND" for node in model.graph.node):
        # ONNX Runtime's ScatterND "add" races across threads (see gcn.normalised_edges).
        raise ExportError(f"{path.name}: ScatterND in the graph; aggregate with scatter_add")
    for value in list(model.graph.input) + list(model.graph.output):
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        dynamic = 1 if value.name == "edge_index" else 0
        if not isinstance(dims[dynamic], str):
            raise ExportError(f"{path.name}: '{value.name}' has no symbolic axis {dynamic}: {dims}")


def parity(net: GCN, path: Path) -> dict:
    """ORT against torch on parity_graphs(): |ort - torch| / max(1, |torch|) <= tolerance."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst_abs, worst_scaled = 0.0, 0.0
    for name, g in parity_graphs().items():
        got = sess.run(OUTPUTS, {"x": g.x, "edge_index": g.edge_index})
        with torch.no_grad():
            want = net(torch.from_numpy(g.x), torch.from_numpy(g.edge_index))
        for o, w in zip(got, want, strict=True):
            w = w.numpy()
            if o.shape != w.shape:
                raise ExportError(f"{path.name}: {name}: shape {o.shape} != torch {w.shape}")
            diff = np.abs(o.astype(np.float64) - w)
            worst_abs = max(worst_abs, float(diff.max(initial=0.0)))
            worst_scaled = max(worst_scaled, float((diff / np.maximum(1.0, np.abs(w))).max(initial=0.0)))
    if not worst_scaled <= PARITY_TOLERANCE:
        raise ExportError(f"{path.name}: ORT differs from torch by {worst_scaled:.3g} > {PARITY_TOLERANCE}")
    return {"max_abs_error": worst_abs, "max_scaled_error": worst_scaled, "graphs": list(parity_graphs())}


def export_verified(net: GCN, path: Path) -> dict:
    export(net, path)
    return parity(net, path)

"""Export one network to one ONNX file with a dynamic batch axis, then prove it matches torch.

A graph that fails a check raises ExportError: nothing half-verified reaches the repository.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

PARITY_BATCHES = (1, 7, 64)
# ORT against torch, every output element: |ort - torch| / max(1, |torch|) <= 1e-4. That is the
# absolute error wherever |value| <= 1; above, float32 itself cannot hold 1e-4 absolute (a
# variance of 3,000 mg^2/dL^2 or a log-density of -200 has a spacing of 2e-4 or 1.5e-5), so the
# error is taken relative there. The card records both this and the plain max abs error.
PARITY_TOLERANCE = 1e-4
EXPORT_BATCH = 2  # torch.export specialises a dimension whose example size is 0 or 1


class ExportError(RuntimeError):
    """The exported graph is not the network: wrong axes, or ORT disagrees with torch."""


def export(net: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path,
           input_names: list[str], output_names: list[str]) -> None:
    """Write `net` to `path` as a single ONNX file, batch axis dynamic on inputs and outputs."""
    net.eval()
    dynamic = {name: {0: "batch"} for name in input_names}
    torch.onnx.export(
        net, example, str(path), dynamo=True, external_data=False,
        input_names=input_names, output_names=output_names, dynamic_shapes=dynamic,
        verbose=False,
    )
    strip_exporter_metadata(path)
    _check_dynamic_batch(path)


def strip_exporter_metadata(path: Path) -> None:
    """Rewrite an ONNX file without the exporter's debugging metadata; the weights are untouched.

    torch.onnx's dynamo exporter keeps on every node and value the Python stack trace, FX node
    and module path it came from: absolute paths of the build machine (about 30 in a small CNN)
    and most of a small graph's bytes. Call it on every graph written into a model repository
    (export() does; so does `python -m training.scrub` for files written before).
    """
    model = onnx.load(str(path))
    strip_metadata(model)
    onnx.save(model, str(path))


def strip_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    """Clear doc_string and metadata_props of every graph, node, value and function, in place.

    The model's own metadata_props stay: that is where an author puts metadata on purpose.
    """
    model.ClearField("doc_string")
    _strip_graph(model.graph)
    for function in model.functions:
        _clear(function)
        for item in (*function.node, *function.value_info):
            _clear(item)
        for node in function.node:
            _strip_attribute_graphs(node)
    return model


def _strip_graph(graph: onnx.GraphProto) -> None:
    _clear(graph)
    for item in (*graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer):
        _clear(item)
    for node in graph.node:
        _strip_attribute_graphs(node)


def _strip_attribute_graphs(node: onnx.NodeProto) -> None:
    for attribute in node.attribute:  # the bodies of If, Loop and Scan
        _clear(attribute)
        for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
            _strip_graph(graph)


def _clear(proto) -> None:
    # ClearField, not = "": in proto2 an empty string that was set is still written out.
    proto.ClearField("doc_string")
    if "metadata_props" in proto.DESCRIPTOR.fields_by_name:  # AttributeProto has none
        proto.ClearField("metadata_props")


def _check_dynamic_batch(path: Path) -> None:
    graph = onnx.load(str(path)).graph
    onnx.checker.check_model(onnx.load(str(path)))
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims or not dims[0].dim_param:
            raise ExportError(f"{path.name}: '{value.name}' has no symbolic batch axis: {dims}")


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def parity(net: torch.nn.Module, path: Path,
           inputs: Callable[[str, int], tuple[np.ndarray, ...]]) -> dict:
    """ORT against torch over kinds ('real', 'random') and PARITY_BATCHES; raises past tolerance.

    `inputs(kind, batch)` returns the graph's inputs as numpy arrays, batch first. Returns
    {"max_abs_error", "max_scaled_error"} (scaled: |ort - torch| / max(1, |torch|)).
    """
    net.eval()
    sess = session(path)
    names = [i.name for i in sess.get_inputs()]
    worst_abs, worst_scaled = 0.0, 0.0
    for kind in ("real", "random"):
        for batch in PARITY_BATCHES:
            arrays = inputs(kind, batch)
            got = sess.run(None, dict(zip(names, arrays, strict=True)))
            with torch.no_grad():
                want = net(*(torch.from_numpy(a) for a in arrays))
            want = want if isinstance(want, tuple) else (want,)
            for g, w in zip(got, want, strict=True):
                w = w.numpy()
                if g.shape != w.shape:
                    raise ExportError(f"{path.name}: {kind} batch {batch}: shape {g.shape} "
                                      f"!= torch {w.shape}")
                diff = np.abs(g.astype(np.float64) - w)
                worst_abs = max(worst_abs, float(diff.max()))
                worst_scaled = max(worst_scaled, float((diff / np.maximum(1.0, np.abs(w))).max()))
    if not worst_scaled <= PARITY_TOLERANCE:
        raise ExportError(f"{path.name}: ORT differs from torch by {worst_scaled:.3g} "
                          f"(|diff| / max(1, |value|)) > {PARITY_TOLERANCE}")
    return {"max_abs_error": worst_abs, "max_scaled_error": worst_scaled}


def export_verified(net: torch.nn.Module, path: Path, input_names: list[str],
                    output_names: list[str],
                    inputs: Callable[[str, int], tuple[np.ndarray, ...]]) -> dict:
    """export() then parity(); returns parity's errors for the card."""
    example = tuple(torch.from_numpy(a) for a in inputs("random", EXPORT_BATCH))
    export(net, example, path, input_names, output_names)
    return parity(net, path, inputs)


def count_parameters(*nets: torch.nn.Module) -> int:
    return sum(p.numel() for net in nets for p in net.parameters())

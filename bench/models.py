"""The benchmark's model: the 64-256-256-10 digit MLP, random weights, built with onnx.helper."""

import itertools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZES = (64, 256, 256, 10)


def digit_mlp(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, initializers, previous = [], [], "input"
    for i, (n_in, n_out) in enumerate(itertools.pairwise(SIZES)):
        weights = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        initializers += [numpy_helper.from_array(weights, f"W{i}"), numpy_helper.from_array(np.zeros(n_out, np.float32), f"b{i}")]
        out = "logits" if i == len(SIZES) - 2 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [previous, f"W{i}", f"b{i}"], [f"z{i}" if out != "logits" else out]))
        if out != "logits":
            nodes.append(helper.make_node("Relu", [f"z{i}"], [out]))
        previous = out
    graph = helper.make_graph(
        nodes, "digit_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", SIZES[0]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", SIZES[-1]])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def write_repository(root: Path, batching: bool) -> Path:
    """A repository with the MLP as `mlp`, batched or not."""
    folder = root / ("batched" if batching else "plain")
    (folder / "mlp" / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(digit_mlp(), folder / "mlp" / "1" / "model.onnx")
    config = "max_batch_size: 64\nmax_queue_delay_ms: 0\n" if batching else "max_batch_size: 0\n"
    (folder / "mlp" / "config.yaml").write_text(config)
    return folder

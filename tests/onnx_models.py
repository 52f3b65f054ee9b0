"""Tiny deterministic ONNX graphs, built with onnx.helper, for tests."""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

V2_TO_ONNX = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}
# BF16 stands apart: it travels only as binary data, so the every-datatype JSON tests skip it.
ONNX_TYPES = {**V2_TO_ONNX, "BF16": TensorProto.BFLOAT16}


def _model(nodes, inputs, outputs, initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def identity(datatype: str, shape=("batch", 3)) -> onnx.ModelProto:
    """output = input, of one V2 datatype; shape entries that are strings are dynamic."""
    elem = ONNX_TYPES[datatype]
    return _model(
        [helper.make_node("Identity", ["input"], ["output"])],
        [helper.make_tensor_value_info("input", elem, list(shape))],
        [helper.make_tensor_value_info("output", elem, list(shape))],
    )


def two_in_two_out() -> onnx.ModelProto:
    """scaled = x * 2 (FP32 [-1, 2]); next = n + 1 (INT64 [-1])."""
    return _model(
        [helper.make_node("Mul", ["x", "two"], ["scaled"]), helper.make_node("Add", ["n", "one"], ["next"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2]),
         helper.make_tensor_value_info("n", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["batch", 2]),
         helper.make_tensor_value_info("next", TensorProto.INT64, ["batch"])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
         numpy_helper.from_array(np.array(1, np.int64), "one")],
    )


def linear(weights: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """y = x @ W + b with a dynamic batch axis; W is (in, out)."""
    n_in, n_out = weights.shape
    return _model(
        [helper.make_node("Gemm", ["x", "W", "b"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
        [numpy_helper.from_array(weights.astype(np.float32), "W"), numpy_helper.from_array(bias.astype(np.float32), "b")],
    )


def add_constant(value: float) -> onnx.ModelProto:
    """y = x + value, FP32 [-1, 1]: versions of a model that answer differently."""
    return _model(
        [helper.make_node("Add", ["x", "c"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(np.array(value, np.float32), "c")],
    )


def save(model: onnx.ModelProto, repository: Path, name: str, version: int = 1, file_name: str = "model.onnx") -> Path:
    path = repository / name / str(version) / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def gather(table: np.ndarray) -> onnx.ModelProto:
    """y = table[idx]: an index out of range is the client's fault, found only by running."""
    return _model(
        [helper.make_node("Gather", ["table", "idx"], ["y"])],
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])],
        [numpy_helper.from_array(table.astype(np.float32), "table")],
    )


def slow_chain(width: int = 256, depth: int = 40) -> onnx.ModelProto:
    """x -> x @ W, `depth` times: slow enough (about a millisecond) that a queue builds up."""
    weights = (np.eye(width) * 0.5 + 0.5 / width).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x" if i == 0 else f"h{i}", "W"], [f"h{i + 1}" if i < depth - 1 else "y"])
             for i in range(depth)]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        [numpy_helper.from_array(weights, "W")],
    )


def slow(size: int = 256) -> onnx.ModelProto:
    """y = mean(tanh(x W)^n): `iterations` (INT64 scalar) matmuls of (size, size), to hold a
    request in flight for as long as a test needs. x and W are constants of the graph."""
    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    body = helper.make_graph(
        [helper.make_node("MatMul", ["x_in", "W"], ["product"]),
         helper.make_node("Tanh", ["product"], ["x_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [size, size])],
    )
    return _model(
        [helper.make_node("Loop", ["iterations", "true", "x0"], ["x_final"], body=body),
         helper.make_node("ReduceMean", ["x_final"], ["y"], keepdims=0)],
        [helper.make_tensor_value_info("iterations", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(weights, "W"),
         numpy_helper.from_array(np.ones((size, size), np.float32), "x0"),
         numpy_helper.from_array(np.array(True), "true")],
    )

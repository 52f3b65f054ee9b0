"""Tiny deterministic models of every task, each a version folder with its config.yaml.

Their weights are known, so tests can compute by hand what the service must answer.
"""

from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
FLOAT, INT64 = TensorProto.FLOAT, TensorProto.INT64
LABELS = [str(i) for i in range(10)]
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def digits_data(size: int = 8) -> dict:
    """A DataSpec like the trained digit models': pixels 0..16, network units -1..1."""
    return {"shape": [1, size, size], "raw_range": [0, 16], "network_range": [-1, 1],
            "image": {"height": size, "width": size}}


def to_network(raw: np.ndarray) -> np.ndarray:
    return raw / 16.0 * 2.0 - 1.0


def to_raw(network: np.ndarray) -> np.ndarray:
    return np.clip((network + 1.0) / 2.0 * 16.0, 0, 16)


def _graph(nodes, inputs, outputs, initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "task", inputs, outputs, initializer=[
        numpy_helper.from_array(np.asarray(v), name) for name, v in dict(initializers).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _io(name: str, shape, elem=FLOAT):
    return helper.make_tensor_value_info(name, elem, list(shape))


def write(repo: Path, name: str, config: dict, graphs: dict[str, onnx.ModelProto], version: int = 1) -> Path:
    folder = repo / name / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, graph in graphs.items():
        onnx.save(graph, folder / file_name)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


# ---------------------------------------------------------------------------- graphs

# Classifier: logits = flatten(x) @ W + b with W, b fixed by a seed.
CLASSIFIER_W = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32) * 0.3
CLASSIFIER_B = np.linspace(-0.5, 0.5, 10).astype(np.float32)


def classifier() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("Gemm", ["flat", "W", "b"], ["logits"])],
        [_io("x", ["batch", 1, 8, 8])], [_io("logits", ["batch", 10])],
        {"W": CLASSIFIER_W, "b": CLASSIFIER_B},
    )


# Regressor: mean = x @ w + 10, variance = 4 (so std = 2), both [-1, 1].
REGRESSOR_W = np.arange(1, 11, dtype=np.float32).reshape(10, 1) / 10.0


def regressor(with_variance: bool = True) -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["mean"])]
    outputs = [_io("mean", ["batch", 1])]
    if with_variance:  # variance = mean * 0 + 4, so it keeps the batch axis
        nodes += [helper.make_node("Mul", ["mean", "zero"], ["z"]), helper.make_node("Add", ["z", "four"], ["variance"])]
        outputs.append(_io("variance", ["batch", 1]))
    return _graph(nodes, [_io("x", ["batch", 10])], outputs,
                  {"w": REGRESSOR_W, "c": np.array([10.0], np.float32), "zero": np.float32(0), "four": np.float32(4)})


# GAN and VAE decoder: x = tanh(z @ G) reshaped to (B, 1, 8, 8).
LATENT = 4
DECODER_G = np.random.default_rng(1).standard_normal((LATENT, 64)).astype(np.float32)


def decoder(input_name: str = "z") -> onnx.ModelProto:
    return _graph(
        [helper.make_node("MatMul", [input_name, "G"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
         helper.make_node("Reshape", ["t", "shape"], ["x"])],
        [_io(input_name, ["batch", LATENT])], [_io("x", ["batch", 1, 8, 8])],
        {"G": DECODER_G, "shape": np.array([-1, 1, 8, 8], np.int64)},
    )


# VAE encoder: mean = flatten(x) @ E, log_var = mean * 0 - 1.
ENCODER_E = np.random.default_rng(2).standard_normal((64, LATENT)).astype(np.float32) * 0.1


def encoder() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("MatMul", ["flat", "E"], ["mean"]),
         helper.make_node("Mul", ["mean", "zero"], ["m0"]), helper.make_node("Add", ["m0", "minus_one"], ["log_var"])],
        [_io("x", ["batch", 1, 8, 8])], [_io("mean", ["batch", LATENT]), _io("log_var", ["batch", LATENT])],
        {"E": ENCODER_E, "zero": np.float32(0), "minus_one": np.float32(-1)},
    )


# Flow on 2-D points: z = (x - 1) / 2, so log p(x) = log N((x - 1) / 2) - 2 log 2.
def flow_forward() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Sub", ["x", "one"], ["d"]), helper.make_node("Div", ["d", "two"], ["z"]),
         helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
         helper.make_node("Mul", ["s", "zero"], ["s0"]), helper.make_node("Add", ["s0", "log_det_c"], ["log_det"])],
        [_io("x", ["batch", 2])], [_io("z", ["batch", 2]), _io("log_det", ["batch"])],
        {"one": np.float32(1), "two": np.float32(2), "zero": np.float32(0), "axes": np.array([1], np.int64),
         "log_det_c": np.float32(-2 * np.log(2))},
    )


# A flow singular at x0 = 0: z = x, log|det| = log|x0|, so log p(x) is -inf there.
def flow_forward_singular() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Identity", ["x"], ["z"]), helper.make_node("Gather", ["x", "first"], ["x0"], axis=1),
         helper.make_node("Abs", ["x0"], ["a"]), helper.make_node("Log", ["a"], ["log_det"])],
        [_io("x", ["batch", 2])], [_io("z", ["batch", 2]), _io("log_det", ["batch"])],
        {"first": np.array(0, np.int64)},
    )


def flow_inverse() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Mul", ["z", "two"], ["m"]), helper.make_node("Add", ["m", "one"], ["x"])],
        [_io("z", ["batch", 2])], [_io("x", ["batch", 2])], {"one": np.float32(1), "two": np.float32(2)},
    )


# Denoiser: eps = 0.1 x_t + 0.05 label (label broadcast over the sample); t is read but unused.
def denoiser(size: int = 8) -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Mul", ["x_t", "a"], ["ax"]),
         helper.make_node("Cast", ["label"], ["lf"], to=FLOAT), helper.make_node("Reshape", ["lf", "col"], ["l4"]),
         helper.make_node("Mul", ["l4", "b"], ["bl"]),
         helper.make_node("Cast", ["t"], ["tf"], to=FLOAT), helper.make_node("Reshape", ["tf", "col"], ["t4"]),
         helper.make_node("Mul", ["t4", "zero"], ["t0"]),
         helper.make_node("Add", ["ax", "bl"], ["s"]), helper.make_node("Add", ["s", "t0"], ["eps"])],
        [_io("x_t", ["batch", 1, size, size]), _io("t", ["batch"], INT64), _io("label", ["batch"], INT64)],
        [_io("eps", ["batch", 1, size, size])],
        {"a": np.float32(0.1), "b": np.float32(0.05), "zero": np.float32(0), "col": np.array([-1, 1, 1, 1], np.int64)},
    )


# Text-to-image: text = sum of the prompt's word embeddings (row 0, padding, is zero);
# eps = 0.1 x_t + 0.05 reshape(text @ TEXT_W).
VOCABULARY = ["<pad>", "<null>", "a", "thick", "thin", "seven", "one", "leaning", "right"]
MAX_WORDS = 6
TEXT_E = np.random.default_rng(3).standard_normal((len(VOCABULARY), 4)).astype(np.float32)
TEXT_E[0] = 0.0
TEXT_W = np.random.default_rng(4).standard_normal((4, 64)).astype(np.float32)


def text_encoder() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Gather", ["E", "tokens"], ["emb"]),
         helper.make_node("ReduceSum", ["emb", "axes"], ["text"], keepdims=0)],
        [_io("tokens", ["batch", MAX_WORDS], INT64)], [_io("text", ["batch", 4])],
        {"E": TEXT_E, "axes": np.array([1], np.int64)},
    )


def text_denoiser() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Mul", ["x_t", "a"], ["ax"]),
         helper.make_node("MatMul", ["text", "W"], ["tw"]), helper.make_node("Reshape", ["tw", "shape"], ["t4"]),
         helper.make_node("Mul", ["t4", "b"], ["bt"]),
         helper.make_node("Cast", ["t"], ["tf"], to=FLOAT), helper.make_node("Reshape", ["tf", "col"], ["tc"]),
         helper.make_node("Mul", ["tc", "zero"], ["t0"]),
         helper.make_node("Add", ["ax", "bt"], ["s"]), helper.make_node("Add", ["s", "t0"], ["eps"])],
        [_io("x_t", ["batch", 1, 8, 8]), _io("t", ["batch"], INT64), _io("text", ["batch", 4])],
        [_io("eps", ["batch", 1, 8, 8])],
        {"a": np.float32(0.1), "b": np.float32(0.05), "zero": np.float32(0), "W": TEXT_W,
         "shape": np.array([-1, 1, 8, 8], np.int64), "col": np.array([-1, 1, 1, 1], np.int64)},
    )


def text_to_image_config(**overrides) -> dict:
    return {"task": "text-to-image", "data": digits_data(), "vocabulary": VOCABULARY,
            "schedule": {"betas": betas(100)}, "default_steps": 20, "max_steps": 100,
            "default_guidance": 2.0, "prompt_examples": ["a thick seven"], **overrides}


# ---------------------------------------------------------------------------- repositories

def betas(timesteps: int) -> list[float]:
    return np.linspace(1e-4, 0.02, timesteps).round(6).tolist()


# Node classifier: h = x @ W (N, 3); logits = h + the sum of h over each node's incoming edges.
NODE_W = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]], dtype=np.float32)  # 2 features -> 3 labels


def node_classifier() -> onnx.ModelProto:
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Gather", ["edge_index", "zero"], ["src"], axis=0),
        helper.make_node("Gather", ["edge_index", "one"], ["dst"], axis=0),
        helper.make_node("Gather", ["h", "src"], ["messages"], axis=0),  # (E, 3)
        helper.make_node("Unsqueeze", ["dst", "axes"], ["dst_column"]),
        helper.make_node("Shape", ["messages"], ["message_shape"]),
        helper.make_node("Expand", ["dst_column", "message_shape"], ["targets"]),
        helper.make_node("Mul", ["h", "nought"], ["zeros"]),
        helper.make_node("ScatterElements", ["zeros", "targets", "messages"], ["summed"], axis=0, reduction="add"),
        helper.make_node("Add", ["h", "summed"], ["logits"]),
    ]
    return _graph(nodes, [_io("x", ["nodes", 2]), _io("edge_index", [2, "edges"], INT64)], [_io("logits", ["nodes", 3])],
                  {"W": NODE_W, "zero": np.array(0, np.int64), "one": np.array(1, np.int64),
                   "axes": np.array([1], np.int64), "nought": np.array(0.0, np.float32)})


def task_repository(repo: Path) -> Path:
    """One tiny model of every task, named after it."""
    write(repo, "classifier", {"task": "classification", "labels": LABELS, "data": digits_data()},
          {"model.onnx": classifier()})
    write(repo, "regressor", {"task": "regression", "features": FEATURES}, {"model.onnx": regressor()})
    write(repo, "regressor-mean", {"task": "regression"}, {"model.onnx": regressor(with_variance=False)})
    write(repo, "gan", {"task": "gan", "latent_dim": LATENT, "data": digits_data(), "max_samples": 16},
          {"generator.onnx": decoder()})
    write(repo, "vae", {"task": "vae", "latent_dim": LATENT, "data": digits_data()},
          {"encoder.onnx": encoder(), "decoder.onnx": decoder()})
    write(repo, "flow", {"task": "flow", "data": {"shape": [2]}},
          {"forward.onnx": flow_forward(), "inverse.onnx": flow_inverse()})
    write(repo, "diffusion", {"task": "diffusion", "data": digits_data(), "labels": LABELS, "null_label": 10,
                              "schedule": {"betas": betas(100)}, "default_steps": 20, "max_steps": 100},
          {"denoiser.onnx": denoiser()})
    write(repo, "text2img", text_to_image_config(),
          {"text_encoder.onnx": text_encoder(), "denoiser.onnx": text_denoiser()})
    return repo


def slow_diffusion(repo: Path, size: int = 128, timesteps: int = 4000) -> Path:
    """A diffusion model whose full run takes thousands of steps on big samples: long enough
    that a client which leaves early always leaves before the end."""
    write(repo, "slow-diffusion", {"task": "diffusion", "data": digits_data(size), "labels": LABELS,
                                   "null_label": 10, "schedule": {"betas": betas(timesteps)}},
          {"denoiser.onnx": denoiser(size)})
    return repo

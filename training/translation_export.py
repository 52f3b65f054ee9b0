"""Export the translator as two graphs, each proven against torch before it is kept.

encoder.onnx: source (B, S) int64 -> memory (B, S, D).
decoder.onnx: tokens (B, P) int64, position (B,) int64, memory (B, S, D), source (B, S) int64
              -> logits (B, V), attention (B, S).
The decoder step has no key/value cache: it recomputes every prefix position each step. With
20 steps at most and prefixes padded to one length (so that any sequences share a batch), a
cache would save little and cost four more inputs and outputs per layer; the numbers are in
the card (decoder_cache_decision) and docs/TASKS.md.
"""

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from training import translation_data as corpus
from training.export import ExportError, parity

EXAMPLE_BATCH = 3  # torch.export specialises a dimension whose example size is 0 or 1


def _export(net: torch.nn.Module, example: tuple, path: Path, inputs: list[str],
            outputs: list[str], dynamic: dict) -> None:
    net.eval()
    torch.onnx.export(net, example, str(path), dynamo=True, external_data=False,
                      input_names=inputs, output_names=outputs, dynamic_shapes=dynamic,
                      verbose=False)
    model = onnx.load(str(path))
    _scrub(model)  # the exporter's stack traces name files on this machine
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims[0].dim_param:
            raise ExportError(f"{path.name}: '{value.name}' has no symbolic batch axis")


def _scrub(model: onnx.ModelProto) -> None:
    del model.metadata_props[:]
    model.doc_string = ""
    graphs = [model.graph, *(f for f in model.functions)]
    for g in graphs:
        nodes = g.node
        for node in nodes:
            node.doc_string = ""
            del node.metadata_props[:]
        if hasattr(g, "doc_string"):
            g.doc_string = ""
        if hasattr(g, "metadata_props"):
            del g.metadata_props[:]
        for value in [*getattr(g, "input", []), *getattr(g, "output", []),
                      *getattr(g, "value_info", [])]:
            if not isinstance(value, str):
                value.doc_string = ""
                del value.metadata_props[:]


def export_graphs(encoder, step, data: corpus.Corpus, vdir: Path, seed: int) -> dict:
    """Write encoder.onnx and decoder.onnx into vdir; returns each graph's parity errors."""
    rng = np.random.default_rng(seed + 7)
    s_max, positions = data.max_source, data.max_target + 2  # P: BOS + max_output_tokens
    batch = torch.export.Dim("batch", min=1, max=4096)
    src_len = torch.export.Dim("source_length", min=1, max=s_max)
    tgt_len = torch.export.Dim("target_length", min=1, max=positions)

    def sources(kind: str, n: int) -> np.ndarray:
        if kind == "real":  # held-out numbers, half in each English style
            numbers = data.val[rng.choice(len(data.val), n)]
            return data.sources(numbers, rng.random(n) < 0.5, s_max)
        length = int(rng.integers(2, s_max + 1))
        out = rng.integers(1, len(data.source_vocab), (n, length))
        out[:, int(rng.integers(1, length + 1)):] = corpus.PAD  # a padded tail
        return out.astype(np.int64)

    def enc_inputs(kind: str, n: int):
        return (sources(kind, n),)

    def dec_inputs(kind: str, n: int):
        src = sources(kind, n)
        with torch.no_grad():
            memory = encoder(torch.from_numpy(src)).numpy()
        if kind == "real":  # teacher-forced prefixes of the true translations
            numbers = data.val[rng.choice(len(data.val), n)]
            tgt = data.targets(numbers)[:, :positions]
        else:
            tgt = rng.integers(1, len(data.target_vocab), (n, positions))
        tokens = np.full((n, positions), corpus.PAD, dtype=np.int64)
        tokens[:, :tgt.shape[1]] = tgt
        position = rng.integers(0, positions, n)
        tokens[np.arange(positions)[None] > position[:, None]] = corpus.PAD  # right padding
        return tokens, position.astype(np.int64), memory, src

    errors = {}
    enc_path, dec_path = vdir / "encoder.onnx", vdir / "decoder.onnx"
    _export(encoder, tuple(torch.from_numpy(a) for a in enc_inputs("random", EXAMPLE_BATCH)),
            enc_path, ["source"], ["memory"], {"source": {0: batch, 1: src_len}})
    errors["encoder.onnx"] = parity(encoder, enc_path, enc_inputs)
    example = tuple(torch.from_numpy(a) for a in dec_inputs("random", EXAMPLE_BATCH))
    _export(step, example, dec_path, ["tokens", "position", "memory", "source"],
            ["logits", "attention"],
            {"tokens": {0: batch, 1: tgt_len}, "position": {0: batch},
             "memory": {0: batch, 1: src_len}, "source": {0: batch, 1: src_len}})
    errors["decoder.onnx"] = parity(step, dec_path, dec_inputs)
    return errors


def cache_decision(path: Path, data: corpus.Corpus, positions: int) -> dict:
    """What a key/value cache could save: the step's time over a full padded prefix (what we
    run) against a one-token prefix (about what a cached step would cost), single-threaded."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # as the service runs it
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out = {"prefix_positions": positions}
    for batch in (1, 16, 64):
        memory = np.zeros((batch, data.max_source, sess.get_inputs()[2].shape[2]), np.float32)
        source = np.ones((batch, data.max_source), np.int64)
        times = {}
        for length in (1, positions):
            feeds = {"tokens": np.ones((batch, length), np.int64),
                     "position": np.zeros(batch, np.int64), "memory": memory, "source": source}
            sess.run(None, feeds)
            start = time.perf_counter()
            for _ in range(20):
                sess.run(None, feeds)
            times[length] = (time.perf_counter() - start) / 20 * 1e3
        out[f"batch_{batch}_ms"] = {"one_position": round(times[1], 3),
                                    "full_prefix": round(times[positions], 3)}
    return out

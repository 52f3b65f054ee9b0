"""Export the translator as two graphs, each proven against torch before it is kept.

encoder.onnx: source (B, S) int64 -> memory (B, S, D).
decoder.onnx: tokens (B, P) int64, position (B,) int64, memory (B, S, D), source (B, S) int64
              -> logits (B, V), attention (B, S).
This step recomputes every prefix position; the service runs it for beam search. The step with
a key/value cache (decoder_cached.onnx) is translation_cache.py's, exported from the same
weights; the card's decoder_cache compares the two.
"""

from pathlib import Path

import numpy as np
import onnx
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

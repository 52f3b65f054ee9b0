"""A decoder step with a key/value cache (decoder_cached.onnx), beside the full-prefix step.

cross_kv.onnx: source (B, S) int64, S fixed at max_input_tokens -> cross_kv (B, C, H, S, dk),
C = 2 x decoder layers: the encoder, then each decoder layer's cross-attention keys and values
of its output (one MatMul for all of them), packed in one array in the order of the cached
step's context inputs, once per sequence.
decoder_cached.onnx: token (B,) int64, position (B,) int64, source (B, S) int64, the cross_*
arrays, past_k0, past_v0, ... (B, H, P, dk) -> logits (B, V), attention (B, S), new_k0,
new_v0, ... (B, H, dk).

Each row feeds only its newest token; the self-attention keys and values of its earlier
positions come from the past_* arrays (slot p holds position p; the slots at and after
`position` are masked), and this step's own key and value are the new_* outputs, which the
caller writes into slot `position` of its past arrays for the next step. So rows at different
positions share a call exactly as with the full-prefix graph. The cross-attention keys and
values come from cross_kv.onnx, computed once per sequence: recomputing them from the memory
every step was half of a cached step's cost at 16 rows.

    python -m training.translation_cache [--version-dir models/en-fr-numbers/1]

rebuilds the torch encoder and decoder from the committed encoder.onnx and decoder.onnx (their
initializers: the Linear weights are the MatMul constants that feed each named bias), proves the
rebuilt modules match those graphs, exports cross_kv.onnx and decoder_cached.onnx, proves each
against torch and the cached step against the full-prefix one, and records the cost of both
steps in the card (decoder_cache).
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import yaml
from onnx import numpy_helper
from torch import nn

from training.export import parity
from training.translation import Config, Decoder, DecoderStep, Encoder
from training.translation_export import EXAMPLE_BATCH, _export

PAD = 0
DECISION = ("with the cache: a step feeds one position per row instead of the padded prefix of 21, "
            "and the rows' cross-attention keys and values are computed once per sequence; the "
            "service uses it for greedy and sampled decoding (one stepper call per step for every "
            "running sequence), where it cut a 16-row step about 7x and a 64-row step about 10x "
            "(cost_ms). Each layer's keys and values are inputs and outputs of their own, in the "
            "layout the attention reads, and the step returns only its own keys and values "
            "(the service writes them into its arrays in place): against one packed cache "
            "(B, L, 2, P, D) returned whole each step, that halved a 16-row step. Beam search "
            "keeps the full-prefix step: its beams are reordered every step.")


class CachedStep(nn.Module):
    """One position per row, with the self-attention keys and values of earlier ones given.

    Every decoder layer's keys and values are inputs and outputs of their own, in the layout
    the attention reads (batch, heads, slots, head dim): ONNX Runtime copies any slice of a
    tensor, and splitting one packed (B, L, 2, ...) cache per layer and per step was a quarter
    of a 16-row step. The step's own key and value join the softmax beside the past slots
    instead of being written into a copy of the cache: the stepper writes them into its own
    arrays, in place, once the step is done."""

    def __init__(self, decoder: Decoder):
        super().__init__()
        self.decoder = decoder
        attn = decoder.layers[0].self_attn
        self.heads, self.d_k = attn.heads, attn.d_k
        # One MatMul for the query, key and value of a layer: one kernel call instead of three.
        self.qkv = nn.ModuleList(nn.Linear(attn.q.in_features, 3 * attn.q.out_features) for _ in decoder.layers)
        with torch.no_grad():
            for fused, layer in zip(self.qkv, decoder.layers, strict=True):
                a = layer.self_attn
                fused.weight.copy_(torch.cat([a.q.weight, a.k.weight, a.v.weight]))
                fused.bias.copy_(torch.cat([a.q.bias, a.k.bias, a.v.bias]))

    def forward(self, token, position, source, *state):
        """state: cross_k0, cross_v0, ... (B, H, S, dk), then past_k0, past_v0, ... (B, H, P, dk)
        -> logits (B, V), attention (B, S), new_k0, new_v0, ... (B, H, dk)."""
        dec, b, h, dk = self.decoder, token.shape[0], self.heads, self.d_k
        layers = len(dec.layers)
        cross, past = state[: 2 * layers], state[2 * layers:]
        slots = past[0].shape[2]
        scale = 1.0 / math.sqrt(dk)
        # Additive masks: the slots at and after this position (not written yet), and padding.
        blocked, free = torch.tensor(float("-inf")), torch.tensor(0.0)
        later = torch.where(torch.arange(slots, device=token.device)[None] >= position[:, None],
                            blocked, free)[:, None, None, :]  # (B, 1, 1, P)
        padding = torch.where(source == PAD, blocked, free)[:, None, None, :]  # (B, 1, 1, S)
        y = dec.embed(token) * dec.scale + dec.pe[position]  # (B, D)
        new = []
        for i, layer in enumerate(dec.layers):
            q, k, v = self.qkv[i](layer.norm1(y)).view(b, 3, h, 1, dk).unbind(1)  # (B, H, 1, dk)
            new += [k[:, :, 0], v[:, :, 0]]
            earlier = (q @ past[2 * i].transpose(-1, -2)) * scale + later  # (B, H, 1, P)
            own = (q * k).sum(-1, keepdim=True) * scale  # (B, H, 1, 1)
            weights = torch.softmax(torch.cat([earlier, own], -1), -1)
            out = weights[..., :slots] @ past[2 * i + 1] + weights[..., slots:] * v  # (B, H, 1, dk)
            y = y + layer.self_attn.o(out.reshape(b, h * dk))
            q = layer.cross.q(layer.norm2(y)).view(b, h, 1, dk)
            weights = torch.softmax((q @ cross[2 * i].transpose(-1, -2)) * scale + padding, -1)  # (B, H, 1, S)
            y = y + layer.cross.o((weights @ cross[2 * i + 1]).reshape(b, h * dk))
            y = y + layer.ff(layer.norm3(y))
        return (dec.out(dec.norm(y)), weights.mean(dim=1)[:, 0], *new)


class CrossKV(nn.Module):
    """source (B, S) -> every decoder layer's cross-attention keys and values in one array
    (B, C, H, S, dk), C = 2 x layers in the order k0, v0, k1, v1, ... (the cached step's
    cross_k0, cross_v0, ... inputs), from one MatMul over the encoder's memory.

    The encoder is the trained one, rewritten for ONNX Runtime: its dense layers run on
    (B * S, D) matrices, where ORT folds each bias (and the ReLU) into the MatMul (Gemm); on
    (B, S, D) every bias was an Add of its own, and they were a seventh of this graph's time at
    16 rows. The query, key and value of a layer are one MatMul. The graph runs once per
    sequence that joins, so its node count is paid per translation: one packed output (the
    service copies it into its rows in one go) instead of an output per array, and a source
    width fixed at export (the service pads every source to max_input_tokens), so no shape is
    computed at run time: 33 nodes instead of 46 after ORT's optimisations, a quarter less
    time per call (docs/BENCHMARKS.md, translation, eighth pass)."""

    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        attn = decoder.layers[0].cross
        self.heads, self.d_k = attn.heads, attn.d_k
        self.kv = nn.Linear(attn.k.in_features, 2 * len(decoder.layers) * attn.k.out_features)
        with torch.no_grad():
            self.kv.weight.copy_(torch.cat([w for layer in decoder.layers for w in (layer.cross.k.weight, layer.cross.v.weight)]))
            self.kv.bias.copy_(torch.cat([w for layer in decoder.layers for w in (layer.cross.k.bias, layer.cross.v.bias)]))
        own = encoder.layers[0].attn
        self.qkv = nn.ModuleList(nn.Linear(own.q.in_features, 3 * own.q.out_features) for _ in encoder.layers)
        with torch.no_grad():
            for fused, layer in zip(self.qkv, encoder.layers, strict=True):
                fused.weight.copy_(torch.cat([layer.attn.q.weight, layer.attn.k.weight, layer.attn.v.weight]))
                fused.bias.copy_(torch.cat([layer.attn.q.bias, layer.attn.k.bias, layer.attn.v.bias]))

    def forward(self, source):
        enc, s = self.encoder, source.shape[1]  # s: fixed at export; the batch axis is -1 throughout
        heads, d_k = enc.layers[0].attn.heads, enc.layers[0].attn.d_k
        d = heads * d_k
        padding = torch.where(source == PAD, torch.tensor(float("-inf")), torch.tensor(0.0))[:, None, None, :]
        x = (enc.embed(source) * enc.scale + enc.pe[:s]).reshape(-1, d)
        for i, layer in enumerate(enc.layers):
            q, k, v = self.qkv[i](layer.norm1(x)).view(-1, s, 3, heads, d_k).permute(2, 0, 3, 1, 4).unbind(0)
            weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d_k) + padding, dim=-1)  # (B, H, S, S)
            x = x + layer.attn.o((weights @ v).transpose(1, 2).reshape(-1, d))
            x = x + layer.ff(layer.norm2(x))
        kv = self.kv(enc.norm(x)).view(-1, s, 2 * len(self.decoder.layers), self.heads, self.d_k)
        return kv.permute(0, 2, 3, 1, 4)  # (B, C, H, S, dk)


def state_names(layers: int) -> tuple[list[str], list[str], list[str]]:
    """The cross_kv outputs (the cached step's context inputs), its past inputs and new outputs."""
    pairs = [f"{kv}{i}" for i in range(layers) for kv in ("k", "v")]
    return [f"cross_{p}" for p in pairs], [f"past_{p}" for p in pairs], [f"new_{p}" for p in pairs]


def from_onnx(module: nn.Module, path: Path, prefix: str = "") -> nn.Module:
    """`module` with the weights of the committed graph that was exported from its like."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    weights = {}  # a Linear is MatMul(x, W^T) then Add(its named bias)
    for node in model.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        biases = [i for n in consumers.get(node.output[0], []) if n.op_type == "Add"
                  for i in n.input if i.endswith(".bias")]
        if len(biases) != 1:
            raise ValueError(f"{path.name}: MatMul {node.name} feeds no single named bias")
        weights[biases[0][: -len(".bias")] + ".weight"] = inits[node.input[1]].T
    state = {}
    for name in module.state_dict():
        array = inits.get(prefix + name, weights.get(prefix + name))
        if array is None:
            raise ValueError(f"{path.name} holds no weight for {prefix + name}")
        state[name] = torch.from_numpy(np.ascontiguousarray(array))
    module.load_state_dict(state)
    return module.eval()


def rebuild(vdir: Path, cfg: Config) -> tuple[Encoder, Decoder]:
    """The torch encoder and decoder of a committed version, sized by its graphs' initializers."""
    def shape(path: Path, name: str) -> tuple[int, ...]:
        return next(tuple(i.dims) for i in onnx.load(str(path)).graph.initializer if i.name == name)

    enc, dec = vdir / "encoder.onnx", vdir / "decoder.onnx"
    encoder = Encoder(shape(enc, "embed.weight")[0], cfg, shape(enc, "pe")[0])
    decoder = Decoder(shape(dec, "decoder.embed.weight")[0], cfg, shape(dec, "decoder.pe")[0])
    return from_onnx(encoder, enc), from_onnx(decoder, dec, "decoder.")


def export_cached(encoder: Encoder, decoder: Decoder, vdir: Path, seed: int, s_max: int) -> dict:
    """Write cross_kv.onnx and decoder_cached.onnx; the parity of each against torch, and the
    cached step unrolled against the full-prefix step (the same logits at every position)."""
    layers, heads = len(decoder.layers), decoder.layers[0].self_attn.heads
    d_k = decoder.layers[0].self_attn.d_k
    slots, vocab = decoder.pe.shape[0], decoder.embed.weight.shape[0]
    step, full = CachedStep(decoder).eval(), DecoderStep(decoder).eval()
    cross_kv = CrossKV(encoder, decoder).eval()
    cross_names, past_names, new_names = state_names(layers)
    rng = np.random.default_rng(seed + 11)
    rows = {}

    def sources(n: int) -> np.ndarray:
        source = rng.integers(1, encoder.embed.weight.shape[0], (n, s_max)).astype(np.int64)
        source[:, int(rng.integers(1, s_max + 1)):] = PAD
        return source

    def inputs(kind: str, n: int):
        source = sources(n)
        tokens = rng.integers(1, vocab, (n, slots)).astype(np.int64)
        position = rng.integers(0, slots, n).astype(np.int64)
        with torch.no_grad():
            memory, cross = encoder(torch.from_numpy(source)), cross_kv(torch.from_numpy(source)).unbind(1)
            # what a real run would hold by `position`: each step's keys and values in its slot
            past = [torch.zeros(n, heads, slots, d_k) for _ in past_names]
            for p in range(slots):
                new = step(torch.from_numpy(tokens[:, p]), torch.full((n,), p), torch.from_numpy(source),
                           *cross, *past)[2:]
                keep = torch.from_numpy(p < position)[:, None, None]
                for cache, written in zip(past, new, strict=True):
                    cache[:, :, p] = torch.where(keep, written, cache[:, :, p])
        if kind == "random":  # garbage in the masked slots must not matter
            unused = torch.from_numpy((np.arange(slots)[None] >= position[:, None]).astype(np.float32))
            past = [cache + unused[:, None, :, None] * torch.randn_like(cache) for cache in past]
        rows[(kind, n)] = (tokens, position, memory.numpy(), source)
        return (tokens[np.arange(n), position], position, source, *(c.numpy() for c in cross),
                *(c.numpy() for c in past))

    batch = torch.export.Dim("batch", min=1, max=4096)
    src_len = torch.export.Dim("source_length", min=1, max=s_max)
    errors = {}
    path = vdir / "cross_kv.onnx"
    _export(cross_kv, (torch.from_numpy(sources(EXAMPLE_BATCH)),), path, ["source"], ["cross_kv"],
            {"source": {0: batch}})
    errors["cross_kv.onnx"] = parity(cross_kv, path, lambda kind, n: (sources(n),))
    path = vdir / "decoder_cached.onnx"
    example = tuple(torch.from_numpy(a) for a in inputs("random", EXAMPLE_BATCH))
    _export(step, example, path, ["token", "position", "source", *cross_names, *past_names],
            ["logits", "attention", *new_names],
            {"token": {0: batch}, "position": {0: batch}, "source": {0: batch, 1: src_len},
             "state": tuple([{0: batch, 2: src_len}] * len(cross_names) + [{0: batch}] * len(past_names))})
    errors["decoder_cached.onnx"] = parity(step, path, inputs)
    worst = 0.0  # the cached step against the full-prefix one, on the same rows
    for kind, n in list(rows):
        arrays = inputs(kind, n)
        tokens, position, memory, source = rows[(kind, n)]
        with torch.no_grad():
            got = step(*(torch.from_numpy(a) for a in arrays))
            want = full(torch.from_numpy(tokens), torch.from_numpy(position),
                        torch.from_numpy(memory), torch.from_numpy(source))
        worst = max(worst, float((got[0] - want[0]).abs().max()), float((got[1] - want[1]).abs().max()))
    if worst > 1e-4:
        raise ValueError(f"the cached step differs from the full-prefix step by {worst:.3g}")
    errors["decoder_cached.onnx"]["max_abs_error_vs_full_prefix_step"] = worst
    return errors


def cost(vdir: Path, s_max: int) -> dict:
    """ms per step, single-threaded as the service runs it: the full-prefix graph over the
    padded prefix against the cached graph's one position, at batch 1, 16 and 64."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    full = ort.InferenceSession(str(vdir / "decoder.onnx"), opts, providers=["CPUExecutionProvider"])
    cached = ort.InferenceSession(str(vdir / "decoder_cached.onnx"), opts, providers=["CPUExecutionProvider"])
    d = full.get_inputs()[2].shape[2]
    state = cached.get_inputs()[3:]  # the cross keys and values (B, H, S, dk), then the past ones (B, H, P, dk)
    slots = state[-1].shape[2]
    out = {"prefix_positions": slots}
    for b in (1, 16, 64):
        memory = np.zeros((b, s_max, d), np.float32)
        source = np.ones((b, s_max), np.int64)
        position = np.full(b, slots // 2, np.int64)
        feeds = {"full_prefix": (full, {"tokens": np.ones((b, slots), np.int64), "position": position,
                                        "memory": memory, "source": source}),
                 "cached": (cached, {"token": np.ones(b, np.int64), "position": position, "source": source,
                                     **{s.name: np.zeros((b, s.shape[1], s_max if s.name.startswith("cross")
                                                          else slots, s.shape[3]), np.float32)
                                        for s in state}})}
        row = {}
        for name, (sess, f) in feeds.items():
            sess.run(None, f)
            best = math.inf
            for _ in range(5):  # the machine is shared: the best of 5 rounds of 20
                start = time.perf_counter()
                for _ in range(20):
                    sess.run(None, f)
                best = min(best, (time.perf_counter() - start) / 20 * 1e3)
            row[name] = round(best, 3)
        out[f"batch_{b}_ms"] = row
    return out


def add_cache(encoder: Encoder, decoder: Decoder, vdir: Path, seed: int, s_max: int) -> tuple[dict, dict]:
    """Export cross_kv.onnx and decoder_cached.onnx beside the other graphs, name them in the
    version's config.yaml; their parity errors and the card's decoder_cache section."""
    errors = export_cached(encoder, decoder, vdir, seed, s_max)
    config_path = vdir / "config.yaml"
    if "decoder_cached" not in yaml.safe_load(config_path.read_text(encoding="utf-8"))["graphs"]:
        text = config_path.read_text(encoding="utf-8")  # a line edit keeps the file's layout
        line = next(x for x in text.splitlines() if x.startswith("graphs:"))
        config_path.write_text(text.replace(line, line.rstrip("}") + ", cross_kv: cross_kv.onnx, "
                                            "decoder_cached: decoder_cached.onnx}"), encoding="utf-8")
        if yaml.safe_load(config_path.read_text(encoding="utf-8"))["graphs"].get("decoder_cached") is None:
            raise ValueError(f"could not add decoder_cached to {config_path}")
    return errors, {
        "command": "python -m training.translation_cache",
        "cost_ms": cost(vdir, s_max),
        "decision": DECISION,
        "served": "cross_kv.onnx then decoder_cached.onnx for greedy and sampled decoding; "
                  "encoder.onnx then decoder.onnx (full prefix) for beam search, whose beams are "
                  "reordered every step",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.translation_cache",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--version-dir", type=Path, default=Path("models/en-fr-numbers/1"))
    args = parser.parse_args(argv)
    vdir = args.version_dir
    card_path = vdir / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    hyper = card["hyperparameters"]
    cfg = Config(**{k: v for k, v in hyper.items() if k in Config.__dataclass_fields__ and k != "pool"})
    config_path = vdir / "config.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    s_max = config["max_input_tokens"]
    encoder, decoder = rebuild(vdir, cfg)
    rebuilt = _rebuilt_parity(encoder, decoder, vdir, s_max, cfg.seed)
    errors, card["decoder_cache"] = add_cache(encoder, decoder, vdir, cfg.seed, s_max)
    card["parity"].update(errors)
    card["decoder_cache"]["rebuilt_modules_vs_committed_graphs_max_abs_error"] = rebuilt
    card_path.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(card["decoder_cache"], indent=1))


def _rebuilt_parity(encoder: Encoder, decoder: Decoder, vdir: Path, s_max: int, seed: int) -> dict:
    """The rebuilt torch modules against the committed graphs: the weights were read right."""
    rng = np.random.default_rng(seed + 13)
    slots, d = decoder.pe.shape[0], decoder.embed.weight.shape[1]

    def sources(n: int) -> np.ndarray:
        source = rng.integers(1, encoder.embed.weight.shape[0], (n, s_max)).astype(np.int64)
        source[:, int(rng.integers(1, s_max + 1)):] = PAD
        return source

    def inputs(kind: str, n: int):
        return (rng.integers(1, decoder.embed.weight.shape[0], (n, slots)).astype(np.int64),
                rng.integers(0, slots, n).astype(np.int64),
                rng.standard_normal((n, s_max, d)).astype(np.float32), sources(n))

    return {"encoder.onnx": parity(encoder, vdir / "encoder.onnx", lambda kind, n: (sources(n),))["max_abs_error"],
            "decoder.onnx": parity(DecoderStep(decoder), vdir / "decoder.onnx", inputs)["max_abs_error"]}


if __name__ == "__main__":
    main()

"""How well the translator does: exact match and token accuracy of greedy and beam decoding.

The card's numbers come from the exported ONNX graphs driven by the service's own decoding
loop (service/sampling/decoding.py), the same code the service runs; the torch greedy decoder
is only the cheap progress check during training.
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from service.sampling import decoding
from training import translation_data as corpus

BEAM_WIDTH = 4
BEAM_NUMBERS = 1000  # beam search runs one number at a time: a subset keeps it short


@torch.no_grad()
def torch_greedy(encoder, decoder, source: np.ndarray, steps: int) -> np.ndarray:
    """(N, S) source ids -> (N, steps) greedy target ids (teacher-free, all rows together)."""
    encoder.eval(), decoder.eval()
    src = torch.from_numpy(source)
    memory = encoder(src)
    out = torch.full((len(src), 1), corpus.BOS, dtype=torch.int64)
    for _ in range(steps):
        logits, _ = decoder(out, memory, src)
        out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    encoder.train(), decoder.train()
    return out[:, 1:].numpy()


def torch_exact_match(encoder, decoder, data: corpus.Corpus, numbers) -> float:
    want = data.targets(numbers)[:, 1:]  # (N, T + 1) ids, EOS, pad
    got = torch_greedy(encoder, decoder, data.sources(numbers), want.shape[1])
    mask = want != corpus.PAD
    return float(np.mean(np.all((got == want) | ~mask, axis=1)))


class OnnxTranslator:
    """The two graphs with the service's decoding loop, batch of one (as a lone request)."""

    def __init__(self, vdir: Path, data: corpus.Corpus):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.enc = ort.InferenceSession(str(vdir / "encoder.onnx"), opts,
                                        providers=["CPUExecutionProvider"])
        self.dec = ort.InferenceSession(str(vdir / "decoder.onnx"), opts,
                                        providers=["CPUExecutionProvider"])
        self.data = data
        self.max_tokens = data.max_target + 1

    def greedy_batch(self, source: np.ndarray) -> list[list[int]]:
        """Greedy over many rows at once (each row's result is the lone row's: the graph is
        row-independent), decoding.decode's argmax rule, for the full test set."""
        memory = self.enc.run(None, {"source": source})[0]
        n, positions = len(source), self.max_tokens + 1
        tokens = np.full((n, positions), corpus.PAD, dtype=np.int64)
        tokens[:, 0] = corpus.BOS
        done = np.zeros(n, dtype=bool)
        out: list[list[int]] = [[] for _ in range(n)]
        for step in range(self.max_tokens):
            logits, _ = self.dec.run(None, {"tokens": tokens, "position": np.full(n, step),
                                            "memory": memory, "source": source})
            choice = logits.argmax(-1)
            for i in np.flatnonzero(~done):
                if choice[i] == corpus.EOS:
                    done[i] = True
                else:
                    out[i].append(int(choice[i]))
            tokens[:, step + 1] = np.where(done, corpus.PAD, choice)
            if done.all():
                break
        return out

    def decode(self, source_row: np.ndarray, **options) -> decoding.Decoded:
        source = source_row[None]
        memory = self.enc.run(None, {"source": source})[0]

        def step(tokens, position):
            r = len(tokens)
            return self.dec.run(None, {"tokens": tokens, "position": np.full(r, position),
                                       "memory": np.repeat(memory, r, 0),
                                       "source": np.repeat(source, r, 0)})

        gen = decoding.decode(bos=corpus.BOS, eos=corpus.EOS, pad=corpus.PAD,
                              positions=self.max_tokens + 1, max_tokens=self.max_tokens, **options)
        return decoding.run(gen, step)


def token_accuracy(got: list[list[int]], want: list[list[int]]) -> float:
    """Share of reference tokens (EOS included) matched position by position."""
    hits = total = 0
    for g, w in zip(got, want, strict=True):
        g, w = g + [corpus.EOS], w + [corpus.EOS]
        hits += sum(a == b for a, b in zip(g, w))
        total += len(w)
    return hits / total


def evaluate(vdir: Path, data: corpus.Corpus, test: np.ndarray,
             beam_numbers: int = BEAM_NUMBERS) -> dict:
    """Greedy on every test number (both English styles), beam vs greedy on a subset."""
    tr = OnnxTranslator(vdir, data)
    want = [data.encode_target(data.text[int(n)][1]) for n in test]
    metrics: dict = {"test_numbers": len(test)}
    for style, strip in (("num2words", False), ("without_and", True)):
        stripped = np.full(len(test), strip)
        got = []
        for lo in range(0, len(test), 500):
            got += tr.greedy_batch(data.sources(test[lo:lo + 500], stripped[lo:lo + 500],
                                                data.max_source))
        right = [g == w for g, w in zip(got, want, strict=True)]
        by_size: dict[str, list[bool]] = {}
        for n, ok in zip(test, right, strict=True):
            by_size.setdefault(f"{len(str(int(n)))} digits", []).append(ok)
        # Round numbers are what people type; the held-out ones were never trained on.
        round_ = [ok for n, ok in zip(test, right, strict=True) if n % 100 == 0]
        metrics[f"greedy_{style}"] = {
            "exact_match": float(np.mean(right)), "token_accuracy": token_accuracy(got, want),
            "errors": len(right) - sum(right),
            "exact_match_by_size": {k: {"numbers": len(v), "exact_match": float(np.mean(v))}
                                    for k, v in sorted(by_size.items())},
            "exact_match_multiples_of_100": {"numbers": len(round_),
                                             "exact_match": float(np.mean(round_)) if round_ else None},
            "error_examples": [
                {"number": int(n), "english": " ".join(data.text[int(n)][0]),
                 "want": corpus.join_target(data.text[int(n)][1]),
                 "got": corpus.join_target([data.target_vocab[i] for i in g])}
                for n, g, ok in zip(test, got, right, strict=True) if not ok][:20],
        }

    subset = test[:: max(1, len(test) // beam_numbers)][:beam_numbers]
    sources = data.sources(subset, None, data.max_source)
    sub_want = [data.encode_target(data.text[int(n)][1]) for n in subset]
    greedy = [tr.decode(s).best.tokens for s in sources]
    beam = [tr.decode(s, beam_width=BEAM_WIDTH).best.tokens for s in sources]
    metrics["beam_vs_greedy"] = {
        "numbers": len(subset), "beam_width": BEAM_WIDTH,
        "greedy_exact_match": float(np.mean([g == w for g, w in zip(greedy, sub_want)])),
        "beam_exact_match": float(np.mean([b == w for b, w in zip(beam, sub_want)])),
        "beam_differs_from_greedy": int(sum(b != g for b, g in zip(beam, greedy))),
        "decoder": "service/sampling/decoding.py over the ONNX graphs",
    }
    return metrics

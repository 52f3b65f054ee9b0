"""The English -> French number corpus: num2words over 0..999,999, generated, never downloaded.

Split by number with a seeded permutation: the first 5,000 numbers are the test set, the next
1,000 validation; neither is ever trained on. num2words takes ~0.4 ms a pair, so training draws
from a pool (every training number below 1,000, every multiple of 100 not held out, and a
uniform sample of 4-, 5- and 6-digit ones) rather than converting all 994,000. Tokens are words,
with "-" and "," tokens of their own.
"""

from dataclasses import dataclass, field

import numpy as np
from num2words import num2words

NUMBERS = 1_000_000
TEST, VAL = 5_000, 1_000
PAD, BOS, EOS = 0, 1, 2
SPECIALS = ["<pad>", "<bos>", "<eos>"]
SOURCE_SPECIALS = ["<pad>"]
# Batches draw a bucket first, so short numbers (0.1% of 0..999,999) are taught too, and round
# ones (multiples of 100, what people type most: also 0.1%), which a uniform sample all but
# missed: models trained without them got a quarter of "N thousand" wrong.
BUCKET_WEIGHTS = {"0-999": 0.15, "round": 0.1, "4 digits": 0.15, "5 digits": 0.2, "6 digits": 0.4}


def english(n: int) -> str:
    return num2words(n, lang="en")


def french(n: int) -> str:
    return num2words(n, lang="fr")


def source_tokens(text: str) -> list[str]:
    """'ninety-nine thousand, one' -> ['ninety', '-', 'nine', 'thousand', ',', 'one']."""
    return text.replace(",", " , ").replace("-", " - ").split()


def target_tokens(text: str) -> list[str]:
    return text.replace("-", " - ").split()


def strip_and(tokens: list[str]) -> list[str]:
    """The American style: 'one hundred seventy-one', no 'and', no commas."""
    return [t for t in tokens if t not in ("and", ",")]


def join_target(tokens: list[str]) -> str:
    """The inverse of target_tokens: hyphens bind their neighbours."""
    return " ".join(tokens).replace(" - ", "-")


@dataclass
class Corpus:
    seed: int
    test: np.ndarray  # (5000,) numbers never trained on
    val: np.ndarray  # (1000,)
    buckets: dict[str, np.ndarray]  # training numbers by size
    text: dict[int, tuple[list[str], list[str]]]  # number -> (English tokens, French tokens)
    source_vocab: list[str] = field(default_factory=list)
    target_vocab: list[str] = field(default_factory=list)
    max_source: int = 0  # tokens
    max_target: int = 0  # tokens, EOS excluded

    def encode_source(self, tokens: list[str]) -> list[int]:
        index = {w: i for i, w in enumerate(self.source_vocab)}
        return [index[t] for t in tokens]

    def encode_target(self, tokens: list[str]) -> list[int]:
        index = {w: i for i, w in enumerate(self.target_vocab)}
        return [index[t] for t in tokens]

    def sources(self, numbers, stripped=None, length: int | None = None) -> np.ndarray:
        """(N, length) int64 right-padded source ids; stripped[i] drops 'and'/','."""
        rows = []
        for i, n in enumerate(numbers):
            words = self.text[int(n)][0]
            rows.append(self.encode_source(strip_and(words) if stripped is not None and stripped[i]
                                           else words))
        return _pad(rows, length or max(len(r) for r in rows))

    def targets(self, numbers) -> np.ndarray:
        """(N, 1 + T + 1) int64: BOS, the French ids, EOS, then pad."""
        rows = [[BOS, *self.encode_target(self.text[int(n)][1]), EOS] for n in numbers]
        return _pad(rows, max(len(r) for r in rows))

    def batch(self, rng: np.random.Generator, size: int, p_strip: float):
        names = list(BUCKET_WEIGHTS)
        which = rng.choice(len(names), size=size, p=list(BUCKET_WEIGHTS.values()))
        numbers = [int(rng.choice(self.buckets[names[w]])) for w in which]
        return self.sources(numbers, rng.random(size) < p_strip), self.targets(numbers)

    def config(self) -> dict:
        """The version's config.yaml: all the service needs to tokenize, decode and detokenize."""
        return {
            "task": "translation",
            "description": "English number words to French number words (0..999,999): an "
                           "encoder-decoder transformer. Tokens are words split at spaces, with "
                           "'-' and ',' tokens of their own.",
            "graphs": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
            "vocabulary": {"source": self.source_vocab, "target": self.target_vocab},
            "special_tokens": {"pad": PAD, "bos": BOS, "eos": EOS},
            "max_input_tokens": self.max_source,
            "max_output_tokens": self.max_target + 1,  # EOS-free tokens; one spare position
        }

    def card(self) -> dict:
        return {
            "name": "num2words English -> French, 0..999,999",
            "source": "num2words (lang='en' and lang='fr'), generated at training time",
            "split": {
                "method": "numpy default_rng(seed).permutation(1,000,000): the first 5,000 "
                          "numbers are test, the next 1,000 validation, the rest may be trained on",
                "seed": self.seed,
                "sizes": {"test": len(self.test), "val": len(self.val),
                          "train_pool": int(sum(len(b) for b in self.buckets.values()))},
                "train_pool": {k: len(v) for k, v in self.buckets.items()},
                "batch_bucket_weights": BUCKET_WEIGHTS,
            },
            "test_numbers_first_20": [int(n) for n in self.test[:20]],
        }


def _pad(rows: list[list[int]], length: int) -> np.ndarray:
    out = np.full((len(rows), length), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def build(seed: int, pool: tuple[int, int, int, int]) -> Corpus:
    """The split, the training pool of sizes `pool` (4, 5, 6 digits, multiples of 100), texts
    and vocabularies."""
    order = np.random.default_rng(seed).permutation(NUMBERS)
    test, val = np.sort(order[:TEST]), np.sort(order[TEST:TEST + VAL])
    held = np.zeros(NUMBERS, dtype=bool)
    held[order[:TEST + VAL]] = True
    rng = np.random.default_rng(seed + 1)
    buckets = {"0-999": np.flatnonzero(~held[:1000])}
    for (name, low, high), size in zip(
            [("4 digits", 1_000, 10_000), ("5 digits", 10_000, 100_000),
             ("6 digits", 100_000, NUMBERS)], pool[:3], strict=True):
        candidates = low + np.flatnonzero(~held[low:high])
        buckets[name] = np.sort(rng.choice(candidates, size=min(size, len(candidates)),
                                           replace=False))
    hundreds = np.arange(100, NUMBERS, 100)
    candidates = hundreds[~held[hundreds]]  # the multiples of 100 not held out
    buckets["round"] = np.sort(rng.choice(candidates, size=min(pool[3], len(candidates)), replace=False))
    numbers = np.concatenate([np.arange(1000), *buckets.values(), test, val])
    text = {int(n): (source_tokens(english(int(n))), target_tokens(french(int(n))))
            for n in numbers}
    # Every word of either language occurs below 1,000 or as "thousand"/"mille": all are here.
    source_words = sorted({w for s, _ in text.values() for w in s})
    target_words = sorted({w for _, t in text.values() for w in t})
    corpus = Corpus(seed, test, val, buckets, text, SOURCE_SPECIALS + source_words,
                    SPECIALS + target_words)
    # The longest number is a longest thousands part before a longest units part.
    small = sorted(range(1000), key=lambda n: -len(text[n][0]) - len(text[n][1]))[:12]
    longest = [a * 1000 + b for a in small for b in small if a > 0]
    corpus.max_source = max(len(source_tokens(english(n))) for n in longest)
    corpus.max_target = max(len(target_tokens(french(n))) for n in longest)
    return corpus

"""Prompts to token ids for a text encoder, shared by the service and training's judge. numpy only.

A prompt is lower-cased and split into words of letters and digits (anything else separates
them, so "7, thin" is two words); each word is its index in the model's vocabulary, padded with PAD to the encoder's fixed
length. The empty prompt is the single token NULL: the caption classifier-free guidance drops to.
"""

import numpy as np

PAD, NULL = "<pad>", "<null>"


class PromptError(ValueError):
    """A prompt the vocabulary cannot say: unknown words, or too many of them."""


def words(text: str) -> list[str]:
    """Lower-case words of letters and digits; anything else separates them."""
    out, word = [], []
    for ch in text.lower() + " ":
        if ch.isalnum():  # a non-ASCII word stays whole, so a 400 can name it
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    return out


class Vocabulary:
    """Word -> token id, for an encoder that takes (B, max_words) int64 ids."""

    def __init__(self, vocabulary: list[str], max_words: int):
        if PAD not in vocabulary or NULL not in vocabulary:
            raise ValueError(f"the vocabulary needs the tokens {PAD} and {NULL}")
        self.ids = {word: i for i, word in enumerate(vocabulary)}
        self.words = [w for w in vocabulary if w not in (PAD, NULL)]  # what a prompt may say
        self.max_words = max_words

    def check(self, prompt: str) -> None:
        """Raise PromptError naming the words outside the vocabulary, or the count over max."""
        said = words(prompt)
        unknown = list(dict.fromkeys(w for w in said if w not in self.ids or w in (PAD, NULL)))
        if unknown:
            raise PromptError(f"{'word' if len(unknown) == 1 else 'words'} not in the vocabulary: "
                              f"{', '.join(repr(w) for w in unknown)}; "
                              f"the vocabulary is: {', '.join(self.words)}")
        if len(said) > self.max_words:
            raise PromptError(f"the prompt has {len(said)} words; at most {self.max_words}")

    def encode(self, prompts: list[str]) -> np.ndarray:
        """(P, max_words) int64 token ids; an empty prompt is NULL."""
        tokens = np.full((len(prompts), self.max_words), self.ids[PAD], dtype=np.int64)
        for row, prompt in enumerate(prompts):
            self.check(prompt)
            ids = [self.ids[w] for w in words(prompt)] or [self.ids[NULL]]
            tokens[row, : len(ids)] = ids
        return tokens


def table(prompts: list[str]) -> tuple[list[str], np.ndarray | None]:
    """The distinct prompts to encode, the empty (null) one last, and each sample's row in them.

    One encoder call gives every prompt of a request and the null caption; the sampler's labels
    are rows of that table and its null_label the last row. None: no sample asks for anything.
    """
    distinct = list(dict.fromkeys(p for p in prompts if words(p)))
    if not distinct:
        return [""], None
    rows = {p: i for i, p in enumerate(distinct)}
    null = len(distinct)
    return [*distinct, ""], np.array([rows.get(p, null) for p in prompts], dtype=np.int64)

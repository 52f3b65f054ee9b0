"""Word tokens of a sequence-to-sequence model: text -> source ids, target ids -> text.

Words split at spaces, with "-" and "," tokens of their own (the vocabularies in config.yaml say
which words exist). Every check happens here, before a request reaches a graph: a bad string is
a 400 that names the problem, never a crash deeper down.
"""

from service.errors import InvalidInput

MAX_CHARS = 1000  # far above any input a max_input_tokens of words can spell


class Tokenizer:
    def __init__(self, source: list[str], target: list[str], pad: int, max_input_tokens: int):
        self.source = list(source)
        self.target = list(target)
        self.max_input_tokens = max_input_tokens
        # The words an input may hold: the pad word is in the vocabulary but never a word.
        self._index = {word: i for i, word in enumerate(self.source) if i != pad}
        self._words = [w for i, w in enumerate(self.source) if i != pad]
        self._padding = [pad] * max_input_tokens

    def encode(self, text, where: str = "text_input") -> list[int]:
        """The source ids of one string, or InvalidInput saying what is wrong with it."""
        if not isinstance(text, str):
            raise InvalidInput(f"{where} must be a string, not {type(text).__name__}")
        if len(text) > MAX_CHARS:
            raise InvalidInput(f"{where} is {len(text):,} characters long; the most is {MAX_CHARS:,}")
        if not text.isascii():
            bad = next(c for c in text if not c.isascii())
            raise InvalidInput(f"{where} must be ASCII English number words; it holds {bad!r}")
        if not text.isprintable():  # for ASCII, what [\x20-\x7e]* matches; no regex run cold per request
            bad = next(c for c in text if not 0x20 <= ord(c) <= 0x7E)
            raise InvalidInput(f"{where} holds the control character {bad!r}")
        words = self.split(text)
        index = self._index
        ids = [index.get(w) for w in words]
        if words and None not in ids and len(ids) <= self.max_input_tokens:  # every valid input
            return ids
        # What is wrong, in this order: nothing, unknown words, too many.
        if not words:
            raise InvalidInput(f"{where} is empty: give English number words, e.g. \"forty-two\"")
        unknown = list(dict.fromkeys(w for w in words if w not in index))
        if unknown:
            raise InvalidInput(
                f"{where}: {', '.join(repr(w) for w in unknown)} not in the vocabulary; "
                f"the words this model knows are: {' '.join(self._words)}")
        raise InvalidInput(f"{where} has {len(words)} tokens; the most is {self.max_input_tokens}")

    @staticmethod
    def split(text: str) -> list[str]:
        """'Ninety-nine thousand, one' -> ['ninety', '-', 'nine', 'thousand', ',', 'one']."""
        return text.lower().replace("-", " - ").replace(",", " , ").split()  # a regex sub took 3x as long

    def padded(self, ids: list[int]) -> list[int]:
        """The ids right-padded to max_input_tokens: every source the same width, so any two
        share a batch."""
        return ids + self._padding[len(ids):]

    def pieces(self, ids: list[int]) -> list[str]:
        """The text each target token adds: hyphens bind their neighbours, else a space."""
        out, previous = [], None
        for i in ids:
            word = self.target[i]
            glue = previous is None or word == "-" or previous == "-"
            out.append(word if glue else " " + word)
            previous = word
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces(ids))

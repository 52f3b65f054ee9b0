"""service/tasks/tokens.py: words in, ids out, and every bad string a clear InvalidInput."""

import pytest

from service.errors import InvalidInput
from service.tasks.tokens import Tokenizer

SOURCE = ["<pad>", ",", "-", "and", "hundred", "nine", "ninety", "one", "thousand", "twelve"]
TARGET = ["<pad>", "<bos>", "<eos>", "-", "cent", "douze", "mille", "neuf", "quatre", "vingt", "un"]


@pytest.fixture
def tokens() -> Tokenizer:
    return Tokenizer(SOURCE, TARGET, pad=0, max_input_tokens=8)


def test_words_hyphens_and_commas_are_tokens(tokens):
    assert tokens.split("Ninety-nine thousand,one") == ["ninety", "-", "nine", "thousand", ",", "one"]
    assert tokens.encode("  ninety-NINE  ") == [6, 2, 5]
    assert tokens.padded([6, 2, 5]) == [6, 2, 5, 0, 0, 0, 0, 0]


def test_hyphens_bind_their_neighbours_when_decoding(tokens):
    ids = [8, 3, 9, 3, 10, 6, 4]  # quatre - vingt - un mille cent
    assert tokens.pieces(ids) == ["quatre", "-", "vingt", "-", "un", " mille", " cent"]
    assert tokens.decode(ids) == "quatre-vingt-un mille cent"


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    (" \t", "control character"),
    ("twelve apples pears apples", "'apples', 'pears' not in the vocabulary"),
    ("<pad>", "'<pad>' not in the vocabulary"),
    ("nine\u00a0hundred", "ASCII"),
    ("nine\nhundred", "control character"),
    ("one " * 9, "9 tokens; the most is 8"),
    ("x" * 1001, "1,001 characters"),
    (12, "must be a string"),
    (None, "must be a string"),
])
def test_bad_strings_are_named(tokens, text, message):
    with pytest.raises(InvalidInput, match=message):
        tokens.encode(text)


def test_the_vocabulary_is_shown_without_padding(tokens):
    with pytest.raises(InvalidInput) as err:
        tokens.encode("zillion")
    assert "knows are: , - and hundred nine ninety one thousand twelve" in str(err.value)

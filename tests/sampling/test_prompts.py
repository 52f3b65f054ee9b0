"""Prompts to token ids: words, padding, the null caption, and the table of a request's prompts."""

import numpy as np
import pytest

from service.sampling.prompts import PromptError, Vocabulary, table, words

VOCAB = Vocabulary(["<pad>", "<null>", "a", "thick", "seven", "7"], max_words=4)


def test_words_are_lower_case_runs_of_letters_and_digits():
    assert words("A thick-SEVEN, 7!") == ["a", "thick", "seven", "7"]
    assert words("  ¡¿ ") == [] and words("Séven") == ["séven"]


def test_encode_pads_and_the_empty_prompt_is_the_null_token():
    np.testing.assert_array_equal(VOCAB.encode(["a thick seven", "", "7"]),
                                  [[2, 3, 4, 0], [1, 0, 0, 0], [5, 0, 0, 0]])


@pytest.mark.parametrize("prompt, message", [
    ("a purple seven", "word not in the vocabulary: 'purple'; the vocabulary is: a, thick, seven, 7"),
    ("pad null", "words not in the vocabulary: 'pad', 'null'"),
    ("a thick seven 7 7", "the prompt has 5 words; at most 4"),
])
def test_prompts_it_cannot_say_are_named(prompt, message):
    with pytest.raises(PromptError, match=message):
        VOCAB.encode([prompt])


def test_the_table_holds_each_distinct_prompt_once_and_the_null_caption_last():
    distinct, rows = table(["a thick seven", "", "7", "a thick seven", "!!"])
    assert distinct == ["a thick seven", "7", ""]
    np.testing.assert_array_equal(rows, [0, 2, 1, 0, 2])
    assert table(["", " "]) == ([""], None)  # nothing asked: unconditional

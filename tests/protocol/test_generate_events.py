"""generate_stream's token events from a template are the bytes the generic event encoder
writes: the same JSON, escapes and non-ASCII included."""

from types import SimpleNamespace

import numpy as np
import pytest

from service.protocol.generate_events import sse
from service.protocol.generate_text import TokenEvents, text_event
from service.tasks.translation import TextGeneration, Token


@pytest.mark.parametrize(("token", "text"), [
    ("cent", " cent"), ("zéro", "zéro"), ("-", "-"), ('say "hi"\\', ' say "hi"\\'), ("\u2028", "\n\t"),
])
def test_a_templated_token_event_is_the_generic_one(token, text):
    model = SimpleNamespace(name='en-fr "numbers"', version=12)
    event = Token(7, token, text, np.ones(3, np.float32))
    assert TokenEvents(model).sse(event) == sse(text_event(model, event, attention=False))


@pytest.mark.parametrize(("output", "reason", "seed"), [
    ("douze", "stop", None), ("quatre-vingt-dix-huit mille", "length", 12), ('a "b"\\ \u2028é', "stop", 2**63 - 1),
    ("", "length", 0),
])
def test_a_templated_done_event_is_the_generic_one(output, reason, seed):
    model = SimpleNamespace(name='en-fr "numbers"', version=12)
    generation = TextGeneration(output, reason, output.split(), seed, ["twelve"])
    assert TokenEvents(model).done(generation) == sse(text_event(model, generation, attention=False))


def test_a_done_event_with_attention_or_nbest_is_left_to_the_generic_encoder():
    events = TokenEvents(SimpleNamespace(name="m", version=1))
    assert events.done(TextGeneration("x", "stop", ["x"], None, ["a"], attention=np.ones((1, 1)))) is None
    assert events.done(TextGeneration("x", "stop", ["x"], None, ["a"], nbest=[{"text_output": "x"}])) is None

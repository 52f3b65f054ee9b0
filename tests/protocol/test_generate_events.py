"""generate_stream's token events from a template are the bytes the generic event encoder
writes: the same JSON, escapes and non-ASCII included."""

from types import SimpleNamespace

import numpy as np
import pytest

from service.protocol.generate_events import sse
from service.protocol.generate_text import TokenEvents, text_event
from service.tasks.translation import Token


@pytest.mark.parametrize(("token", "text"), [
    ("cent", " cent"), ("zéro", "zéro"), ("-", "-"), ('say "hi"\\', ' say "hi"\\'), ("\u2028", "\n\t"),
])
def test_a_templated_token_event_is_the_generic_one(token, text):
    model = SimpleNamespace(name='en-fr "numbers"', version=12)
    event = Token(7, token, text, np.ones(3, np.float32))
    assert TokenEvents(model).sse(event) == sse(text_event(model, event, attention=False))

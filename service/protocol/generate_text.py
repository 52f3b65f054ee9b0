"""The generate extension's text shape (Triton's): {"text_output": ...} for sequence models.

Streams send one event per token whose text_output is the text it adds (concatenate them for
the whole output), then a last event with the finish reason.
"""

import functools
from types import SimpleNamespace

import orjson

from service.tasks.translation import TextGeneration, Token


def text_done(model, generation: TextGeneration) -> dict:
    body = {"model_name": model.name, "model_version": str(model.version),
            "text_output": generation.text_output, "finish_reason": generation.finish_reason,
            "tokens": len(generation.tokens)}
    if generation.seed is not None:
        body["seed"] = generation.seed
    if generation.nbest:
        body["nbest"] = generation.nbest
    if generation.attention is not None:
        body["attention"] = {"source_tokens": generation.source_tokens,
                             "output_tokens": generation.tokens,
                             "weights": generation.attention.round(4)}
    return body


def text_event(model, event, attention: bool) -> dict:
    head = {"model_name": model.name, "model_version": str(model.version)}
    if isinstance(event, Token):
        body = {**head, "text_output": event.text_output, "index": event.index, "token": event.token}
        if attention and event.attention is not None:
            body["attention"] = event.attention.round(4)
            if event.source_tokens is not None:
                body["source_tokens"] = event.source_tokens
        return body
    done = text_done(model, event)
    done.pop("attention", None)  # a stream sent each row with its token already
    return {**done, "text_output": "", "output": event.text_output, "event": "done"}


class TokenEvents:
    """A stream's token events without attention as SSE bytes, from a template: the bytes
    `sse(text_event(model, token, False))` gives, at a fraction of the cost per token. A
    vocabulary is small, so each (text, token) pair's JSON is encoded once and kept: one
    TokenEvents per model version (`of`), shared by its streams."""

    __slots__ = ("_head", "_pieces")

    def __init__(self, model):
        self._head = (b'data: {"model_name":' + orjson.dumps(model.name) + b',"model_version":'
                      + orjson.dumps(str(model.version)) + b',"text_output":')
        self._pieces: dict[tuple[str, str], tuple[bytes, bytes]] = {}

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def _of(name: str, version: str) -> "TokenEvents":
        return TokenEvents(SimpleNamespace(name=name, version=version))

    @staticmethod
    def of(model) -> "TokenEvents":
        """The model version's TokenEvents, its encoded pairs kept across streams."""
        return TokenEvents._of(model.name, str(model.version))

    def done(self, generation: TextGeneration) -> bytes | None:
        """The stream's last event as the same template's bytes, for a generation with neither
        attention nor n-best (None otherwise: the generic encoder writes those). The done event
        was built as three dicts and encoded whole, with cold caches once per stream."""
        if generation.attention is not None or generation.nbest:
            return None
        seed = b"" if generation.seed is None else b',"seed":%d' % generation.seed
        return b'%s"","finish_reason":%s,"tokens":%d%s,"output":%s,"event":"done"}\n\n' % (
            self._head, orjson.dumps(generation.finish_reason), len(generation.tokens), seed,
            orjson.dumps(generation.text_output))

    def sse(self, token: Token) -> bytes:
        key = (token.text_output, token.token)
        parts = self._pieces.get(key)
        if parts is None:
            parts = self._pieces[key] = (self._head + orjson.dumps(token.text_output) + b',"index":',
                                         b',"token":' + orjson.dumps(token.token) + b"}\n\n")
        return b"%s%d%s" % (parts[0], token.index, parts[1])

"""A generation's events as JSON documents, and generate_stream's server-sent events written
straight to ASGI's `send`.

Starlette's StreamingResponse runs each stream in an anyio task group beside a task that waits
for the disconnect, and sends each chunk on its own; at one event per token and 16 concurrent
translations that was a tenth of the server's time (py-spy, docs/BENCHMARKS.md). Here a stream
is a plain loop of `send`s, one asyncio task waits for the client to leave and cancels the
stream where it awaits (the sequence then leaves at its next step), token events of text
models are bytes formatted from a template (generate_text.TokenEvents), and tokens that are
already waiting when their stream gets the loop (its client fell behind) go out in one write:
each still its own event.
"""

import asyncio
import contextlib
import logging

from starlette.responses import Response

from service.errors import ServiceError
from service.imaging import b64, grid_png, png
from service.json_encoding import dumps
from service.protocol.errors import error_document
from service.protocol.generate_text import TokenEvents, text_done, text_event
from service.tasks.generative import Generation, Progress, Sample
from service.tasks.translation import TextGeneration, Token

log = logging.getLogger(__name__)

HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
           (b"x-accel-buffering", b"no")]


class EventStream(Response):
    """generate_stream's answer: a Response (what a FastAPI route returns) that streams."""

    media_type = "text/event-stream"

    def __init__(self, model, fmt: str, events):
        super().__init__(headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._stream = (model, fmt, events)

    async def __call__(self, scope, receive, send) -> None:
        await stream(receive, send, *self._stream)


async def stream(receive, send, model, fmt: str, events) -> None:
    """Send `events` as server-sent events until they end or the client leaves."""
    task = asyncio.current_task()
    state = {"left": False, "done": False}

    async def watch() -> None:
        with contextlib.suppress(Exception):  # a receive that fails has lost its client too
            while (await receive())["type"] != "http.disconnect":
                pass
        if not state["done"]:  # the client left mid-stream: stop the stream where it waits
            state["left"] = True
            task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        async for chunk, last in server_sent(model, fmt, events):
            if last:  # the last event ends the response in the same write (one send less)
                state["done"] = True
            await send({"type": "http.response.body", "body": chunk, "more_body": not last})
        if not state["done"]:
            state["done"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not state["left"]:  # someone else's cancellation (shutdown, the request timeout)
            raise
        task.uncancel()  # ours: the client has gone, nobody is left to answer
    finally:
        state["done"] = True
        watcher.cancel()


class ServerSent:
    """A stream's events as server-sent event bytes, one at a time: token events of text
    models from a template (generate_text.TokenEvents), the others from their documents."""

    def __init__(self, model, fmt: str):
        self.model, self.fmt = model, fmt
        self._tokens = TokenEvents.of(model) if fmt == "text" else None

    def event(self, event) -> bytes:
        if self._tokens is not None:
            if isinstance(event, Token):
                return self._tokens.sse(event)
            if isinstance(event, TextGeneration):
                done = self._tokens.done(event)
                if done is not None:
                    return done
        return sse(event_document(self.model, self.fmt, event))

    def error(self, exc: BaseException) -> bytes:
        """A failure once the stream has started: its last event."""
        if not isinstance(exc, ServiceError):
            log.exception("generate_stream of model %s failed", self.model.name, exc_info=exc)
        return sse(error_document(exc))


async def server_sent(model, fmt: str, events):
    """(SSE bytes, whether they are the last): a chunk per event, or several token events in
    one chunk when more are ready."""
    writer = ServerSent(model, fmt)
    waiting = []
    try:
        async for event in events:
            waiting.append(writer.event(event))
            if isinstance(event, Token) and event.ready:  # the next token is chosen already: write them together
                continue
            yield (b"".join(waiting) if len(waiting) > 1 else waiting[0]), event.final
            waiting = []
    except Exception as exc:  # noqa: BLE001  (the stream has started: the error is its last event, logged)
        yield b"".join(waiting) + writer.error(exc), True


def sse(document: dict) -> bytes:
    return b"data: " + dumps(document) + b"\n\n"


def event_document(model, fmt: str, event) -> dict:
    if isinstance(event, Token | TextGeneration):  # sequence models: Triton's text shape
        return text_event(model, event, fmt == "attention")
    if isinstance(event, Generation):
        return {**done_document(model, fmt, event), "event": "done"}
    head = {"model_name": model.name, "model_version": str(model.version)}
    if isinstance(event, Progress):
        return {**head, "event": "progress", "step": event.step, "steps": event.steps,
                **_samples(model, fmt, event.samples)}
    if isinstance(event, Sample):
        sample = b64(png(ink(model, event.sample[None])[0])) if fmt == "png" else event.sample
        return {**head, "event": "sample", "index": event.index, "sample": sample}
    raise TypeError(f"unknown event {type(event).__name__}")


def done_document(model, fmt: str, generation: Generation) -> dict:
    if isinstance(generation, TextGeneration):
        return text_done(model, generation)
    return {"model_name": model.name, "model_version": str(model.version), "seed": generation.seed,
            **generation.facts, **_samples(model, fmt, generation.samples)}


def _samples(model, fmt: str, samples) -> dict:
    """array: (N, *shape) raw units; png: a PNG per sample and a grid of all, in base64."""
    if fmt != "png":
        return {"samples": samples}
    images = ink(model, samples)
    return {"samples": [b64(png(image)) for image in images], "grid": b64(grid_png(images))}


def ink(model, samples):
    """Samples (N, *shape) in raw units as images (N, H, W) of ink in [0, 1]."""
    image = model.units.image
    return model.units.ink(samples).reshape(len(samples), image.height, image.width)

"""The protocol-free core: every front end (V2 REST, V1, generate, gRPC) calls this and nothing
else below it; nothing here imports FastAPI or grpc. It resolves models, checks requests against
signatures, runs the repository and statistics extensions, and keeps the request metrics."""

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Self

import numpy as np

from service import __version__, cards, metrics
from service.errors import (
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    Overloaded,
    RequestTimeout,
    ServiceError,
)
from service.repository import Registry
from service.signature import check_outputs
from service.stats import ModelStats
from service.tally import Tally
from service.tasks.base import ServedModel
from service.tasks.generative import Event, Generation

log = logging.getLogger(__name__)

EXTENSIONS = ["binary_tensor_data", "model_configuration", "model_repository", "statistics"]

_FAILURE_REASONS: dict[type, str] = {
    InvalidInput: "invalid",
    ModelNotReady: "unavailable",
    Overloaded: "overloaded",
    RequestTimeout: "timeout",
}

class DataPlane:
    """One transport's door into the core. Each transport gets its own (`for_protocol`), so the
    request metrics say which one a request came by; all share the registry, its models,
    batchers and statistics."""

    def __init__(self, registry: Registry, protocol: str = "http"):
        self.registry = registry
        self.protocol = protocol

    def for_protocol(self, protocol: str) -> "DataPlane":
        return DataPlane(self.registry, protocol)

    # ------------------------------------------------------------------ server
    @staticmethod
    def server_metadata() -> dict:
        return {"name": "modelserve", "version": __version__, "extensions": EXTENSIONS}

    def ready(self) -> bool:
        return self.registry.ready

    # ------------------------------------------------------------------ models
    def model(self, name: str, version: str | None = None) -> ServedModel:
        """Resolve a model once per request; every other method takes what this returns."""
        return self.registry.get(name, version)

    def model_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self.model(name, version)
        except ModelNotReady:
            return False
        return True

    def model_metadata(self, model: ServedModel) -> dict:
        metadata = model.metadata()
        try:
            metadata["versions"] = [str(v) for v in self.registry.entry(model.name).ready_versions()]
        except ModelNotFound:  # unloaded since it was resolved: the version in hand is all
            pass
        return metadata

    @staticmethod
    def model_config(model: ServedModel) -> dict:
        """Triton's model configuration, for clients such as perf_analyzer that read it."""
        # Triton's max_batch_size promises a batch axis on the model's own inputs; a generative
        # model's inputs (num_samples, seed...) have none, whatever its graphs batch inside.
        batchers = [g.batcher for g in model.graphs.values() if g.batcher is not None]
        batched_inputs = bool(model.inputs) and all(s.has_batch_axis for s in model.inputs)
        max_batch = batchers[0].policy.max_batch_size if batchers and batched_inputs else 0

        def dims(spec):
            return list(spec.shape[1:] if max_batch else spec.shape)

        return {
            "name": model.name,
            "platform": model.platform,
            "backend": "onnxruntime",
            "max_batch_size": max_batch,
            "input": [{"name": s.name, "data_type": f"TYPE_{_triton_type(s.datatype)}", "dims": dims(s), "optional": s.optional}
                      for s in model.inputs],
            "output": [{"name": s.name, "data_type": f"TYPE_{_triton_type(s.datatype)}", "dims": dims(s)} for s in model.outputs],
            "parameters": {"task": {"string_value": model.config.task}, "provider": {"string_value": model.provider}},
        }

    # ------------------------------------------------------------------ inference
    async def infer(
        self,
        model: ServedModel,
        inputs: dict[str, np.ndarray],
        datatypes: dict[str, str],
        output_names: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Check the tensors against the model's signature, run it, count the outcome."""
        with _Outcome(model, self.protocol) as outcome:
            model.check_inputs(inputs, datatypes)
            if output_names:
                check_outputs(model.outputs, output_names)
            outputs = await model.infer(inputs, output_names)
            outcome.items = model.items(inputs)
        if output_names:
            outputs = {n: outputs[n] for n in output_names}
        return outputs

    # ------------------------------------------------------------------ task endpoints
    async def predict(self, model: ServedModel, body: dict, reconstruct: bool = False) -> list[dict]:
        """KServe V1 :predict (or a VAE's :reconstruct): one prediction per instance."""
        with _Outcome(model, self.protocol) as outcome:
            predictions = await (model.reconstruct(body) if reconstruct else model.predict(body))
            outcome.items = len(predictions)
        return predictions

    async def explain(self, model: ServedModel, body: dict) -> list[dict]:
        """KServe V1 :explain: one attribution per input feature, per instance."""
        with _Outcome(model, self.protocol) as outcome:
            explanations = await model.explain(body)
            outcome.items = len(explanations)
        return explanations

    async def generate(self, model: ServedModel, params: dict) -> tuple[Any, Generation]:
        """Plan a generation from its parameters and run it: (plan, generation)."""
        with _Outcome(model, self.protocol) as outcome:
            plan = model.plan(params)
            generation = await model.generate(plan)
            outcome.items = len(generation.samples)
        return plan, generation

    def generate_stream(self, model: ServedModel, params: dict) -> tuple[Any, "_Counted"]:
        """Plan now, so a bad request fails before the stream starts; the events come lazily."""
        outcome = _Outcome(model, self.protocol)
        try:
            plan = model.plan(params, stream=True)
        except BaseException as exc:
            outcome.failed(exc)
            raise
        return plan, _Counted(model.stream(plan), outcome, plan.num_samples)

    def generate_stream_from_tensors(
        self, model: ServedModel, inputs: dict[str, np.ndarray], datatypes: dict[str, str], parameters: dict
    ) -> tuple[Any, "_Counted"]:
        """A generation stream asked for in V2 tensors (gRPC's ModelStreamInfer): the model's
        inputs, plus stream-only options (`every`...) as request parameters."""
        outcome = _Outcome(model, self.protocol)
        try:
            model.check_inputs(inputs, datatypes)
            plan = model.plan_from_tensors(inputs, parameters)
        except BaseException as exc:
            outcome.failed(exc)
            raise
        return plan, _Counted(model.stream(plan), outcome, plan.num_samples)

    # ------------------------------------------------------------------ repository extension
    def repository_index(self, ready_only: bool = False) -> list[dict]:
        return self.registry.index(ready_only=ready_only)

    async def load(self, name: str, parameters: dict | None = None) -> None:
        """Load or reload a model from the repository's own files."""
        # Triton's `config` and `file:` overrides let a client write files and run code: refuse them.
        refused = [key for key in parameters or {} if key == "config" or key.startswith("file:")]
        if refused:
            raise InvalidInput(
                f"load parameters {refused} are not accepted: models load only from the repository's own files"
            )
        await self.registry.load(name)

    async def unload(self, name: str) -> None:
        await self.registry.unload(name)

    # ------------------------------------------------------------------ statistics extension
    def statistics(self, name: str | None = None, version: str | None = None) -> list[dict]:
        """Triton's model_stats: every loaded version, a model's, or one version's."""
        if not name:
            models = self.registry.loaded_models()
        elif version:
            models = [self.model(name, version)]
        else:
            models = self.registry.entry(name).models()
        return [m.stats.as_dict(m.name, m.version) for m in models]

    # ------------------------------------------------------------------ cards
    async def card(self, model: ServedModel) -> dict:
        return await asyncio.to_thread(cards.card, self.registry.root, model)

    async def card_file(self, model: ServedModel, file: str) -> tuple[bytes, str]:
        return await asyncio.to_thread(cards.card_file, self.registry.root, model, file)


class _Counted:
    """A stream counted as one request; a client that leaves early makes it a 'cancelled' one.
    Read with `async for`, or, where the model's stream can push its events (`pushable`), with
    `push(deliver)`: `deliver(event, None)` for each event as it is made, on the event loop,
    `deliver(None, error)` if it fails; the returned handle's `leave()` ends it early. (The
    model's stream takes `push(deliver, ended)` and calls `ended(error or None)` once, before
    its last delivery.)"""

    __slots__ = ("_events", "_items", "_outcome")

    def __init__(self, events: AsyncIterator[Event], outcome: "_Outcome", items: int):
        self._events, self._outcome, self._items = events, outcome, items

    async def __aiter__(self) -> AsyncIterator[Event]:
        with self._outcome:
            async for event in self._events:
                yield event
            self._outcome.items = self._items

    @property
    def pushable(self) -> bool:
        return hasattr(self._events, "push")

    def push(self, deliver: Callable[[Event | None, BaseException | None], None]) -> "_Pushed":
        return _Pushed(self._events, self._outcome, self._items, deliver)


class _Pushed:
    """A pushed stream's outcome: counted when the stream says it has ended (`ended`, called
    by the stream before it delivers its last event or its failure), or as cancelled when its
    reader leaves first. The events go to `deliver` with no layer between."""

    __slots__ = ("_done", "_items", "_outcome", "_stream")

    def __init__(self, events, outcome: "_Outcome", items: int, deliver):
        self._outcome, self._items = outcome, items
        self._done = False
        self._stream = events.push(deliver, self._ended)

    def _ended(self, error: BaseException | None) -> None:
        if not self._done:
            self._done = True
            if error is None:
                self._outcome.items = self._items
                self._outcome.__exit__(None, None, None)
            else:
                self._outcome.__exit__(type(error), error, None)

    def leave(self) -> None:
        if not self._done:
            self._done = True
            self._outcome.__exit__(asyncio.CancelledError, None, None)
        self._stream.leave()


class _Outcome:
    """The bookkeeping of one request to a model: success with its items, or failure's reason."""

    __slots__ = ("items", "labels", "model", "started")

    def __init__(self, model: ServedModel, protocol: str):
        self.model = model
        self.labels = (model.name, model.version, protocol)
        self.items = 0
        self.started = time.perf_counter()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        elapsed = time.perf_counter() - self.started
        if exc_type is None:
            _request_series(*self.labels).add(self.model.stats, self.items, elapsed)
        else:
            metrics.REQUEST_FAILURE.labels(self.labels[0], str(self.labels[1]), self.labels[2], _reason(exc_type)).inc()
            self.model.stats.request_done(False, elapsed)
        return False

    def failed(self, exc: BaseException) -> None:
        """Count a failure before the work began (a plan refused); success is left to a later
        `with self`. A try block, not a generator-based context manager: a stream's request
        paid about 2 µs for one."""
        self.__exit__(type(exc), exc, None)


@functools.cache
def _request_series(name: str, version, protocol: str) -> "_Successes":
    """A successful request's three series, looked up once per model version and transport:
    prometheus-client's `labels()` costs more than the increments themselves. These series are
    never removed, so a cached child stays the registered one."""
    labels = (name, str(version), protocol)
    return _Successes(metrics.REQUEST_SUCCESS.labels(*labels), metrics.INFERENCE_COUNT.labels(*labels),
                      metrics.REQUEST_DURATION.labels(*labels))


class _Successes:
    """One series set's successful requests, added to Prometheus and to the version's statistics
    once per event-loop turn: the requests of a batch finish in the same turn, so that is once
    per batch, not per request (each `inc` and `observe` takes a lock, and so does
    ModelStats). The flush runs before the loop reads any later I/O, so a scrape or a stats call
    after a response always counts that response. Off the loop (a thread), a request is added
    at once."""

    __slots__ = ("_duration", "_items", "_loop", "_stats", "_success", "count", "items", "seconds")

    def __init__(self, success, items, duration):
        self._success, self._items, self._duration = success, items, Tally(duration)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop a flush is scheduled on
        self._stats: ModelStats | None = None  # the statistics `count` and `seconds` belong to
        self.count = self.items = 0
        self.seconds = 0.0

    def add(self, stats: ModelStats, items: int, elapsed: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._loop is not None and self._loop.is_closed():  # its flush never ran
            self.flush()
        if loop is None or (self._loop is not None and self._loop is not loop):
            self._success.inc()
            self._items.inc(items)
            self._duration._child.observe(elapsed)
            stats.request_done(True, elapsed, items)
            return
        if stats is not self._stats:  # a reloaded version: the old one's share goes to it first
            self.flush()
            self._stats = stats
        self.count += 1
        self.items += items
        self.seconds += elapsed
        self._duration.observe(elapsed)
        if self._loop is None:
            self._loop = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._loop = None
        count, items, seconds = self.count, self.items, self.seconds
        self.count = self.items = 0
        self.seconds = 0.0
        if count:
            self._success.inc(count)
            self._stats.requests_succeeded(count, seconds, items)
        if items:
            self._items.inc(items)
        self._duration.flush()


def _reason(exc_type: type[BaseException]) -> str:
    if issubclass(exc_type, ServiceError):
        return _FAILURE_REASONS.get(exc_type, "other")
    if issubclass(exc_type, (asyncio.CancelledError, GeneratorExit)):
        return "cancelled"  # the client went away (a stream it stopped reading)
    return "internal"


def _triton_type(datatype: str) -> str:
    return "STRING" if datatype == "BYTES" else datatype

"""The protocol-free core: every front end (V2 REST, V1, generate) calls this, nothing below
imports FastAPI. It resolves models, checks requests against signatures, and keeps the metrics."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Self

import numpy as np

from service import __version__, metrics
from service.errors import InvalidInput, ModelNotReady, Overloaded, RequestTimeout, ServiceError
from service.repository import Registry
from service.signature import check_outputs
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
    def __init__(self, registry: Registry):
        self.registry = registry

    # ------------------------------------------------------------------ server
    @staticmethod
    def server_metadata() -> dict:
        return {"name": "modelserve", "version": __version__, "extensions": EXTENSIONS}

    def ready(self) -> bool:
        return self.registry.ready

    # ------------------------------------------------------------------ models
    def model(self, name: str, version: str | None = None) -> ServedModel:
        return self.registry.get(name, version)

    def model_metadata(self, name: str, version: str | None = None) -> dict:
        model = self.model(name, version)
        metadata = model.metadata()
        metadata["versions"] = [str(v) for v in self.registry.entry(name).ready_versions()]
        return metadata

    def model_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self.model(name, version)
        except ModelNotReady:
            return False
        return True

    def model_config(self, name: str, version: str | None = None) -> dict:
        """Triton's model configuration, for clients such as perf_analyzer that read it."""
        model = self.model(name, version)
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
        name: str,
        version: str | None,
        inputs: dict[str, np.ndarray],
        datatypes: dict[str, str],
        output_names: list[str] | None = None,
    ) -> tuple[ServedModel, dict[str, np.ndarray]]:
        """Check the tensors against the model's signature, run it, count the outcome."""
        model = self.model(name, version)
        with _Outcome(model) as outcome:
            model.check_inputs(inputs, datatypes)
            check_outputs(model.outputs, output_names)
            outputs = await model.infer(inputs, output_names)
            outcome.items = model.items(inputs)
        if output_names:
            outputs = {n: outputs[n] for n in output_names}
        return model, outputs

    # ------------------------------------------------------------------ task endpoints
    async def predict(self, name: str, version: str | None, body: dict, reconstruct: bool = False) -> tuple[ServedModel, list[dict]]:
        """KServe V1 :predict (or a VAE's :reconstruct): one prediction per instance."""
        model = self.model(name, version)
        with _Outcome(model) as outcome:
            predictions = await (model.reconstruct(body) if reconstruct else model.predict(body))
            outcome.items = len(predictions)
        return model, predictions

    async def explain(self, name: str, version: str | None, body: dict) -> tuple[ServedModel, list[dict]]:
        """KServe V1 :explain: one attribution per input feature, per instance."""
        model = self.model(name, version)
        with _Outcome(model) as outcome:
            explanations = await model.explain(body)
            outcome.items = len(explanations)
        return model, explanations

    async def generate(self, name: str, version: str | None, params: dict) -> tuple[ServedModel, Any, Generation]:
        """Plan a generation from its parameters and run it: (model, plan, generation)."""
        model = self.model(name, version)
        with _Outcome(model) as outcome:
            plan = model.plan(params)
            generation = await model.generate(plan)
            outcome.items = len(generation.samples)
        return model, plan, generation

    def generate_stream(self, name: str, version: str | None, params: dict) -> tuple[ServedModel, Any, AsyncIterator[Event]]:
        """Plan now, so a bad request fails before the stream starts; the events come lazily."""
        model = self.model(name, version)
        outcome = _Outcome(model)
        with outcome.failures():
            plan = model.plan(params, stream=True)
        return model, plan, _counted(model.stream(plan), outcome, plan.num_samples)


async def _counted(events: AsyncIterator[Event], outcome: "_Outcome", items: int) -> AsyncIterator[Event]:
    """A stream counted as one request; a client that leaves early makes it a 'cancelled' one."""
    with outcome:
        async for event in events:
            yield event
        outcome.items = items


class _Outcome:
    """The bookkeeping of one request to a model: success with its items, or failure's reason."""

    def __init__(self, model: ServedModel):
        self.model = model
        self.labels = (model.name, str(model.version))
        self.items = 0
        self.started = time.perf_counter()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        elapsed = time.perf_counter() - self.started
        if exc_type is None:
            metrics.REQUEST_SUCCESS.labels(*self.labels).inc()
            metrics.INFERENCE_COUNT.labels(*self.labels).inc(self.items)
            metrics.REQUEST_DURATION.labels(*self.labels).observe(elapsed)
            self.model.stats.request_done(True, elapsed, self.items)
        else:
            metrics.REQUEST_FAILURE.labels(*self.labels, _reason(exc_type)).inc()
            self.model.stats.request_done(False, elapsed)
        return False

    @contextmanager
    def failures(self) -> Iterator[None]:
        """Count a failure inside the block; success is left to a later `with self`."""
        try:
            yield
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise


def _reason(exc_type: type[BaseException]) -> str:
    if issubclass(exc_type, ServiceError):
        return _FAILURE_REASONS.get(exc_type, "other")
    if issubclass(exc_type, (asyncio.CancelledError, GeneratorExit)):
        return "cancelled"  # the client went away (a stream it stopped reading)
    return "internal"


def _triton_type(datatype: str) -> str:
    return "STRING" if datatype == "BYTES" else datatype

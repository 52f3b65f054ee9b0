"""The protocol-free core: every front end (V2 REST, V1, generate) calls this, nothing below
imports FastAPI. It resolves models, checks requests against signatures, and keeps the metrics."""

import logging
import time

import numpy as np

from service import __version__, metrics
from service.errors import InvalidInput, ModelNotReady, Overloaded, RequestTimeout, ServiceError
from service.repository import Registry
from service.signature import check_inputs, check_outputs
from service.tasks.base import ServedModel

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
        batchers = [g.batcher for g in model.graphs.values() if g.batcher is not None]
        max_batch = batchers[0].policy.max_batch_size if batchers else 0

        def dims(spec):
            return list(spec.shape[1:] if max_batch else spec.shape)

        return {
            "name": model.name,
            "platform": model.platform,
            "backend": "onnxruntime",
            "max_batch_size": max_batch,
            "input": [{"name": s.name, "data_type": f"TYPE_{_triton_type(s.datatype)}", "dims": dims(s)} for s in model.inputs],
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
        labels = (model.name, str(model.version))
        started = time.perf_counter()
        try:
            check_inputs(model.inputs, inputs, datatypes)
            check_outputs(model.outputs, output_names)
            outputs = await model.infer(inputs, output_names)
        except ServiceError as exc:
            metrics.REQUEST_FAILURE.labels(*labels, _FAILURE_REASONS.get(type(exc), "other")).inc()
            model.stats.request_done(False, time.perf_counter() - started)
            raise
        except Exception:
            metrics.REQUEST_FAILURE.labels(*labels, "internal").inc()
            model.stats.request_done(False, time.perf_counter() - started)
            raise
        elapsed = time.perf_counter() - started
        items = model.items(inputs)
        metrics.REQUEST_SUCCESS.labels(*labels).inc()
        metrics.INFERENCE_COUNT.labels(*labels).inc(items)
        metrics.REQUEST_DURATION.labels(*labels).observe(elapsed)
        model.stats.request_done(True, elapsed, items)
        if output_names:
            outputs = {n: outputs[n] for n in output_names}
        return model, outputs

def _triton_type(datatype: str) -> str:
    return "STRING" if datatype == "BYTES" else datatype

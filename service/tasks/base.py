"""The model base every task extends: its V2 signature, `infer`, and the task endpoints."""

import numpy as np

from service.config import ModelConfig
from service.errors import InvalidInput
from service.runner import GraphRunner
from service.runtime import TensorSpec
from service.signature import check_inputs


class ServedModel:
    """One loaded version of a model: its V2 signature and `infer`. Tasks subclass it."""

    platform = "onnxruntime_onnx"
    peers = None  # set by the loader: (name, version) -> another loaded model (a guard's density)

    def __init__(self, name: str, version: int, config: ModelConfig, graphs: dict[str, GraphRunner]):
        self.name = name
        self.version = version
        self.config = config
        self.graphs = graphs
        first = next(iter(graphs.values()))
        self.provider = first.provider
        self.stats = first.stats

    @property
    def inputs(self) -> list[TensorSpec]:
        raise NotImplementedError

    @property
    def outputs(self) -> list[TensorSpec]:
        raise NotImplementedError

    async def infer(self, inputs: dict[str, np.ndarray], output_names: list[str] | None) -> dict[str, np.ndarray]:
        """Tensors in, tensors out, after the caller checked them against `inputs`."""
        raise NotImplementedError

    def check_inputs(self, inputs: dict[str, np.ndarray], datatypes: dict[str, str]) -> None:
        """Raise InvalidInput unless the tensors fit `inputs` (generative models relax this)."""
        check_inputs(self.inputs, inputs, datatypes)

    # Task endpoints (service/tasks/*): a model of another task answers 400 naming its task.
    async def predict(self, body: dict) -> list[dict]:
        raise self.no_endpoint(":predict")

    async def reconstruct(self, body: dict) -> list[dict]:
        raise self.no_endpoint(":reconstruct")

    async def explain(self, body: dict) -> list[dict]:
        raise self.no_endpoint(":explain")

    # Generation (service/tasks/generative.py and every other generator): a plan from its
    # parameters, then `stream` of events, each with `tensors()`, `parameters()` and `final`.
    streams = False

    def plan(self, params: dict, stream: bool = False):
        raise self.no_endpoint("generate")

    def params_from_tensors(self, inputs: dict[str, np.ndarray]) -> dict:
        """A generation's parameters from V2 input tensors (ModelStreamInfer)."""
        raise self.no_endpoint("generate")

    def plan_from_tensors(self, inputs: dict[str, np.ndarray], parameters: dict):
        """A stream's plan from V2 tensors plus the request's parameters (stream-only options)."""
        return self.plan({**parameters, **self.params_from_tensors(inputs)}, stream=True)

    def no_endpoint(self, endpoint: str) -> InvalidInput:
        return InvalidInput(f"model '{self.name}' is a {self.config.task} model, which has no {endpoint} endpoint")

    def items(self, inputs: dict[str, np.ndarray]) -> int:
        """How many inferences a request holds: its rows when the model batches, else 1."""
        specs = self.inputs  # a property, often through a runner to its graph: read once
        spec = specs[0] if specs else None
        if spec is not None and spec.has_batch_axis and spec.name in inputs:
            return int(inputs[spec.name].shape[0])
        return 1

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": [str(self.version)],
            "platform": self.platform,
            "inputs": [spec.as_dict() for spec in self.inputs],
            "outputs": [spec.as_dict() for spec in self.outputs],
            # Not in the protocol's metadata; clients ignore what they do not know, and an
            # operator needs to see where a model really runs and what its endpoints do.
            "parameters": {"task": self.config.task, "provider": self.provider},
        }

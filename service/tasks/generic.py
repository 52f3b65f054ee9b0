"""The generic task: one graph, its own signature, tensors straight through."""

import numpy as np

from service.runtime import TensorSpec
from service.tasks.base import ServedModel


class GenericModel(ServedModel):
    """V2 infer on the model's one graph; classification and regression add task endpoints."""

    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        self.runner = next(iter(graphs.values()))

    @property
    def inputs(self) -> list[TensorSpec]:
        return self.runner.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.runner.outputs

    async def infer(self, inputs: dict[str, np.ndarray], output_names: list[str] | None) -> dict[str, np.ndarray]:
        return await self.runner.run(inputs, output_names)

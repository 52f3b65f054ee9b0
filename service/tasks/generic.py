"""The generic task: the graph's own signature, tensors straight through."""

import numpy as np

from service.runtime import TensorSpec
from service.tasks.base import ServedModel


class GenericModel(ServedModel):
    @property
    def _graph(self):
        return next(iter(self.graphs.values()))

    @property
    def inputs(self) -> list[TensorSpec]:
        return self._graph.graph.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._graph.graph.outputs

    async def infer(self, inputs: dict[str, np.ndarray], output_names: list[str] | None) -> dict[str, np.ndarray]:
        return await self._graph.run(inputs, output_names)

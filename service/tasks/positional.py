"""Graphs are matched by position, not by name (docs/MODEL_REPOSITORY.md): names are free."""

import numpy as np

from service.tasks.base import GraphRunner


async def run(runner: GraphRunner, *inputs: np.ndarray) -> list[np.ndarray]:
    """Feed `inputs` to the graph's inputs in order; its outputs in order."""
    graph = runner.graph
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"{graph.path.name} takes {len(graph.inputs)} inputs, not {len(inputs)}")
    outputs = await runner.run({spec.name: array for spec, array in zip(graph.inputs, inputs)})
    return [outputs[spec.name] for spec in graph.outputs]


async def execute(runner: GraphRunner, *inputs: np.ndarray) -> list[np.ndarray]:
    """As run(), but at once, past the graph's batcher (the caller batched the rows itself)."""
    graph = runner.graph
    outputs = await runner.execute({spec.name: array for spec, array in zip(graph.inputs, inputs, strict=True)})
    return [outputs[spec.name] for spec in graph.outputs]


def check(runner: GraphRunner, role: str, inputs: int, outputs: int) -> None:
    """At load: the graph has the inputs its task feeds and at least the outputs it reads."""
    graph = runner.graph
    if len(graph.inputs) != inputs or len(graph.outputs) < outputs:
        raise ValueError(
            f"graph '{role}' ({graph.path.name}) has {len(graph.inputs)} inputs and {len(graph.outputs)} "
            f"outputs; its task needs {inputs} inputs and at least {outputs} outputs"
        )

"""Graphs are matched by position, not by name (docs/MODEL_REPOSITORY.md): names are free."""

import numpy as np

from service.runner import GraphRunner


async def run(runner: GraphRunner, *inputs: np.ndarray) -> list[np.ndarray]:
    """Feed `inputs` to the graph's inputs in order; its outputs in order."""
    if len(inputs) != len(runner.inputs):
        raise ValueError(f"{runner.file_name} takes {len(runner.inputs)} inputs, not {len(inputs)}")
    outputs = await runner.run({spec.name: array for spec, array in zip(runner.inputs, inputs)})
    return [outputs[spec.name] for spec in runner.outputs]


async def execute(runner: GraphRunner, *inputs: np.ndarray, then_yield: bool = True) -> list[np.ndarray]:
    """As run(), but at once, past the graph's batcher (the caller batched the rows itself)."""
    outputs = await runner.execute({spec.name: array for spec, array in zip(runner.inputs, inputs, strict=True)},
                                   then_yield)
    return [outputs[spec.name] for spec in runner.outputs]


def check(runner: GraphRunner, role: str, inputs: int, outputs: int) -> None:
    """At load: the graph has the inputs its task feeds and at least the outputs it reads."""
    if len(runner.inputs) != inputs or len(runner.outputs) < outputs:
        raise ValueError(
            f"graph '{role}' ({runner.file_name}) has {len(runner.inputs)} inputs and {len(runner.outputs)} "
            f"outputs; its task needs {inputs} inputs and at least {outputs} outputs"
        )

"""Check a request's tensors against a model's signature before anything is queued or run."""

import numpy as np

from service.errors import InvalidInput
from service.runtime import TensorSpec


def check_inputs(specs: list[TensorSpec], inputs: dict[str, np.ndarray], datatypes: dict[str, str]) -> None:
    """Raise InvalidInput naming the first input that is missing, unknown, or of the wrong kind."""
    if len(inputs) == len(specs):  # every input there and of its kind: no error to look for
        for spec in specs:
            array = inputs.get(spec.name)
            if array is None or datatypes.get(spec.name) != spec.datatype or not shape_matches(spec.shape, array.shape):
                break
        else:
            return
    expected = {spec.name: spec for spec in specs}
    unknown = [name for name in inputs if name not in expected]
    if unknown:
        raise InvalidInput(
            f"unknown input '{unknown[0]}'; the model's inputs are: {', '.join(expected) or 'none'}"
        )
    for spec in specs:
        if spec.name not in inputs:
            raise InvalidInput(f"missing input '{spec.name}' ({spec.datatype} {list(spec.shape)})")
        datatype = datatypes.get(spec.name)
        if datatype != spec.datatype:
            raise InvalidInput(
                f"input '{spec.name}' has datatype {datatype}, but the model expects {spec.datatype}"
            )
        shape = inputs[spec.name].shape
        if not shape_matches(spec.shape, shape):
            raise InvalidInput(
                f"input '{spec.name}' has shape {list(shape)}, but the model expects "
                f"{list(spec.shape)} (-1 is any size)"
            )


def check_outputs(specs: list[TensorSpec], requested: list[str] | None) -> None:
    if not requested:
        return
    known = {spec.name for spec in specs}
    for name in requested:
        if name not in known:
            raise InvalidInput(f"unknown output '{name}'; the model's outputs are: {', '.join(sorted(known))}")
    if len(set(requested)) != len(requested):
        raise InvalidInput("an output is requested more than once")


def shape_matches(expected: tuple[int, ...], actual: tuple[int, ...]) -> bool:
    if len(expected) != len(actual):
        return False
    for e, a in zip(expected, actual):  # a loop, not all(generator): this runs per request
        if e != a and e != -1:
            return False
    return True

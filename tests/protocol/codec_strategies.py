"""Hypothesis strategies for V2 tensors and request bodies, shared by the codec property tests."""

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from service.datatypes import V2_TO_NUMPY

DATATYPES = list(V2_TO_NUMPY)
NUMERIC = [d for d in DATATYPES if d not in ("BYTES", "BF16")]  # what JSON carries as numbers


def shapes() -> st.SearchStrategy[tuple[int, ...]]:
    """Scalars, zero-size tensors, ordinary ones, and ranks up to the protocol's 32."""
    small = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
    return st.one_of(small, _deep_shapes())


@st.composite
def _deep_shapes(draw) -> tuple[int, ...]:
    # Rank 5 to 32 with at most three sides other than 1, so element counts stay small.
    shape = [1] * draw(st.integers(5, 32))
    for side in draw(st.lists(st.integers(0, 3), max_size=3)):
        shape[draw(st.integers(0, len(shape) - 1))] = side
    return tuple(shape)


@st.composite
def tensors(draw, datatypes=DATATYPES, finite: bool = True) -> tuple[str, np.ndarray]:
    """(datatype, array) of any V2 datatype; BYTES as an object array of `bytes`."""
    datatype = draw(st.sampled_from(datatypes))
    shape = draw(shapes())
    if datatype == "BYTES":
        items = draw(st.lists(st.binary(max_size=12), min_size=math.prod(shape), max_size=math.prod(shape)))
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return datatype, array.reshape(shape)
    dtype = V2_TO_NUMPY[datatype]
    if datatype == "BF16":  # hypothesis knows no bfloat16: any 16-bit pattern, NaNs included
        bits = draw(hnp.arrays(np.uint16, shape))
        return datatype, bits.view(dtype)
    elements = None
    if dtype.kind == "f":
        elements = hnp.from_dtype(dtype, allow_nan=not finite, allow_infinity=not finite, allow_subnormal=True)
    return datatype, draw(hnp.arrays(dtype, shape, elements=elements))


@st.composite
def text_tensors(draw) -> tuple[str, np.ndarray]:
    """BYTES tensors of UTF-8 text: what JSON can carry."""
    shape = draw(shapes())
    items = draw(st.lists(st.text(max_size=8), min_size=math.prod(shape), max_size=math.prod(shape)))
    array = np.empty(len(items), dtype=object)
    array[:] = [item.encode("utf-8") for item in items]
    return "BYTES", array.reshape(shape)


def nested(flat: list, shape: tuple[int, ...]):
    """`flat` as nested lists of `shape` (row-major), the other way JSON clients send data."""
    if len(shape) <= 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [nested(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


# JSON values that are wrong somewhere in a tensor header: any of them must be a 400.
junk = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
sizes = st.one_of(
    st.integers(-(2**64), 2**64), st.integers(-4, 64), st.just(2**63), st.just(2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.text(max_size=4), st.none(),
)
dims = st.one_of(st.integers(-3, 6), st.just(0), st.just(2**31), st.just(2**63 - 1), st.just(2**64 - 1), junk)

"""JSON that keeps non-finite floats, written NaN, Infinity and -Infinity as Triton writes them.

orjson writes every non-finite float as null, so a client could not tell -inf from +inf from
NaN. Python's json and tritonclient read the three tokens. The fast path stays orjson alone:
orjson's output holds no `null` unless the document held a None or a non-finite float, so only
then is the document searched and written again. V2 tensors are checked before, array by array
(measured: searching a long output for `null` costs a quarter of writing it, np.isfinite 0.2%).
"""

import math
from typing import Any

import numpy as np
import orjson

OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_TOKENS = {"nan": b"NaN", "inf": b"Infinity", "-inf": b"-Infinity"}


def dumps(content: Any) -> bytes:
    """orjson.dumps(content) (numpy included), with non-finite floats spelt out."""
    raw = orjson.dumps(content, option=OPTIONS)
    if b"null" not in raw:
        return raw
    marked, changed = _mark(content)
    return orjson.dumps(marked, option=OPTIONS) if changed else raw


def float_array(array: np.ndarray) -> np.ndarray | orjson.Fragment:
    """`array` as orjson takes it: itself, or when it holds a non-finite float, its JSON text."""
    if array.dtype.kind != "f":
        return array
    # A numpy call costs more than a Python loop over a few numbers (a one-row answer).
    finite = all(map(math.isfinite, array.ravel().tolist())) if array.size <= 64 else np.isfinite(array).all()
    if finite:
        return array
    return orjson.Fragment(_array_json(array))


def _array_json(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array)
    # Each null orjson wrote is one non-finite element, in the same (row-major) order as these.
    parts = orjson.dumps(array, option=OPTIONS).split(b"null")
    bad = array[~np.isfinite(array)].astype(np.float64).tolist()
    pieces = [parts[0]]
    for value, part in zip(bad, parts[1:]):
        pieces += [_TOKENS[repr(value)], part]
    return b"".join(pieces)


def _mark(node: Any) -> tuple[Any, bool]:
    """A copy of `node` whose non-finite floats are orjson Fragments, and whether there were any."""
    if isinstance(node, dict):
        items = [(key, *_mark(value)) for key, value in node.items()]
        return {key: value for key, value, _ in items}, any(changed for *_, changed in items)
    if isinstance(node, (list, tuple)):
        items = [_mark(value) for value in node]
        return [value for value, _ in items], any(changed for _, changed in items)
    if isinstance(node, (float, np.floating)) and not np.isfinite(node):
        return orjson.Fragment(_TOKENS[repr(float(node))]), True
    if isinstance(node, np.ndarray):
        marked = float_array(node)
        return marked, marked is not node
    return node, False

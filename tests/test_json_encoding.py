"""service.json_encoding: orjson's output, with NaN and +-Infinity spelt out instead of null."""

import json
import math

import numpy as np
import orjson
import pytest

from service.json_encoding import dumps, float_array


def test_finite_documents_are_orjsons_own_bytes():
    document = {"a": [1.5, 2], "b": np.arange(6, dtype=np.float32).reshape(2, 3), "c": None, "d": "null"}
    assert dumps(document) == orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_arrays_flat_nested_and_scalar(dtype):
    array = np.array([[np.inf, 1.25, np.nan], [-np.inf, 0.0, -2.0]], dtype=dtype)
    assert dumps({"x": array}) == b'{"x":[[Infinity,1.25,NaN],[-Infinity,0.0,-2.0]]}'
    assert dumps(array[1]) == b"[-Infinity,0.0,-2.0]"
    assert dumps([dtype(-np.inf), None]) == b"[-Infinity,null]"


def test_python_floats_in_task_answers_and_what_json_reads_back():
    predictions = [{"log_density": -math.inf, "bits_per_dim": math.inf, "label": None, "name": "NaN"},
                   {"log_density": -1.5, "bits_per_dim": math.nan}]
    raw = dumps({"predictions": predictions, "pair": (math.nan, 1)})
    assert raw == (b'{"predictions":[{"log_density":-Infinity,"bits_per_dim":Infinity,"label":null,"name":"NaN"},'
                   b'{"log_density":-1.5,"bits_per_dim":NaN}],"pair":[NaN,1]}')
    read = json.loads(raw)
    assert read["predictions"][0]["log_density"] == -math.inf and math.isnan(read["predictions"][1]["bits_per_dim"])


def test_float_array_leaves_finite_and_non_float_arrays_alone():
    finite = np.ones(3, np.float32)
    assert float_array(finite) is finite
    integers = np.arange(3)
    assert float_array(integers) is integers
    assert orjson.dumps({"x": float_array(np.array([np.nan, 1.0]))}) == b'{"x":[NaN,1.0]}'


@pytest.mark.parametrize("size", [3, 64, 65, 4096])
def test_small_and_large_arrays_take_the_same_answer(size):
    # Up to 64 elements are checked in Python, more with np.isfinite: both must find the same.
    array = np.linspace(-1, 1, size, dtype=np.float32)
    assert float_array(array) is array
    array[size // 2], array[-1] = np.inf, np.nan
    read = json.loads(orjson.dumps(float_array(array)))
    assert read[size // 2] == math.inf and math.isnan(read[-1]) and read[0] == -1.0 and len(read) == size

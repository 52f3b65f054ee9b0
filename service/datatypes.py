"""The V2 datatypes and how they map to numpy and to ONNX tensor types.

BF16 has no numpy type of its own: it is ml_dtypes' bfloat16, the dtype tritonclient itself
requires for BF16 tensors, so a BF16 array keeps its datatype through batching and back out
(a uint16 array of its bits would read as UINT16). It travels only as binary data.
"""

import ml_dtypes
import numpy as np

from service.errors import InvalidInput

# V2 datatype -> numpy dtype. BYTES are object arrays of `bytes`.
V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

NUMPY_TO_V2: dict[np.dtype, str] = {v: k for k, v in V2_TO_NUMPY.items()}
NUMPY_TO_V2[np.dtype(np.str_)] = "BYTES"

# ONNX Runtime reports types as "tensor(float)" and so on.
ONNX_TO_V2: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(bfloat16)": "BF16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

# What JSON numbers may stand for each datatype: integers for integer types, any number for floats.
INTEGER_TYPES = frozenset({"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"})
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})
BF16 = V2_TO_NUMPY["BF16"]


def numpy_dtype(datatype: str) -> np.dtype:
    try:
        return V2_TO_NUMPY[datatype]
    except KeyError:
        raise InvalidInput(
            f"unknown datatype '{datatype}'; expected one of {', '.join(V2_TO_NUMPY)}"
        ) from None


def v2_datatype(dtype: np.dtype) -> str:
    """The V2 datatype of a numpy array's dtype (unicode strings travel as BYTES)."""
    found = NUMPY_TO_V2.get(dtype)  # an array's dtype, found at once (a dtype hashes by value)
    if found is not None and found != "BYTES":  # '<U0' would also match a fixed-width str: look at its kind
        return found
    dtype = np.dtype(dtype)
    if dtype.kind in ("U", "S"):
        return "BYTES"
    try:
        return NUMPY_TO_V2[dtype]
    except KeyError:
        raise TypeError(f"numpy dtype {dtype} has no V2 datatype") from None


def onnx_to_v2(onnx_type: str) -> str | None:
    """The V2 datatype of an ONNX Runtime type string, None for sequences, maps and the like."""
    return ONNX_TO_V2.get(onnx_type)

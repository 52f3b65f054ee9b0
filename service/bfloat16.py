"""Running a graph with BF16 inputs or outputs: ONNX Runtime's Python binding maps no numpy
dtype to bfloat16 (a uint16 feed is refused as the wrong type; `OrtValue.numpy()` of a bfloat16
output raises), so such a graph runs on OrtValues: inputs built from their 2-byte patterns with
`ortvalue_from_numpy_with_onnx_type`, bfloat16 outputs read back as bit patterns."""

import ctypes
import math

import numpy as np
import onnxruntime as ort

from service.datatypes import BF16

_ONNX_BFLOAT16 = 16  # onnx.TensorProto.BFLOAT16 (the service does not import onnx)


def run(session: ort.InferenceSession, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    values = {name: _ort_value(array) for name, array in feeds.items()}
    outputs = session.run_with_ort_values(names, values)
    return [_array(value) for value in outputs]


def _ort_value(array: np.ndarray) -> ort.OrtValue:
    if array.dtype == BF16:
        bits = np.ascontiguousarray(array).view(np.uint16)
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, _ONNX_BFLOAT16)
    return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array))


def _array(value: ort.OrtValue) -> np.ndarray:
    if value.data_type() != "tensor(bfloat16)":
        return value.numpy()
    # Outputs of a run without bindings live in CPU memory: copy the bits out before `value` goes.
    if value.device_name().lower() != "cpu":
        raise RuntimeError(f"a bfloat16 output on {value.device_name()} cannot be read from the host")
    shape = tuple(value.shape())
    count = math.prod(shape)
    if count == 0:
        return np.zeros(shape, dtype=BF16)
    buffer = (ctypes.c_uint16 * count).from_address(value.data_ptr())
    return np.frombuffer(buffer, dtype=np.uint16).copy().reshape(shape).view(BF16)

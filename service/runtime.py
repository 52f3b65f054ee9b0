"""One ONNX Runtime session per graph: providers with fallback, the graph's signature, run."""

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

from service import bfloat16
from service.datatypes import onnx_to_v2
from service.errors import InvalidInput

log = logging.getLogger(__name__)


class GraphLoadError(Exception):
    """The file is not a graph ONNX Runtime can run, or its provider is not there."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature: V2 datatype and shape, -1 for a dynamic dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    optional: bool = False  # an input a request may leave out (Triton's ModelInput.optional)

    def as_dict(self) -> dict:
        spec = {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}
        if self.optional:  # the protocol's metadata has no such field: parameters carry it
            spec["parameters"] = {"optional": True}
        return spec

    @property
    def has_batch_axis(self) -> bool:
        return len(self.shape) > 0 and self.shape[0] == -1


def _dims(shape) -> tuple[int, ...]:
    # ORT gives ints for fixed dims and strings or None for symbolic ones.
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (shape or []))


def _spec(node_arg) -> TensorSpec:
    datatype = onnx_to_v2(node_arg.type)
    if datatype is None:
        # Sequences and maps (e.g. a ZipMap output) travel as BYTES holding JSON text.
        return TensorSpec(node_arg.name, "BYTES", (-1,))
    return TensorSpec(node_arg.name, datatype, _dims(node_arg.shape))


def choose_providers(requested: list[str], require_first: bool) -> list[str]:
    """The requested providers this build of ONNX Runtime has, in order."""
    available = ort.get_available_providers()
    chosen = [p for p in requested if p in available]
    if not requested:
        raise GraphLoadError("no execution provider requested")
    if require_first and requested[0] not in available:
        raise GraphLoadError(
            f"{requested[0]} is required but not available in this onnxruntime build "
            f"(available: {', '.join(available)})"
        )
    if not chosen:
        raise GraphLoadError(
            f"none of the providers {requested} is available (available: {', '.join(available)})"
        )
    if chosen[0] != requested[0]:
        _note_fallback(requested[0], chosen[0])
    return chosen


def fallback_level(wanted: str) -> int:
    """How loud a fallback from `wanted` is: INFO when this build was never going to have it.

    The default providers put CUDA first, so every CPU-only install (the `onnxruntime` wheel)
    falls back to the CPU by design. A name ONNX Runtime does not know at all is likely a typo
    in a config: that one is a WARNING.
    """
    return logging.INFO if wanted in ort.get_all_providers() else logging.WARNING


@functools.cache
def _note_fallback(wanted: str, used: str) -> None:
    # Once per process: every model on a CPU-only machine would otherwise repeat it.
    if fallback_level(wanted) == logging.INFO:
        log.info("%s is not in this onnxruntime build (available: %s); using %s", wanted,
                 ", ".join(ort.get_available_providers()), used)
    else:
        log.warning("%s is not an execution provider ONNX Runtime knows; falling back to %s",
                    wanted, used)


@functools.cache
def _warn_failed_start(wanted: str, used: str) -> None:
    # The build has the provider but the session did not start on it: CUDA was expected and
    # failed (libraries, driver or device missing). That is worth an operator's attention.
    log.warning("%s is in this onnxruntime build but ONNX Runtime could not start it "
                "(missing CUDA/cuDNN libraries or no device?); running on %s", wanted, used)


class Graph:
    """An ONNX graph loaded in its own session. `run` blocks: call it from a worker thread."""

    def __init__(
        self,
        path: Path,
        providers: list[str],
        *,
        require_first_provider: bool = False,
        intra_op_num_threads: int = 1,
    ):
        self.path = path
        chosen = choose_providers(providers, require_first_provider)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # ORT's own warnings go to stderr unstructured; keep errors
        try:
            self._session = ort.InferenceSession(str(path), options, providers=chosen)
        except Exception as exc:  # noqa: BLE001  (ORT raises its own exception types for every kind of bad file)
            raise GraphLoadError(
                f"{path.name} could not be loaded by ONNX Runtime: {_first_line(exc)}"
            ) from None
        self.provider = self._session.get_providers()[0]
        if require_first_provider and self.provider != providers[0]:
            # ORT falls back to the CPU by itself when, say, the CUDA libraries are missing.
            raise GraphLoadError(
                f"{providers[0]} is required but ONNX Runtime started {self.provider} instead"
            )
        if self.provider != chosen[0]:
            _warn_failed_start(chosen[0], self.provider)
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]
        self._raw_output_types = {a.name: a.type for a in self._session.get_outputs()}
        # ORT's Python binding takes and gives no bfloat16 numpy arrays (a uint16 feed is refused
        # as the wrong type; a bfloat16 output has "no corresponding numpy type"): such graphs
        # run through OrtValues (service/bfloat16.py).
        self._bf16 = any(s.datatype == "BF16" for s in (*self.inputs, *self.outputs))
        # What `run` need not do for most graphs: convert string inputs, or outputs that are not
        # plain tensors (strings, sequences, maps).
        self._output_names = [o.name for o in self.outputs]
        self._string_inputs = any(a.type == "tensor(string)" for a in self._session.get_inputs())
        self._plain_outputs = all(t.startswith("tensor(") and t != "tensor(string)" for t in self._raw_output_types.values())

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the graph; BYTES go in and come out as object arrays of bytes."""
        if self._string_inputs or any(array.dtype == object for array in feeds.values()):
            feeds = {name: _to_onnx(array) for name, array in feeds.items()}
        names = output_names or self._output_names
        try:
            if self._bf16:
                results = bfloat16.run(self._session, names, feeds)
            else:
                results = self._session.run(names, feeds)
        except InvalidArgument as exc:
            # The inputs fit the signature but not the graph (a dimension a Reshape needs...).
            raise InvalidInput(f"the model rejected the input: {_first_line(exc)}") from None
        if self._plain_outputs and not self._bf16:  # ORT's numeric tensors are numpy arrays already
            return dict(zip(names, results))
        return {name: _from_onnx(value, self._raw_output_types[name]) for name, value in zip(names, results)}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _to_onnx(array: np.ndarray) -> np.ndarray:
    if array.dtype != object:
        return array
    # ONNX string tensors hold text; our BYTES hold bytes. Invalid UTF-8 was refused at the edge.
    text = [b.decode("utf-8") if isinstance(b, bytes) else str(b) for b in array.reshape(-1)]
    return np.array(text, dtype=object).reshape(array.shape)


def _object_array(items: list, shape: tuple[int, ...]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array.reshape(shape)


def _from_onnx(value, onnx_type: str) -> np.ndarray:
    if onnx_type == "tensor(string)":
        array = np.asarray(value, dtype=object)
        flat = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in array.reshape(-1)]
        return _object_array(flat, array.shape)
    if not onnx_type.startswith("tensor("):
        # Sequences and maps (a ZipMap's list of dicts): one JSON text per element.
        items = value if isinstance(value, list) else [value]
        options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        return _object_array([orjson.dumps(item, option=options) for item in items], (len(items),))
    return np.asarray(value)

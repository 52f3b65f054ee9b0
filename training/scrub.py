"""python -m training.scrub [REPOSITORY]: clean model files written before export stripped them.

Every graph loses the exporter's debugging metadata (export.strip_metadata) and every card its
`argv` and machine-specific command, without retraining. A graph is rewritten only when its
weights are byte-identical and ONNX Runtime gives bit-identical outputs before and after.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from training.export import strip_metadata
from training.writer import command

PROBE_BATCH = 3  # the size given to every dynamic dimension of the probe inputs
ORT_INTEGER = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class ScrubError(RuntimeError):
    """Stripping would have changed what a graph computes: nothing was written."""


def scrub_graph(path: Path) -> bool:
    """Strip one ONNX file in place, proven unchanged; True when it held anything to strip."""
    before = path.read_bytes()
    model = strip_metadata(onnx.load_from_string(before))
    after = model.SerializeToString()
    if after == before:
        return False
    _same_weights(onnx.load_from_string(before), model, path)
    _same_outputs(before, after, path)
    path.write_bytes(after)
    return True


def _same_weights(old: onnx.ModelProto, new: onnx.ModelProto, path: Path) -> None:
    weights = lambda m: [(t.name, t.data_type, list(t.dims), numpy_helper.to_array(t).tobytes())
                         for t in m.graph.initializer]
    if weights(old) != weights(new):
        raise ScrubError(f"{path}: the initializers changed")


def _same_outputs(old: bytes, new: bytes, path: Path) -> None:
    options = {"providers": ["CPUExecutionProvider"]}
    old_session, new_session = ort.InferenceSession(old, **options), ort.InferenceSession(new, **options)
    feeds = _probe(old_session)
    for a, b in zip(old_session.run(None, feeds), new_session.run(None, feeds), strict=True):
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            raise ScrubError(f"{path}: ONNX Runtime's outputs changed")


def _probe(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    """Random inputs for every graph input: floats N(0, 1), integers in 0..k-1 with k the
    smallest dimension of the probe (labels and steps; and token ids, positions and node
    indices, which must stay within the other inputs' sizes)."""
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in session.get_inputs():
        shape = [d if isinstance(d, int) else PROBE_BATCH for d in spec.shape]
        if spec.type in ORT_INTEGER:
            high = min([PROBE_BATCH, *(d for d in shape if d > 0)])
            feeds[spec.name] = rng.integers(0, high, size=shape).astype(ORT_INTEGER[spec.type])
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def scrub_card(path: Path) -> bool:
    """Drop `argv` and write `command` as `python -m training <model> --version N`."""
    card = json.loads(path.read_text(encoding="utf-8"))
    cleaned = {k: v for k, v in card.items() if k != "argv"}
    if "command" in cleaned:
        cleaned["command"] = command(card["name"], card["version"], card.get("quick", False))
    if cleaned == card:
        return False
    path.write_text(json.dumps(cleaned, indent=1) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.scrub", description=__doc__.split("\n")[0])
    parser.add_argument("repository", type=Path, nargs="?", default=Path("models"))
    args = parser.parse_args(argv)
    for path in sorted(args.repository.glob("*/*/*.onnx")):
        before = path.stat().st_size
        if scrub_graph(path):
            print(f"{path}: stripped, {before:,} -> {path.stat().st_size:,} bytes, outputs identical")
    for path in sorted(args.repository.glob("*/*/card.json")):
        if scrub_card(path):
            print(f"{path}: argv dropped, command {json.loads(path.read_text())['command']!r}")


if __name__ == "__main__":
    main()

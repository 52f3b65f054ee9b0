"""NVIDIA Triton serving the benchmark's ONNX file through its python backend running ONNX Runtime.

The server comes from nvidia-pytriton's wheel in the venv bench/triton_setup.sh makes. Its
python backend (not PyTriton's Python API, which adds a second hop) runs `model.py` below in a
stub process: ONNX Runtime, one intra-op thread, all requests of a batch in one run, as
modelserve does. With dynamic batching Triton waits up to 2 ms for up to 32 rows.
"""

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

SETUP = Path(__file__).with_name("triton_setup.sh")

MODEL_PY = '''
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        folder = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        provider = json.loads(args["model_config"]).get("parameters", {}).get("provider", {}).get("string_value")
        self.session = ort.InferenceSession(os.path.join(folder, "model.onnx"), options,
                                            providers=[provider or "CPUExecutionProvider"])

    def execute(self, requests):
        xs = [pb_utils.get_input_tensor_by_name(r, "input").as_numpy() for r in requests]
        (y,) = self.session.run(None, {"input": xs[0] if len(xs) == 1 else np.concatenate(xs)})
        answers, offset = [], 0
        for x in xs:
            answers.append(pb_utils.InferenceResponse([pb_utils.Tensor("logits", y[offset:offset + len(x)])]))
            offset += len(x)
        return answers
'''

CONFIG = """name: "mlp"
backend: "python"
max_batch_size: {max_batch}
input [ {{ name: "input", data_type: TYPE_FP32, dims: [ 64 ] }} ]
output [ {{ name: "logits", data_type: TYPE_FP32, dims: [ 10 ] }} ]
instance_group [ {{ count: 1, kind: KIND_CPU }} ]
parameters {{ key: "provider", value: {{ string_value: "{provider}" }} }}
{batching}"""


def venv() -> Path | None:
    """The Triton venv if bench/triton_setup.sh has made it, else None."""
    path = Path(subprocess.run(["bash", str(SETUP), "--print"], capture_output=True, text=True, check=True).stdout.strip())
    return path if (path / ".ready").exists() else None


def write_repository(root: Path, model_path: Path, batching: bool, provider: str = "CPUExecutionProvider") -> Path:
    """A Triton model repository holding `model_path` as `mlp`: batched (2 ms, max 32) or not (max 64 rows)."""
    folder = root / ("triton-batched" if batching else "triton-plain")
    (folder / "mlp" / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, folder / "mlp" / "1" / "model.onnx")
    (folder / "mlp" / "1" / "model.py").write_text(MODEL_PY)
    batching_block = "dynamic_batching { max_queue_delay_microseconds: 2000 }\n" if batching else ""
    (folder / "mlp" / "config.pbtxt").write_text(
        CONFIG.format(max_batch=32 if batching else 64, provider=provider, batching=batching_block))
    return folder


def command(venv_path: Path, repository: Path, backends: Path) -> tuple[list[str], dict[str, str]]:
    """The tritonserver command line ({port} for the HTTP port) and its environment."""
    site = next((venv_path / "lib").glob("python3.*/site-packages"))
    server = site / "pytriton" / "tritonserver"
    python_backend = backends / "python"
    python_backend.mkdir(parents=True, exist_ok=True)
    minor = site.parent.name.removeprefix("python")
    for target, name in ((server / "backends" / "python" / "libtriton_python.so", "libtriton_python.so"),
                         (server / "python_backend_stubs" / minor / "triton_python_backend_stub", "triton_python_backend_stub"),
                         (_find(server, "triton_python_backend_utils.py"), "triton_python_backend_utils.py")):
        link = python_backend / name
        if not link.exists():
            link.symlink_to(target)
    libs = [sysconfig.get_config_var("LIBDIR"), str(site / "nvidia_pytriton.libs"), str(server / "external_libs")]
    env = {**os.environ, "PATH": f"{venv_path / 'bin'}:{os.environ['PATH']}",
           "LD_LIBRARY_PATH": ":".join([*libs, os.environ.get("LD_LIBRARY_PATH", "")]),
           "VIRTUAL_ENV": str(venv_path)}
    env.pop("PYTHONPATH", None)
    argv = [str(server / "bin" / "tritonserver"), "--model-repository", str(repository),
            "--backend-directory", str(backends), "--http-port", "{port}", "--allow-grpc", "false",
            "--allow-metrics", "false", "--log-verbose", "0", "--log-info", "false"]
    return argv, env


def _find(root: Path, name: str) -> Path:
    found = next(root.rglob(name), None)
    if found is None:
        raise FileNotFoundError(f"{name} is not in {root}")
    return found

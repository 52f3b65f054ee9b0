#!/usr/bin/env bash
# The GPU check: onnxruntime-gpu, the provider tests with CUDAExecutionProvider required, and the
# benchmark rows on CUDA.
#
#   bash bench/gpu_check.sh                 # on a machine with an NVIDIA GPU and a driver
#   bash bench/gpu_check.sh --dry-run       # anywhere: the same steps on the CPU, nothing installed
#   bash bench/gpu_check.sh --project-venv  # put onnxruntime-gpu into .venv instead of a venv of its own
#   bash bench/gpu_check.sh --python python3  # use this interpreter as it is, install nothing: for a
#                                           # machine with no package index, after
#                                           # bench/gpu_offline.sh unpack (PYTHONPATH set)
#
# Environment: GPU_VENV (default ~/.cache/modelserve-bench/gpu-venv), PYTHON (python3.11),
# SECONDS_PER_ROW (5), SERVER_CPUS / CLIENT_CPUS (taskset lists; default: the first and second
# half of the cores), TRITON=1 to add Triton's rows (bench/triton_setup.sh's venv gets
# onnxruntime-gpu too). onnxruntime and onnxruntime-gpu install the same module, so a venv
# holds one or the other: a venv of its own keeps the project's CPU venv as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
PROJECT_VENV=0
GIVEN_PYTHON=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --project-venv) PROJECT_VENV=1 ;;
        --python) GIVEN_PYTHON=$2; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

PYTHON=${PYTHON:-python3.11}
GPU_VENV=${GPU_VENV:-$HOME/.cache/modelserve-bench/gpu-venv}
SECONDS_PER_ROW=${SECONDS_PER_ROW:-5}
CORES=$(nproc)
HALF=$(( CORES > 1 ? CORES / 2 : 1 ))
SERVER_CPUS=${SERVER_CPUS:-0-$(( HALF - 1 ))}
CLIENT_CPUS=${CLIENT_CPUS:-$(( CORES > 1 ? HALF : 0 ))-$(( CORES > 1 ? CORES - 1 : 0 ))}
PROVIDER=CUDAExecutionProvider

step() { printf '\n== %s\n' "$*"; }

# The folders of the nvidia-* wheels' libraries (libcudart, libcublas, libcudnn...: nvidia/<name>/lib,
# or nvidia/cu13/lib for CUDA 13's) that interpreter $1 can import, for LD_LIBRARY_PATH. One search
# for both venvs: Triton's took only nvidia/*/lib of its first site-packages.
nvidia_libs() {
    "$1" -c 'import glob, os, sys
folders = {os.path.dirname(f) for p in sys.path for f in glob.glob(os.path.join(p, "nvidia", "**", "lib", "*.so*"), recursive=True)}
print(":".join(sorted(folders)))'
}

if [[ $DRY_RUN == 1 ]]; then
    # The plumbing on the CPU: the project's venv, nothing installed, short rows.
    PROVIDER=CPUExecutionProvider
    VENV=.venv
    SECONDS_PER_ROW=1
    step "dry run: CPUExecutionProvider in $VENV; a real run would install onnxruntime-gpu into ${GPU_VENV}"
else
    step "the GPU"
    command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no NVIDIA driver here (try --dry-run)" >&2; exit 1; }
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    if [[ -n $GIVEN_PYTHON ]]; then
        step "$GIVEN_PYTHON as it is: onnxruntime-gpu must already be importable"
    elif [[ $PROJECT_VENV == 1 ]]; then
        VENV=.venv
    else
        VENV=$GPU_VENV
        if [[ ! -x "$VENV/bin/python" ]]; then
            step "a venv for onnxruntime-gpu: $VENV"
            "$PYTHON" -m venv "$VENV"
            "$VENV/bin/pip" install --quiet --upgrade pip
            # The project's dependencies and test tools, not the project: tests import the checkout.
            "$VENV/bin/pip" install --quiet '.[dev]'
            "$VENV/bin/pip" uninstall --quiet --yes modelserve
        fi
    fi
    PY=${GIVEN_PYTHON:-$VENV/bin/python}
    if [[ -z $GIVEN_PYTHON ]]; then
        step "onnxruntime-gpu into $VENV (with the CUDA and cuDNN libraries from the package index)"
        "$VENV/bin/pip" uninstall --quiet --yes onnxruntime || true
        "$VENV/bin/pip" install --quiet 'onnxruntime-gpu[cuda,cudnn]>=1.17'
    fi
    # Let every process, the servers too, find the CUDA libraries of the nvidia-* wheels.
    NVIDIA_LIBS=$(nvidia_libs "$PY")
    export LD_LIBRARY_PATH="${NVIDIA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
PY=${PY:-$VENV/bin/python}

step "ONNX Runtime starts a session on $PROVIDER"
"$PY" - "$PROVIDER" <<'EOF'
import sys
import tempfile

import onnxruntime as ort

sys.path.insert(0, "bench")
import models

provider = sys.argv[1]
print("onnxruntime", ort.__version__, "providers:", ort.get_available_providers())
with tempfile.TemporaryDirectory() as folder:
    path = models.write_repository(__import__("pathlib").Path(folder), False) / "mlp" / "1" / "model.onnx"
    session = ort.InferenceSession(str(path), providers=[provider])
    assert session.get_providers()[0] == provider, f"ONNX Runtime fell back to {session.get_providers()}"
print("session on", provider)
EOF

step "provider tests with $PROVIDER required (require_first_provider: true)"
MODELSERVE_TEST_PROVIDER=$PROVIDER "$PY" -m pytest tests/test_required_provider.py tests/test_providers.py -x -q -p no:cacheprovider
"$PY" -m pytest tests/test_repository.py -x -q -p no:cacheprovider -k provider

TRITON_ARGS=(--no-triton)
if [[ ${TRITON:-0} == 1 ]]; then
    step "Triton's venv, with onnxruntime-gpu when on a GPU"
    bash bench/triton_setup.sh
    TRITON_VENV=$(bash bench/triton_setup.sh --print)
    if [[ $DRY_RUN == 0 ]]; then
        "$TRITON_VENV/bin/pip" uninstall --quiet --yes onnxruntime || true
        "$TRITON_VENV/bin/pip" install --quiet 'onnxruntime-gpu[cuda,cudnn]>=1.17'
        TRITON_NVIDIA_LIBS=$(nvidia_libs "$TRITON_VENV/bin/python")
        export LD_LIBRARY_PATH="${TRITON_NVIDIA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    TRITON_ARGS=()
fi

step "benchmark rows on $PROVIDER: servers on CPUs $SERVER_CPUS, load generator on $CLIENT_CPUS"
CONNECTIONS=1,8,64
[[ $DRY_RUN == 1 ]] && CONNECTIONS=1,64
"$PY" bench/run.py --provider "$PROVIDER" --seconds "$SECONDS_PER_ROW" --connections "$CONNECTIONS" \
    --server-cpus "$SERVER_CPUS" --client-cpus "$CLIENT_CPUS" "${TRITON_ARGS[@]}"

step "done: $PROVIDER served, required, and benchmarked"

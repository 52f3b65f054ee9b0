#!/usr/bin/env bash
# NVIDIA Triton for bench/run.py's side-by-side rows, in its own venv outside the project's:
# nvidia-pytriton 0.7.0 needs numpy<2, which the project's venv does not take.
#
#   bash bench/triton_setup.sh            # creates $TRITON_VENV (default ~/.cache/modelserve-bench/triton-venv)
#   bash bench/triton_setup.sh --print    # prints the venv's path (what bench/run.py reads)
#
# The wheel carries the tritonserver binary, libtriton_python.so, triton_python_backend_utils.py
# and one python-backend stub per Python minor version; bench/triton.py assembles a backend
# directory from them. Idempotent: a venv with a .ready stamp is left alone.
set -euo pipefail

PYTHON=${PYTHON:-python3.11}
TRITON_VENV=${TRITON_VENV:-$HOME/.cache/modelserve-bench/triton-venv}

if [[ "${1:-}" == "--print" ]]; then
    echo "$TRITON_VENV"
    exit 0
fi
if [[ -f "$TRITON_VENV/.ready" ]]; then
    echo "triton venv ready: $TRITON_VENV"
    exit 0
fi
command -v "$PYTHON" >/dev/null || { echo "$PYTHON not found (set PYTHON=...)" >&2; exit 1; }
mkdir -p "$(dirname "$TRITON_VENV")"
"$PYTHON" -m venv "$TRITON_VENV"
"$TRITON_VENV/bin/pip" install --quiet --upgrade pip
# onnxruntime runs inside Triton's python backend (model.py); py-spy profiles either server.
"$TRITON_VENV/bin/pip" install --quiet 'nvidia-pytriton==0.7.0' 'numpy<2' onnxruntime py-spy
"$TRITON_VENV/bin/python" - <<'EOF'
import pathlib, sys, pytriton
root = pathlib.Path(pytriton.__file__).parent / "tritonserver"
stub = root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
for need in (root / "bin" / "tritonserver", root / "backends" / "python" / "libtriton_python.so", stub):
    assert need.exists(), f"missing from the wheel: {need}"
print("triton server:", root / "bin" / "tritonserver")
EOF
touch "$TRITON_VENV/.ready"
echo "triton venv ready: $TRITON_VENV"

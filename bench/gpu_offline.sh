#!/usr/bin/env bash
# onnxruntime-gpu and the service's dependencies for a GPU machine that cannot reach a package
# index, carried over as wheels in parts small enough for a size-limited copy.
#
#   bash bench/gpu_offline.sh pack DIR [PART_SIZE]   # here, with pip and the index: wheels into DIR
#   bash bench/gpu_offline.sh unpack DIR TARGET      # there: the parts joined, the wheels into TARGET
#
# pack downloads, for CPython $PYTHON_VERSION (default 3.12) on manylinux x86-64, the project's
# runtime dependencies and test tools into DIR/wheels, and onnxruntime-gpu split into
# DIR/ort/part.NN of PART_SIZE (default 46M, split's units). LEAVE_OUT (default "numpy onnx
# pillow") names wheels not carried: a CUDA image brings its own, built against its libraries,
# and the copy is smaller without them. unpack (run with that machine's
# python3) installs everything it finds with --no-deps into TARGET; put TARGET first on
# PYTHONPATH, so these versions win over the image's (onnxruntime-gpu over a CPU onnxruntime).
# The parts may arrive in several copies: unpack only needs all of them under DIR/ort by then.
set -euo pipefail

usage() { sed -n '2,14p' "$0"; exit 2; }
[[ $# -ge 2 ]] || usage
VERB=$1
DIR=$2

if [[ $VERB == pack ]]; then
    PART_SIZE=${3:-46M}
    PYTHON_VERSION=${PYTHON_VERSION:-3.12}
    PIP=${PIP:-"$(dirname "$0")/../.venv/bin/pip"}
    PLATFORMS=()
    for platform in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
        manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64 any; do
        PLATFORMS+=(--platform "$platform")
    done
    download() {
        "$PIP" download --quiet --only-binary=:all: --python-version "$PYTHON_VERSION" \
            --implementation cp "${PLATFORMS[@]}" "$@"
    }
    mkdir -p "$DIR/wheels" "$DIR/ort"
    # The service's runtime dependencies (pyproject.toml) with what the provider tests and the
    # benchmark import; every dependency of theirs too, so nothing is missing there.
    download -d "$DIR/wheels" "fastapi>=0.110" "pydantic>=2.6" "pydantic-settings>=2.2" \
        "uvicorn[standard]>=0.29" "ml_dtypes>=0.4,<=0.5.4" "prometheus-client>=0.20" "orjson>=3.9" \
        "PyYAML>=6.0" "Pillow>=10.0" "python-multipart>=0.0.9" "fastapi-offline>=1.7" \
        "grpcio>=1.63" "grpcio-health-checking>=1.63" "grpcio-reflection>=1.63" "protobuf>=5.26,<7" \
        "tritonclient[http,grpc]>=2.45" "onnx>=1.16" pytest pytest-timeout httpx
    for name in ${LEAVE_OUT-numpy onnx pillow}; do rm -f "$DIR"/wheels/"$name"-*.whl; done
    download --no-deps -d "$DIR" "onnxruntime-gpu>=1.17"
    ORT_WHEEL=$(ls "$DIR"/onnxruntime_gpu-*.whl)
    rm -f "$DIR"/ort/part.*
    split -b "$PART_SIZE" -d "$ORT_WHEEL" "$DIR/ort/part."
    basename "$ORT_WHEEL" > "$DIR/ort/name"
    sha256sum "$ORT_WHEEL" | cut -d' ' -f1 > "$DIR/ort/sha256"
    rm "$ORT_WHEEL"
    du -sh "$DIR/wheels" "$DIR"/ort/part.*
elif [[ $VERB == unpack ]]; then
    [[ $# -eq 3 ]] || usage
    TARGET=$3
    PYTHON=${PYTHON:-python3}
    ORT_WHEEL="$DIR/$(cat "$DIR/ort/name")"
    cat "$DIR"/ort/part.* > "$ORT_WHEEL"
    echo "$(cat "$DIR/ort/sha256")  $ORT_WHEEL" | sha256sum --check --quiet
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$TARGET" "$DIR"/wheels/*.whl "$ORT_WHEEL"
    echo "installed into $TARGET: $(ls "$DIR"/wheels | wc -l) wheels and $(basename "$ORT_WHEEL")"
else
    usage
fi

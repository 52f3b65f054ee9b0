#!/usr/bin/env bash
# Issue 16's benchmark, once, on a quiet machine: every table into OUT_DIR, then the targets.
#
#   bash bench/final.sh OUT_DIR              # about 10 minutes at the default 4 s a row
#   BENCH_SECONDS=1 bash bench/final.sh /tmp/x   # a dry run (about 4 minutes): does it all run?
#
# Writes, each a markdown table (progress and server errors go to the matching .log):
#   run.md          bench/run.py: the hand-written endpoint, Triton's python backend with and
#                   without its dynamic batcher, modelserve with and without batching, at 1, 8
#                   and 64 connections, every answer checked; modelserve --access-log beside
#                   the default (no access log); --workers 2 against 1 (wrk, checked); diffusion
#                   samples/s at 1, 4 and 16 generations (bench/diffusion.py's rows, through
#                   run.py's --diffusion so that its target is in the table)
#   translation.md  bench/translation.py at 1, 4, 16 and 64 concurrent streams
#   grpc_vs_http.md bench/grpc_vs_http.py: gRPC beside HTTP binary and JSON on one server
#   targets.md      the issue-16 targets table out of run.md, also printed at the end
# Servers on core 0, load generators on core 1 (the scripts' defaults). Triton's venv must exist
# (bash bench/triton_setup.sh). BENCH_SECONDS, not SECONDS: bash's SECONDS counts the shell's
# own running time. A failing step (a wrong answer fails run.py) stops the script.
set -euo pipefail

OUT=${1:?usage: bash bench/final.sh OUT_DIR}
S=${BENCH_SECONDS:-4}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
PY=.venv/bin/python
started=$(date +%s)

step() {  # step NAME COMMAND...: stdout to NAME.md, stderr to NAME.log
    local name=$1
    shift
    echo "== $name: $* ($(date -u +%H:%M:%S) UTC)" >&2
    "$@" >"$OUT/$name.md" 2>"$OUT/$name.log" || {
        echo "FAILED: $name (exit $?); its log:" >&2
        tail -20 "$OUT/$name.log" >&2
        exit 1
    }
}

step run $PY bench/run.py --seconds "$S" --connections 1,8,64 --access-log --workers \
    --diffusion models/digits-diffusion
step translation $PY bench/translation.py --seconds "$S" --concurrency 1,4,16,64
step grpc_vs_http $PY bench/grpc_vs_http.py --seconds "$S"

sed -n '/^| target (issue 16)/,/^$/p' "$OUT/run.md" >"$OUT/targets.md"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - started)) s in all" >&2
echo
cat "$OUT/targets.md"

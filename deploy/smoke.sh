#!/usr/bin/env bash
# Smoke run of the compose stack: build the image, start two replicas behind nginx, call the
# service through nginx (readiness, then one V2 inference on each model in models/, inputs
# built from the model's metadata; then over gRPC a ModelInfer and a generation stream), and
# tear it all down. Not part of `make test`: minutes.
#
#   deploy/smoke.sh                 docker compose, or podman-compose where there is no Docker
#   SMOKE_PORT=18000 deploy/smoke.sh   host port for nginx (default 18000; gRPC on the next one)
#   SMOKE_PYTHON=.venv/bin/python      a Python with tritonclient[grpc] (the dev extra), for gRPC
#
# Without Docker (no engine, no registry), first run ../shared/tools/container-env.sh: it sets
# up podman with a local python:3.11-slim. deploy/compose.smoke.yml then builds nginx from that
# base with Debian's nginx; Prometheus and Grafana are left out (their images can't be pulled).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${SMOKE_PORT:-18000}
GRPC_PORT=$((PORT + 1))
SMOKE_PYTHON=${SMOKE_PYTHON:-.venv/bin/python}
PROJECT=modelserve-smoke
FILES=(-f docker-compose.yml -f deploy/compose.smoke.yml)
export MODELSERVE_HTTP_PORT=$PORT MODELSERVE_GRPC_PUBLISHED_PORT=$GRPC_PORT

log() { printf '[smoke %(%H:%M:%S)T] %s\n' -1 "$*"; }

if docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    COMPOSE=(docker compose -p "$PROJECT" "${FILES[@]}")
    ENGINE=docker
elif command -v podman-compose >/dev/null 2>&1; then
    CTR=${CTR:-$HOME/.cache/modelserve-containers}
    # shellcheck disable=SC1091
    [ -f "$CTR/env.sh" ] && . "$CTR/env.sh"
    export BUILDAH_FORMAT=docker   # OCI images drop HEALTHCHECK; docker format keeps it
    COMPOSE=(podman-compose -p "$PROJECT" "${FILES[@]}")
    ENGINE=podman
else
    echo "smoke: neither 'docker compose' (with a running engine) nor podman-compose found" >&2
    exit 2
fi
log "engine: $ENGINE ($("${COMPOSE[0]}" --version 2>/dev/null | head -1))"

teardown() {
    log "tearing down"
    "${COMPOSE[@]}" down -t 10 >/dev/null 2>&1 || true
}
trap teardown EXIT

# The engines' own output goes to a log, shown when a step fails.
STEP_LOG=${TMPDIR:-/tmp}/modelserve-smoke.log
: > "$STEP_LOG"
step() { "$@" >>"$STEP_LOG" 2>&1 || { tail -n 60 "$STEP_LOG"; echo "smoke: '$*' failed (log: $STEP_LOG)" >&2; exit 1; }; }

log "building the service image and nginx (log: $STEP_LOG)"
step "${COMPOSE[@]}" build modelserve nginx
log "starting modelserve (2 replicas) and nginx on 127.0.0.1:$PORT"
step "${COMPOSE[@]}" up -d modelserve nginx
"$ENGINE" ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}  {{.Image}}  {{.Status}}'

log "calling the service through nginx"
python3 - "$PORT" models <<'PY'
import json, pathlib, sys, time, urllib.error, urllib.request

port, models_dir = sys.argv[1], pathlib.Path(sys.argv[2])
base = f"http://127.0.0.1:{port}"

def call(path, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read()), response.headers.get("X-Request-ID")

# Ready through nginx five times in a row: both replicas up and nginx past their start-up.
deadline, streak = time.monotonic() + 180, 0
while streak < 5:
    try:
        status, body, _ = call("/v2/health/ready", timeout=5)
        streak += 1
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        streak = 0
        if time.monotonic() > deadline:
            sys.exit(f"not ready through nginx after 180 s: {exc}")
    time.sleep(0.5)
print(f"GET /v2/health/ready -> {status} {body}")
status, body, _ = call("/v2")
print(f"GET /v2 -> {status} {body}")

# The models the service holds, from its repository index (what the image was built with).
_, index, _ = call("/v2/repository/index", {})
print(f"POST /v2/repository/index -> {[(m['name'], m['version'], m['state']) for m in index]}")
on_disk = sorted(p.name for p in models_dir.iterdir() if p.is_dir()) if models_dir.is_dir() else []
names = sorted({m["name"] for m in index})
if not names:
    sys.exit("the service holds no models: nothing to infer on")
if on_disk != names:
    print(f"note: models/ now holds {on_disk}; the image was built with {names}")

# One value per datatype that any input accepts. A generative model is asked for one sample
# with a seed: its other inputs (temperature, interpolate...) are optional modes.
ONE = {"BOOL": True, "BYTES": "a", "FP16": 1.0, "FP32": 1.0, "FP64": 1.0}
GENERATION = {"num_samples": 1, "seed": 1, "steps": 2}
failed = [f"{m['name']} v{m['version']}: {m['state']} {m['reason']}" for m in index if m["state"] != "READY"]
for name in names:
    try:
        _, meta, _ = call(f"/v2/models/{name}")
        generative = meta.get("parameters", {}).get("task") in ("gan", "vae", "flow", "diffusion")
        inputs = []
        for spec in meta["inputs"]:
            if generative and spec["name"] not in GENERATION:
                continue
            shape = [1 if d == -1 else d for d in spec["shape"]]
            count = 1
            for d in shape:
                count *= d
            value = GENERATION[spec["name"]] if generative else ONE.get(spec["datatype"], 1)
            inputs.append({"name": spec["name"], "shape": shape, "datatype": spec["datatype"], "data": [value] * count})
        status, result, request_id = call(f"/v2/models/{name}/infer", {"inputs": inputs}, timeout=120)
        shapes = {o["name"]: o["shape"] for o in result["outputs"]}
        print(f"POST /v2/models/{name}/infer -> {status} v{result.get('model_version')} {shapes} (X-Request-ID {request_id})")
    except urllib.error.HTTPError as exc:
        failed.append(name)
        print(f"POST /v2/models/{name}/infer -> {exc.code} {exc.read()[:300]!r}")
    except Exception as exc:  # noqa: BLE001 - report every model, then fail
        failed.append(name)
        print(f"{name}: {type(exc).__name__}: {exc}")
for failure in failed:
    print(f"FAILED {failure}")
print(f"{len(names) - len(failed)} of {len(names)} models answered through nginx")
sys.exit(1 if failed else 0)
PY

log "calling gRPC through nginx on 127.0.0.1:$GRPC_PORT"
"$SMOKE_PYTHON" - "$GRPC_PORT" <<'PY'
import queue, sys

import numpy as np
import tritonclient.grpc as tg

client = tg.InferenceServerClient(f"127.0.0.1:{sys.argv[1]}")
print(f"ServerReady -> {client.is_server_ready()}")
names = [m.name for m in client.get_model_repository_index().models if m.state == "READY"]
generators, answered = [], 0
for name in names:
    metadata = client.get_model_metadata(name)
    config = client.get_model_config(name).config
    if config.parameters["task"].string_value in ("gan", "vae", "flow", "diffusion"):
        generators.append(name)
        continue
    inputs = []
    for spec in metadata.inputs:
        shape = [1 if d == -1 else int(d) for d in spec.shape]
        tensor = tg.InferInput(spec.name, shape, spec.datatype)
        tensor.set_data_from_numpy(np.ones(shape, dtype=tg.triton_to_np_dtype(spec.datatype)))
        inputs.append(tensor)
    result = client.infer(name, inputs, request_id=f"smoke-{name}")
    print(f"ModelInfer {name} -> id {result.get_response().id} {[(o.name, list(o.shape)) for o in result.get_response().outputs]}")
    answered += 1
if not answered or not generators:
    sys.exit("no model to call ModelInfer on, or no generator to stream from")
answers = queue.Queue()
client.start_stream(callback=lambda result, error: answers.put(error or result))
steps = tg.InferInput("steps", [1], "INT32")
steps.set_data_from_numpy(np.array([4], np.int32))
name = next((g for g in generators if "diffusion" in g), generators[0])
inputs = [tg.InferInput("num_samples", [1], "INT32")]
inputs[0].set_data_from_numpy(np.array([2], np.int32))
client.async_stream_infer(name, inputs + ([steps] if "diffusion" in name else []))
events = []
while True:
    answer = answers.get(timeout=120)
    if not isinstance(answer, tg.InferResult):
        sys.exit(f"ModelStreamInfer {name} failed: {answer}")
    events.append(answer.get_response().parameters["event"].string_param)
    if answer.get_response().parameters["triton_final_response"].bool_param:
        break
client.stop_stream()
print(f"ModelStreamInfer {name} -> {events}")
PY

# Both replicas took requests through nginx: count each one's access log lines.
for name in $("$ENGINE" ps --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=modelserve" --format '{{.Names}}'); do
    log "$name answered $("$ENGINE" logs "$name" 2>&1 | grep -c '"logger":"modelserve.access"') requests"
done

if [ "$ENGINE" = podman ]; then
    # Nothing runs HEALTHCHECKs by itself here (no systemd): run the image's own, once each.
    for name in $(podman ps --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=modelserve" --format '{{.Names}}'); do
        podman healthcheck run "$name" && log "HEALTHCHECK $name: healthy"
    done
else
    for id in $(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=modelserve"); do
        log "HEALTHCHECK $(docker inspect --format '{{.Name}}: {{.State.Health.Status}}' "$id")"
    done
fi
log "smoke run passed"

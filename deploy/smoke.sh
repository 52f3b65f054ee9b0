#!/usr/bin/env bash
# Smoke run of the compose stack: build the image, start two replicas behind nginx, call the
# service through nginx (readiness, then one V2 inference on each model in models/, inputs
# built from the model's metadata; then over gRPC a ModelInfer on each and a generation
# stream: deploy/smoke_client.py), and tear it all down. Not part of `make test`: minutes.
#
#   deploy/smoke.sh                 docker compose, or podman-compose where there is no Docker
#   SMOKE_PORT=18000 deploy/smoke.sh   host port for nginx (default 18000; gRPC on the next one,
#                                      Prometheus on the one after)
#   SMOKE_PYTHON=.venv/bin/python      a Python with tritonclient[grpc] (the dev extra), for gRPC
#
# Without Docker (no engine, no registry), first run ../shared/tools/container-env.sh: it sets
# up podman with a local python:3.11-slim. deploy/compose.smoke.yml then builds nginx and
# Prometheus from that base with Debian's packages; Grafana is left out (no image, no package).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${SMOKE_PORT:-18000}
GRPC_PORT=$((PORT + 1))
PROMETHEUS_PORT=$((PORT + 2))
SMOKE_PYTHON=${SMOKE_PYTHON:-.venv/bin/python}
PROJECT=modelserve-smoke
FILES=(-f docker-compose.yml -f deploy/compose.smoke.yml)
export MODELSERVE_HTTP_PORT=$PORT MODELSERVE_GRPC_PUBLISHED_PORT=$GRPC_PORT PROMETHEUS_PORT

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

log "building the service image, nginx and Prometheus (log: $STEP_LOG)"
step "${COMPOSE[@]}" build modelserve nginx prometheus
log "starting modelserve (2 replicas), nginx on 127.0.0.1:$PORT and Prometheus on 127.0.0.1:$PROMETHEUS_PORT"
step "${COMPOSE[@]}" up -d modelserve nginx prometheus
"$ENGINE" ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}  {{.Image}}  {{.Status}}'

log "calling the service through nginx"
python3 deploy/smoke_client.py http "$PORT" models

log "calling gRPC through nginx on 127.0.0.1:$GRPC_PORT"
"$SMOKE_PYTHON" deploy/smoke_client.py grpc "$GRPC_PORT"

log "asking Prometheus on 127.0.0.1:$PROMETHEUS_PORT what it scraped from the replicas"
python3 deploy/smoke_client.py prometheus "$PROMETHEUS_PORT"

# Both replicas took requests through nginx: count each one's access log lines, and the gRPC
# calls among them that kept the client's x-request-id across nginx.
grpc_ids=0
for name in $("$ENGINE" ps --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=modelserve" --format '{{.Names}}'); do
    replica_log=$("$ENGINE" logs "$name" 2>&1)
    ids=$(grep -c '"request_id":"smoke-grpc-' <<<"$replica_log" || true)
    grpc_ids=$((grpc_ids + ids))
    log "$name answered $(grep -c '"logger":"modelserve.access"' <<<"$replica_log" || true) requests ($ids gRPC ModelInfer with the client's x-request-id)"
done
# nginx's own access log: the gRPC calls reached it as HTTP/2 and left through grpc_pass.
for name in $("$ENGINE" ps --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=nginx" --format '{{.Names}}'); do
    log "$name passed $("$ENGINE" logs "$name" 2>&1 | grep -c 'POST /inference.GRPCInferenceService/ModelInfer HTTP/2.0" 200' || true) ModelInfer calls over HTTP/2"
done
[ "$grpc_ids" -gt 0 ] || { echo "smoke: no replica logged a gRPC call with the client's x-request-id" >&2; exit 1; }

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

#!/bin/sh
# Tools the deploy checks in tests/deploy run, from Debian: nginx (nginx -t and the topology
# test), promtool (package prometheus: the alert rules) and docker-compose (compose config); curl
# and jq for tests/docs. apt-get runs only when asked: under CI=true, or with INSTALL_TEST_TOOLS=1
# (`make test-tools`). Otherwise this says what it would install and why; those tests skip, and
# the test run ends with a list of what was skipped for want of a tool.
set -u
PATH="$PATH:/usr/sbin:/sbin"
missing=""
why=""
command -v nginx >/dev/null 2>&1 || { missing="$missing nginx"; why="$why
  nginx: nginx -t on deploy/nginx/nginx.conf, and nginx in front of two replicas"; }
command -v promtool >/dev/null 2>&1 || { missing="$missing prometheus"; why="$why
  prometheus: its promtool checks deploy/prometheus/prometheus.yml"; }
command -v docker-compose >/dev/null 2>&1 || { missing="$missing docker-compose"; why="$why
  docker-compose: docker-compose config on docker-compose.yml"; }
command -v curl >/dev/null 2>&1 || { missing="$missing curl"; why="$why
  curl: tests/docs run docs/TASKS.md's examples as a reader would"; }
command -v jq >/dev/null 2>&1 || { missing="$missing jq"; why="$why
  jq: the TASKS.md examples pipe curl's answers into it"; }
[ -z "$missing" ] && exit 0
if [ "${CI:-}" != true ] && [ "${INSTALL_TEST_TOOLS:-}" != 1 ]; then
    echo "deploy checks: not installing unasked what these tests need:$why"
    echo "  \`make test-tools\` runs apt-get install$missing as root; until then they skip."
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "deploy checks: missing$missing and no apt-get as root to install them; those tests will skip"
    exit 0
fi
echo "deploy checks: apt-get install$missing"
# policy-rc.d 101: install the packages without starting their daemons (nginx on :80, prometheus).
policy=/usr/sbin/policy-rc.d
[ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1; }
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || echo "deploy checks: could not install$missing; those tests will skip"
[ "${made_policy:-0}" = 1 ] && rm -f "$policy"
exit 0

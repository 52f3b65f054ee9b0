#!/bin/sh
# Tools the deploy checks in tests/deploy run, from Debian when missing: nginx (nginx -t and the
# topology test), promtool (package prometheus) and docker-compose (compose config); curl and jq
# for tests/docs. `make test` runs this first. Without apt-get or root, nothing is installed and
# those tests skip, saying why.
set -u
PATH="$PATH:/usr/sbin:/sbin"
missing=""
command -v nginx >/dev/null 2>&1 || missing="$missing nginx"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
# tests/docs run docs/TASKS.md's examples as a reader would: curl, piped into jq.
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v jq >/dev/null 2>&1 || missing="$missing jq"
[ -z "$missing" ] && exit 0
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

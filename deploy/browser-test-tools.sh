#!/bin/sh
# Debian's Chromium for the playground's browser tests (tests/web). Playwright drives it by
# path: `playwright install` would download a browser build, which a machine without internet
# cannot do. apt-get runs only when asked: under CI=true, or with INSTALL_TEST_TOOLS=1
# (`make test-tools`). Otherwise this says what it would install and why, and the browser tests
# skip; the test run ends with a list of what was skipped for want of a tool.
set -u
[ -x /usr/bin/chromium ] && exit 0
if [ "${CI:-}" != true ] && [ "${INSTALL_TEST_TOOLS:-}" != 1 ]; then
    echo "browser tests: /usr/bin/chromium is missing (the playground tests drive it); not"
    echo "  installing unasked. \`make test-tools\` runs apt-get install chromium as root; until"
    echo "  then they skip."
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "browser tests: /usr/bin/chromium is missing and there is no apt-get as root to install it; they will skip"
    exit 0
fi
echo "browser tests: apt-get install chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || echo "browser tests: could not install chromium; they will skip"
exit 0

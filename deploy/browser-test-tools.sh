#!/bin/sh
# Debian's Chromium for the playground's browser tests (tests/web), from apt when missing.
# Playwright drives it by path: `playwright install` would download a browser build, which a
# machine without internet cannot do. Without apt-get or root, nothing is installed and the
# browser tests skip, saying why.
set -u
[ -x /usr/bin/chromium ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "browser tests: /usr/bin/chromium is missing and there is no apt-get as root to install it; they will skip"
    exit 0
fi
echo "browser tests: apt-get install chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || echo "browser tests: could not install chromium; they will skip"
exit 0

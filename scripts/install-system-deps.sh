#!/bin/sh
# Install the Debian packages spml's web app set-up and tests need (npm, chromium, ffmpeg, redis-server),
# only when missing.
# As root it runs apt-get; otherwise it prints the command for an administrator and exits 0,
# so `make setup` still works (the browser tests then skip with a clear reason).
set -eu

missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v ffmpeg >/dev/null 2>&1 || missing="$missing ffmpeg"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
# redis-server: the message queue that lets several `spml serve` processes share rooms (scale-out tests).
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: installing$missing with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
else
    echo "install-system-deps: missing$missing; without npm the page's assets cannot be installed,"
    echo "  without chromium or ffmpeg the browser tests are skipped."
    echo "  To run them, install as root:  apt-get install -y$missing"
fi

#!/usr/bin/env bash
# Make sure Debian's Chromium is installed at /usr/bin/chromium: the browser end-to-end tests
# (tests/webui) drive it with Playwright (playwright-core, which downloads no browser). Idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEP=chromium
CHROMIUM="${RYAX_CHROMIUM:-/usr/bin/chromium}"

if [[ -x "$CHROMIUM" ]]; then
    info "$DEP" "ok: $CHROMIUM"
    exit 0
fi
# Fonts: without them pages render with boxes for text (and the screenshots show it).
apt_install "$DEP" chromium fonts-liberation fonts-dejavu-core
[[ -x "$CHROMIUM" ]] || die "$DEP" "apt-get install chromium gave no $CHROMIUM"
info "$DEP" "ok: installed $CHROMIUM"

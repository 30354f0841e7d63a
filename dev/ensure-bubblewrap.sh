#!/usr/bin/env bash
# Make sure Debian's bubblewrap (`bwrap`) is installed: the worker runs every action process in a
# bubblewrap sandbox and the action builder runs pip in one (RYAX_SANDBOX=bwrap, their default when
# bwrap is found). Idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEP=bubblewrap

if command -v bwrap >/dev/null; then
    info "$DEP" "ok: $(command -v bwrap)"
    exit 0
fi
apt_install "$DEP" bubblewrap
command -v bwrap >/dev/null || die "$DEP" "apt-get install bubblewrap gave no bwrap binary"
info "$DEP" "ok: installed $(command -v bwrap)"

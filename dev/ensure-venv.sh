#!/usr/bin/env bash
# Create .venv (Python 3.11, with uv) and install the given service folders editable plus the
# pinned developer tools of dev/requirements-dev.txt. Called by `make venv` when one of those
# files changed (the stamp .venv/.ryax-installed records the last successful install).
# Usage: dev/ensure-venv.sh [SERVICE_FOLDER...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

DEP=venv
VENV="$REPO_ROOT/.venv"
STAMP="$VENV/.ryax-installed"
PYTHON_WANTED=python3.11

# uv: as a module of python3 (the documented way), else on PATH, else installed with pip.
if python3 -m uv --version >/dev/null 2>&1; then
    UV=(python3 -m uv)
elif command -v uv >/dev/null 2>&1; then
    UV=(uv)
else
    info "$DEP" "installing uv with pip"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install "$DEP" python3-pip
    fi
    # Debian marks its Python as externally managed (PEP 668); uv is only a tool here.
    timeout 600 python3 -m pip install -q uv </dev/null \
        || timeout 600 python3 -m pip install -q --break-system-packages uv </dev/null \
        || die "$DEP" "command failed: python3 -m pip install uv"
    UV=(python3 -m uv)
fi
export UV_PYTHON_DOWNLOADS=never  # use the machine's python3.11; never fetch a build of Python

if [[ ! -x "$VENV/bin/python" ]]; then
    command -v "$PYTHON_WANTED" >/dev/null || apt_install "$DEP" python3.11 python3.11-venv
    info "$DEP" "uv venv --python $PYTHON_WANTED .venv"
    timeout 300 "${UV[@]}" venv --python "$PYTHON_WANTED" "$VENV" </dev/null \
        || die "$DEP" "command failed: ${UV[*]} venv --python $PYTHON_WANTED .venv"
fi
version="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$version" == 3.11 ]] \
    || die "$DEP" ".venv has Python $version, not 3.11: remove .venv and run make venv again"

editables=()
for service in "$@"; do
    editables+=(-e "./$service")
done
info "$DEP" "uv pip install -r dev/requirements-dev.txt ${editables[*]}"
timeout 1200 "${UV[@]}" pip install --python "$VENV/bin/python" \
    -r dev/requirements-dev.txt "${editables[@]}" </dev/null \
    || die "$DEP" "command failed: ${UV[*]} pip install -r dev/requirements-dev.txt ${editables[*]}"
touch "$STAMP"

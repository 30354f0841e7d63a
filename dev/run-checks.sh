#!/usr/bin/env bash
# Run each check of `make test` (make targets given as arguments) even when an earlier one failed,
# then print a table of results. The last line is pytest's count; the exit code is non-zero if
# any check failed.
# Usage: dev/run-checks.sh TARGET...
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

rm -f "$DEV_STATE/pytest-summary"
results=()
failed=()
for target in "$@"; do
    echo
    echo "=== make $target"
    start=$SECONDS
    if make --no-print-directory "$target"; then
        status=ok
    else
        status=FAILED
        failed+=("$target")
    fi
    results+=("$(printf '%-14s %-7s %4ss' "$target" "$status" $((SECONDS - start)))")
done

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
summary="pytest: not run"
[[ -s "$DEV_STATE/pytest-summary" ]] && summary="$(tail -n 1 "$DEV_STATE/pytest-summary")"
if ((${#failed[@]})); then
    echo "make test: FAILED (${failed[*]})"
    echo "$summary"
    exit 1
fi
echo "make test: OK"
echo "$summary"

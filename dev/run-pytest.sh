#!/usr/bin/env bash
# Run the test folders given as arguments, one pytest process each, from the repository root with
# the root pyproject.toml and conftest.py; print "pytest: N passed, N failed, N skipped" last.
#
# One process per folder, as each service's own CI would run it: services may lay out their tests
# as they like (tests/__init__.py or not, helper modules imported relatively) without their
# module names clashing with another service's. For <service>/tests, <service>/ is put on
# sys.path (pytest's `pythonpath`), so `tests.unit.helpers`-style imports work in importlib mode.
#
# Exit code: 0 only if every folder passed. Pytest's 5 ("no tests collected") counts as success
# for that folder only: it means the selection there was empty (a folder without tests yet, or a
# PYTEST_ARGS="-k name" matching nothing in it), never a hidden failure.
# Usage: dev/run-pytest.sh TEST_DIR...      Extra arguments: PYTEST_ARGS="-k foo -x"
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

SUMMARY_FILE="$DEV_STATE/pytest-summary"
JUNIT_DIR="$DEV_STATE/pytest"
mkdir -p "$DEV_STATE"
rm -rf "$SUMMARY_FILE" "$JUNIT_DIR"
mkdir -p "$JUNIT_DIR"

if (($# == 0)); then
    echo "pytest: 0 passed, 0 failed (no test folder exists)" | tee "$SUMMARY_FILE"
    exit 0
fi

# junit_counts FILE: "passed failed skipped" from a JUnit XML report (0 0 0 if none).
junit_counts() {
    .venv/bin/python - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 0 0")
    raise SystemExit
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
failed = total["failures"] + total["errors"]
print(total["tests"] - failed - total["skipped"], failed, total["skipped"])
EOF
}

passed=0 failed=0 skipped=0 status=0
results=()
for dir in "$@"; do
    name="${dir%/}"
    junit="$JUNIT_DIR/${name//\//_}.xml"
    args=(-c pyproject.toml --rootdir . --junitxml="$junit")
    case "$name" in
        */tests) args+=(-o "pythonpath=${name%/tests}") ;;
        tests/*) args+=(-o "pythonpath=.") ;;
    esac
    echo
    echo "--- pytest $name"
    # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words on purpose
    .venv/bin/python -m pytest "${args[@]}" ${PYTEST_ARGS:-} "$name"
    rc=$?
    read -r p f s <<<"$(junit_counts "$junit")"
    if ((rc == 5 && f == 0)); then
        echo "--- $name: no test selected (pytest exit 5, counted as success)"
        rc=0
    fi
    if ((rc != 0 && f == 0)); then
        f=1 # interrupted, internal or usage error: never report that as green
    fi
    ((rc != 0)) && status=1
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    results+=("$(printf '  %-28s %5d passed %4d failed %4d skipped%s' "$name" "$p" "$f" "$s" \
        "$( ((rc != 0)) && echo "   (exit $rc)")")")
done

echo
echo "--- pytest per folder"
printf '%s\n' "${results[@]}"
echo "pytest: $passed passed, $failed failed, $skipped skipped" | tee "$SUMMARY_FILE"
exit "$status"

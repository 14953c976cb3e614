#!/usr/bin/env bash
# check.sh BUILD_DIR [sanitized] - runs every test suite against one build and ends with
# one summary line "check: N passed, N failed, N skipped".  Suites: C unit, conformance
# and fuzz-corpus replays (ctest, counted one C test function at a time by
# scripts/ctest_counts.py), then the integration tests (pytest) against
# BUILD_DIR/vigil.  A suite whose tools are missing fails; it never skips.  A test
# whose data is absent is counted as skipped, never as passed.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
root=$(pwd)
export VIGIL_BINARY="$root/$build/vigil"
export VIGIL_SOURCE_DIR="$root"
export VIGIL_SHARED_DIR="${VIGIL_SHARED_DIR:-$root/../shared}"
[ -d "$VIGIL_SHARED_DIR" ] || echo "check: $VIGIL_SHARED_DIR is missing: tests that need the shared models and images will skip"
if [ "${2:-}" = sanitized ]; then  # the ASan+UBSan build: leak checks on, stop at the first report
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi

PYTHON=${PYTHON:-/usr/bin/python3}
passed=0 failed=0 skipped=0
log=$(mktemp -d)

echo "== C unit, conformance and fuzz-corpus tests (ctest)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" 2>&1 | tee "$log/ctest.txt"
c_total=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2/p' "$log/ctest.txt" | tail -1)
c_failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1/p' "$log/ctest.txt" | tail -1)
if [ -z "$c_total" ]; then
  echo "check: ctest produced no summary"; failed=$((failed + 1))
else
  read -r p f s < <("$PYTHON" scripts/ctest_counts.py "$build/Testing/Temporary/LastTest.log" "$c_total")
  echo "C tests: $p passed, $f failed, $s skipped (in $c_total executables, $c_failed failed)"
  [ "$c_failed" -gt 0 ] && [ "${f:-0}" -eq 0 ] && f=$c_failed  # never report fewer failures than ctest saw
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
fi

echo "== integration tests (pytest)"
if ! "$PYTHON" -c "import pytest, requests" 2>/dev/null; then
  echo "check: python3-pytest or python3-requests is missing (run make deps)"; failed=$((failed + 1))
else
  "$PYTHON" -m pytest -q -p no:cacheprovider tests/integration 2>&1 | tee "$log/pytest.txt"
  summary=$(tail -1 "$log/pytest.txt")
  p=$(echo "$summary" | grep -o '[0-9]* passed' | grep -o '[0-9]*' || true)
  f=$(echo "$summary" | grep -o '[0-9]* failed' | grep -o '[0-9]*' || true)
  e=$(echo "$summary" | grep -o '[0-9]* error' | grep -o '[0-9]*' || true)
  s=$(echo "$summary" | grep -o '[0-9]* skipped' | grep -o '[0-9]*' || true)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0})); skipped=$((skipped + ${s:-0}))
  if [ -z "$p$f$e$s" ]; then echo "check: pytest produced no summary"; failed=$((failed + 1)); fi
fi
rm -rf "$log"
echo "check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

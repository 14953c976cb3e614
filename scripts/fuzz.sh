#!/usr/bin/env bash
# fuzz.sh BUILD_DIR SECONDS - runs every libFuzzer target for SECONDS each,
# starting from (and adding to) a scratch copy of its committed corpus, and
# reports executions per target.  New crashes land in BUILD_DIR/fuzz-artifacts.
set -uo pipefail
cd "$(dirname "$0")/.."
build=$1 seconds=${2:-120}
mkdir -p "$build/fuzz-artifacts"
status=0
for target in "$build"/tests/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target"); corpus=${name#fuzz_}
  work="$build/fuzz-corpus/$corpus"; mkdir -p "$work"
  cp -n tests/fuzz/corpus/"$corpus"/* "$work"/ 2>/dev/null || true
  echo "== $name for ${seconds}s"
  "$target" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$corpus-" \
    "$work" 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
exit $status

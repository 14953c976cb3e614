#!/usr/bin/env python3
"""ctest_counts.py LASTTEST_LOG EXPECTED - counts C tests one test function at a time.

ctest counts executables, and it reports an executable whose every test
skipped (exit 77, SKIP_RETURN_CODE) as "not run" but writes "Test Passed." for
it in LastTest.log.  The unit-test binaries end their output with the line
"N passed, N failed, N skipped" (tests/unit/testing.h), so this reads each
binary's block in LastTest.log and adds those lines up.  A binary without such
a line (the fuzz-corpus replays) counts as one test by its ctest status.  A
binary that ctest saw fail but whose own line shows no failure (a crash or a
sanitizer report after the summary, a time-out) adds one failure.  Blocks
missing from the log (EXPECTED is ctest's own total) count as failures.

Prints "PASSED FAILED SKIPPED".
"""
import re
import sys

SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped$")
HEADER = re.compile(r"^\d+/\d+ Test: (.+)$", re.M)


def count(text: str):
    passed = failed = skipped = blocks = 0
    for block in HEADER.split(text)[2::2]:  # split keeps the names at odd positions
        blocks += 1
        output, _, tail = block.partition("<end of output>")
        ctest_failed = "Test Failed." in tail or "Test Passed." not in tail
        lines = [SUMMARY.match(line.strip()) for line in output.splitlines()]
        own = [m for m in lines if m]
        if own:
            p, f, s = (int(v) for v in own[-1].groups())
            if ctest_failed and f == 0:
                f = 1
            passed, failed, skipped = passed + p, failed + f, skipped + s
        elif ctest_failed:
            failed += 1
        else:
            passed += 1
    return passed, failed, skipped, blocks


def main() -> int:
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        passed, failed, skipped, blocks = count(f.read())
    expected = int(sys.argv[2]) if len(sys.argv) > 2 else blocks
    failed += max(0, expected - blocks)
    print(passed, failed, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())

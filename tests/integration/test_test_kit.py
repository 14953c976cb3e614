"""The test kit itself: a C test that cannot run reports skipped, a test that
checks nothing fails, and `make check` counts skipped tests apart from passed
ones (tests/unit/testing.h, scripts/ctest_counts.py, scripts/check.sh).
"""
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import ROOT, vigil_binary

KIT_PROGRAM = r"""
#include "testing.h"
static void test_checks(void) { CHECK(1 + 1 == 2); }
static void test_checks_nothing(void) { }
static void test_skips(void) { SKIP("no data"); }
static void test_fails_then_skips(void) { CHECK(0); SKIP("gave up"); }
int main(int argc, char **argv) {
    (void)argv;
    if (argc > 1) { RUN(test_skips); RUN(test_skips); return testing_report(); }
    RUN(test_checks);
    RUN(test_checks_nothing);
    RUN(test_skips);
    RUN(test_fails_then_skips);
    return testing_report();
}
"""


@pytest.fixture(scope="module")
def kit_program(tmp_path_factory):
    cc = shutil.which("cc")
    assert cc, "no C compiler (Debian package build-essential)"
    folder = tmp_path_factory.mktemp("kit")
    (folder / "kit.c").write_text(KIT_PROGRAM)
    subprocess.run([cc, "-std=c17", "-Wall", "-Werror", "-I", str(ROOT / "tests/unit"), "kit.c", "-o", "kit", "-lm"],
                   cwd=folder, check=True)
    return folder / "kit"


def test_a_test_that_checks_nothing_fails_and_skips_are_counted_apart(kit_program):
    run = subprocess.run([kit_program], capture_output=True, text=True)
    assert run.returncode == 1
    assert "test_checks_nothing: ran no check" in run.stderr
    assert run.stderr.strip().splitlines()[-1] == "1 passed, 2 failed, 1 skipped"


def test_a_binary_whose_every_test_skipped_exits_77(kit_program):
    run = subprocess.run([kit_program, "only-skips"], capture_output=True, text=True)
    assert run.returncode == 77  # ctest's SKIP_RETURN_CODE for the unit tests
    assert run.stderr.strip().splitlines()[-1] == "0 passed, 0 failed, 2 skipped"


def test_detector_tests_skip_without_the_shared_data():
    """Without ../shared every detector test skips (the rotated-photo test
    used to pass having checked nothing)."""
    binary = pathlib.Path(vigil_binary()).parent / "tests" / "test_vision_detector"
    assert binary.exists(), f"{binary} was not built"
    env = dict(os.environ, VIGIL_SHARED_DIR="/nonexistent/shared")
    run = subprocess.run([binary], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 77, run.stderr
    assert "[ SKIP ] test_rotated_photo_takes_the_whole_image_path" in run.stderr
    assert "[ SKIP ] test_raw_frames" in run.stderr
    assert "[ SKIP ] test_frame_in_pieces" in run.stderr
    assert run.stderr.strip().splitlines()[-1] == "0 passed, 0 failed, 6 skipped"


LAST_TEST_LOG = """Start testing: Dec 05 23:32 UTC
----------------------------------------------------------
1/4 Testing: all_skipped
1/4 Test: all_skipped
Output:
----------------------------------------------------------
0 passed, 0 failed, 2 skipped
<end of output>
Test time =   0.00 sec
----------------------------------------------------------
Test Passed.
2/4 Testing: mixed
2/4 Test: mixed
Output:
----------------------------------------------------------
3 passed, 0 failed, 1 skipped
<end of output>
----------------------------------------------------------
Test Passed.
3/4 Testing: leaked_after_summary
3/4 Test: leaked_after_summary
Output:
----------------------------------------------------------
5 passed, 0 failed, 0 skipped
==1==ERROR: LeakSanitizer: detected memory leaks
<end of output>
----------------------------------------------------------
Test Failed.
4/4 Testing: replay_image
4/4 Test: replay_image
Output:
----------------------------------------------------------
replayed 3 inputs
<end of output>
----------------------------------------------------------
Test Passed.
"""


def test_ctest_counts_reads_each_binarys_line(tmp_path):
    log = tmp_path / "LastTest.log"
    log.write_text(LAST_TEST_LOG)
    script = ROOT / "scripts" / "ctest_counts.py"
    out = subprocess.run(["/usr/bin/python3", script, log, "4"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["9", "1", "3"]
    # a binary ctest ran but whose block is missing from the log is a failure
    out = subprocess.run(["/usr/bin/python3", script, log, "5"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["9", "2", "3"]

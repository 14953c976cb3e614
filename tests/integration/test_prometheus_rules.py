"""deploy/prometheus/rules.yml under promtool (issue 20, Must show 3): the
rules parse (`promtool check rules`) and pass their unit tests
(`promtool test rules deploy/prometheus/rules_test.yml`: every alert firing,
not firing, and exactly at its threshold).  Copies of the rules with a
threshold moved onto the tested value, or with a syntax error, must fail, so
this test can fail."""
import os
import pathlib
import shutil
import subprocess

from promkit import tool

DEPLOY = pathlib.Path(os.environ.get("VIGIL_SOURCE_DIR", pathlib.Path(__file__).parents[2])) / "deploy" / "prometheus"


def promtool(*args):
    return subprocess.run([tool("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60)


def copy_rules(tmp_path, edit):
    for name in ("rules.yml", "rules_test.yml"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    rules = tmp_path / "rules.yml"
    rules.write_text(edit(rules.read_text()))
    return tmp_path


def test_rules_check_and_unit_tests_pass():
    check = promtool("check", "rules", DEPLOY / "rules.yml")
    assert check.returncode == 0, check.stdout + check.stderr
    test = promtool("test", "rules", DEPLOY / "rules_test.yml")
    assert test.returncode == 0, test.stdout + test.stderr


def test_threshold_moved_onto_the_tested_value_fails(tmp_path):
    # ">" to ">=" on the latency alert: the "exact" series (p90 = 0.5 s) fires
    text = (DEPLOY / "rules.yml").read_text()
    assert "\n          > 0.5\n" in text
    copy_rules(tmp_path, lambda t: t.replace("\n          > 0.5\n", "\n          >= 0.5\n"))
    test = promtool("test", "rules", tmp_path / "rules_test.yml")
    assert test.returncode != 0
    assert 'model="exact"' in test.stdout + test.stderr


def test_broken_rules_fail_the_check(tmp_path):
    copy_rules(tmp_path, lambda t: t.replace("for: 2m", "for: 2 minutes", 1))
    check = promtool("check", "rules", tmp_path / "rules.yml")
    assert check.returncode != 0

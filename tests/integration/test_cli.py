"""The `vigil` command line: help texts, usage errors, exit codes."""
import pytest

from conftest import run_vigil

SUBCOMMANDS = ["serve", "detect", "infer", "bench", "models", "version", "token"]


def test_top_level_help_lists_every_subcommand():
    res = run_vigil("--help")
    assert res.returncode == 0
    for name in SUBCOMMANDS + ["help"]:
        assert f"  {name} " in res.stdout


def test_no_arguments_is_a_usage_error():
    res = run_vigil()
    assert res.returncode == 2
    assert "usage: vigil" in res.stderr


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name):
    res = run_vigil(name, "--help")
    assert res.returncode == 0, res.stderr
    assert "usage: vigil " + name in res.stdout
    assert len(res.stdout.splitlines()) >= 2


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_help_subcommand_matches_flag(name):
    assert run_vigil("help", name).stdout == run_vigil(name, "--help").stdout


def test_unknown_subcommand_is_one_line_error():
    res = run_vigil("frobnicate")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "unknown command 'frobnicate'" in res.stderr


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_unknown_flag_is_one_line_error(name):
    res = run_vigil(name, "--no-such-flag")
    assert res.returncode != 0
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, res.stderr
    assert "no-such-flag" in lines[0]


def test_version_prints_version():
    res = run_vigil("version")
    assert res.returncode == 0
    assert res.stdout.startswith("vigil ")

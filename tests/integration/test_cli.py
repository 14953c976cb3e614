"""The `vigil` command line: help texts, usage errors, exit codes."""
import json
import re

import pytest

from conftest import make_affine_onnx, run_vigil, shared_path

SUBCOMMANDS = ["serve", "detect", "infer", "bench", "models", "version", "token", "health"]


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


def listed_subcommands():
    """The commands `vigil --help` lists (help included), read from its output."""
    res = run_vigil("--help")
    section = res.stdout.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    return [m.group(1) for m in re.finditer(r"^  (\S+)\s", section, re.M)]


def test_every_listed_subcommand_accepts_help_and_h():
    names = listed_subcommands()
    assert set(SUBCOMMANDS + ["help"]) <= set(names), names
    for name in names:
        for flag in ("--help", "-h"):
            res = run_vigil(name, flag)
            assert res.returncode == 0, f"vigil {name} {flag}: {res.returncode} {res.stderr}"
            assert res.stdout.strip() and not res.stderr, f"vigil {name} {flag}"


def test_help_help_and_help_h_show_the_overview():
    overview = run_vigil("--help").stdout
    for args in (("help", "--help"), ("help", "-h"), ("help", "help")):
        res = run_vigil(*args)
        assert res.returncode == 0 and res.stdout == overview, args


# ---- vigil models inspect on folders


def inspect_text(*args):
    res = run_vigil("models", "inspect", *args, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_models_inspect_takes_a_repository_model_folder(tmp_path):
    pytest.importorskip("onnx", reason="python3-onnx builds the test models")
    folder = tmp_path / "models" / "affine"
    make_affine_onnx(folder / "1" / "model.onnx", width=4)
    make_affine_onnx(folder / "3" / "model.onnx", width=6)  # the highest version is served
    make_affine_onnx(folder / "12b" / "model.onnx", width=9)  # not a version: ignored
    (folder / "7").mkdir()  # a version folder without a model: ignored
    (folder / "config.yaml").write_text("max_batch_size: 4\n")
    for arg in (folder, str(folder) + "/"):
        out = inspect_text(arg)
        assert f"model:        {folder / '3' / 'model.onnx'} (" in out, out
        assert "version:      3" in out and "[batch, 6]" in out, out
    res = run_vigil("models", "inspect", folder, "--json", timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["path"] == str(folder / "3" / "model.onnx") and got["version"] == 3
    assert got["inputs"][0]["shape"] == ["batch", 6]


def test_models_inspect_takes_a_version_folder(tmp_path):
    pytest.importorskip("onnx", reason="python3-onnx builds the test models")
    version = tmp_path / "affine" / "2"
    make_affine_onnx(version / "model.onnx", width=5)
    out = inspect_text(version)
    assert f"model:        {version / 'model.onnx'} (" in out and "[batch, 5]" in out, out
    assert "\nversion:" not in out  # the folder was the version: nothing was picked


def test_models_inspect_folder_without_a_model_is_one_line(tmp_path):
    (tmp_path / "empty" / "1").mkdir(parents=True)
    res = run_vigil("models", "inspect", tmp_path / "empty")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds no model.onnx" in lines[0], res.stderr


# ---- errors name the problem once


def test_detect_errors_name_the_path_once(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image\n")
    missing_model = tmp_path / "missing.onnx"
    res = run_vigil("detect", "--model", missing_model, garbage)
    assert res.returncode == 1
    assert res.stderr.count(str(missing_model)) == 1, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    res = run_vigil("detect", "--model", garbage, garbage)  # an image given as the model
    assert res.returncode == 1 and res.stderr.count(str(garbage)) == 1, res.stderr
    model = shared_path("models/yolov8n.onnx")
    missing = tmp_path / "missing.jpg"
    for image, problem in ((missing, "No such file"), (garbage, "not a JPEG or PNG")):
        res = run_vigil("detect", "--model", model, image, timeout=120)
        assert res.returncode == 1
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and problem in lines[0], res.stderr
        assert lines[0].count(str(image)) == 1, lines[0]


def test_models_list_shows_each_models_task_and_family(tmp_path):
    """`vigil models list` reads a repository as `vigil serve` would: the
    served version, and the task and head family from the outputs (a YOLOv5
    export carries no task metadata), or why a folder would not load."""
    yolov5 = shared_path("models/yolov5n.onnx")
    models = tmp_path / "models"
    for version in (1, 3):
        (models / "yolov5n" / str(version)).mkdir(parents=True)
        (models / "yolov5n" / str(version) / "model.onnx").symlink_to(yolov5)
    make_affine_onnx(models / "affine" / "1" / "model.onnx")
    make_affine_onnx(models / "forced" / "1" / "model.onnx")
    (models / "forced" / "config.yaml").write_text("task: detect\n")
    (models / "broken" / "1").mkdir(parents=True)
    (models / "broken" / "config.yaml").write_text("colour: red\n")
    (models / "empty").mkdir()
    r = run_vigil("models", "list", "--models", models, "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert list(rows) == ["affine", "broken", "empty", "forced", "yolov5n"]
    assert rows["yolov5n"]["task"] == "detect" and rows["yolov5n"]["family"] == "yolov5"
    assert rows["yolov5n"]["version"] == 3 and rows["yolov5n"]["file"].endswith("yolov5n/3/model.onnx")
    assert rows["affine"]["task"] == "raw" and rows["affine"]["family"] is None
    assert rows["forced"]["task"] == "detect"  # config.yaml's task wins
    assert "unknown key 'colour'" in rows["broken"]["problem"] and rows["broken"]["task"] == "-"
    assert "no version folder" in rows["empty"]["problem"]
    text = run_vigil("models", "list", "--models", models)
    assert text.returncode == 0
    line = next(l for l in text.stdout.splitlines() if l.startswith("yolov5n "))
    assert line.split()[:5] == ["yolov5n", "3", "detect", "yolov5", "cpu"]
    missing = run_vigil("models", "list", "--models", tmp_path / "nowhere")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1


def bench_lines(*args):
    res = run_vigil("bench", "--json", "--iterations", "1", "--warmup", "0", *args, timeout=300)
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_bench_batch_sizes_share_one_instance_weights():
    """`vigil bench --batch 1-3` runs each size on one instance and prints its
    packed-weight bytes: a size that adds no copy prints the same number.  On
    two threads a batch of 2 splits in two parts, one copy each; with
    --batch-cap 1 nothing splits, so no size adds any."""
    model = shared_path("models/yolov8n_dynbatch.onnx")
    split = bench_lines("--model", model, "--threads", "2", "--batch", "1-3")
    assert [r["batch"] for r in split] == [1, 2, 3] and all(r["batch_cap"] == 2 for r in split)
    one = split[0]["packed_weight_bytes"]
    assert one > 12_000_000  # yolov8n: 3.2 M parameters, packed
    assert split[1]["packed_weight_bytes"] == split[2]["packed_weight_bytes"] == 2 * one
    capped = bench_lines("--model", model, "--threads", "2", "--batch", "1,2,3", "--batch-cap", "1")
    assert [r["packed_weight_bytes"] for r in capped] == [one] * 3 and capped[0]["batch_cap"] == 1
    assert capped[2]["peak_activation_bytes"] == split[0]["peak_activation_bytes"]  # follows the cap


def test_bench_refuses_a_bad_batch_list():
    for bad in ("0", "3-1", "1,,2", "x", "1-5000"):
        res = run_vigil("bench", "--model", "m.onnx", "--batch", bad)
        assert res.returncode == 2 and "bad value" in res.stderr, (bad, res.stderr)

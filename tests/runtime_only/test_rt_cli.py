"""The ``m7onnx`` command as a new user meets it, with the runtime alone (no converter needed).

``--help``, ``--version`` and the runtime's commands must not import the converter (onnx and
ml_dtypes cost about a second per call); ``info`` and ``predict`` find the bundled models
without a path; a closed pipe ends the command quietly.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import runtime_support as rs

import m7_runtime
from m7_runtime import cli

HEAVY = ("onnx", "ml_dtypes", "m7_convert", "onnxmltools", "skl2onnx", "xgboost", "pandas", "pyarrow", "dask")


def _env(tmp_path: Path) -> dict[str, str]:
    """No model folder configured: the lookup ends at the bundled artifacts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("M7_")}
    return env | {"M7_CONFIG": str(tmp_path / "none.json")}


def _run_main(argv: list[str], tmp_path: Path, stdin: str | None = None) -> dict:
    """``cli.main(argv)`` in a fresh interpreter: its exit status, output and the heavy modules it imported."""
    code = textwrap.dedent(
        f"""
        import contextlib, io, json, sys
        from m7_runtime import cli
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                rc = cli.main({argv!r})
            except SystemExit as exc:
                rc = exc.code
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        print(json.dumps({{"rc": rc, "out": out.getvalue(), "heavy": heavy}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        env=_env(tmp_path),
        cwd=tmp_path,  # not the repository: its onnx/ folder of artifacts would shadow the onnx package
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"err": proc.stderr}


def test_help_version_and_runtime_commands_do_not_import_the_converter(tmp_path: Path):
    for argv in (["--help"], ["score", "--help"], ["info"], ["info", "--features"]):
        result = _run_main(argv, tmp_path)
        assert result["rc"] == 0, (argv, result["err"])
        assert result["heavy"] == [], argv
    snapshot = json.dumps(rs.SNAPSHOT)
    result = _run_main(["predict", "--json"], tmp_path, stdin=snapshot)
    assert result["heavy"] == []
    assert result["rc"] == 0, result["err"]


def test_version():
    out = subprocess.run([sys.executable, "-m", "m7_runtime.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"m7onnx {m7_runtime.__version__}"


def test_info_and_predict_find_the_bundled_models_without_a_path(tmp_path: Path):
    names = {p.name.removesuffix(".manifest.json") for p in rs.ONNX.glob("*.manifest.json")}
    info = _run_main(["info"], tmp_path)
    assert info["rc"] == 0, info["err"]
    assert all(name in info["out"] for name in names)
    pred = _run_main(["predict", "--json"], tmp_path, stdin=json.dumps(rs.SNAPSHOT))
    assert pred["rc"] == 0, pred["err"]
    assert set(json.loads(pred["out"])) == names
    one = _run_main(["predict", "xgb_recovery_model", "--json"], tmp_path, stdin=json.dumps(rs.SNAPSHOT))
    assert list(json.loads(one["out"])) == ["xgb_recovery_model"]
    assert json.loads(one["out"])["xgb_recovery_model"] == json.loads(pred["out"])["xgb_recovery_model"]
    unknown = _run_main(["info", "xgb_nope"], tmp_path)
    assert unknown["rc"] == 2
    assert unknown["err"].startswith("m7onnx info: error: unknown model 'xgb_nope'")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_provider_defaults_match_load():
    default = inspect.signature(m7_runtime.load).parameters["provider"].default
    commands = _subparsers(cli.build_parser())
    for name in ("predict", "score"):
        provider = next(a for a in commands[name]._actions if a.dest == "provider")
        assert provider.default == default, name


def test_every_runtime_argument_has_help_and_shows_its_default():
    parser = cli.build_parser()
    for name, sub in _subparsers(parser).items():
        if name in cli.CONVERTER_COMMANDS:
            continue  # their arguments come with the converter: tests/test_cli.py
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest}"
            if action.option_strings and action.default not in (None, argparse.SUPPRESS):
                assert "default" in action.help, f"{name} {action.dest}"
        text = sub.format_help()
        assert "%(default)" not in text
    assert "(default: 131072)" in _subparsers(parser)["score"].format_help()


def test_a_closed_pipe_ends_quietly(tmp_path: Path):
    """``m7onnx info --features | head -1``: the reader is gone before the command writes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "m7_runtime.cli", "info", "--features"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(tmp_path),
    )
    proc.stdout.close()  # closed while the interpreter is still starting: every write hits a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_converter_commands_say_which_extra_they_need(tmp_path: Path):
    probe = subprocess.run([sys.executable, "-c", "import m7_convert.cli"], capture_output=True, cwd=tmp_path)
    if probe.returncode == 0:
        pytest.skip("the converter's dependencies are installed here (the runtime-only CI environment runs this)")
    result = _run_main(["convert", str(tmp_path / "m.pkl"), "--out-dir", str(tmp_path)], tmp_path)
    assert result["rc"] == 2
    assert "'m7onnx convert' needs the convert extra: pip install 'market7-onnx[convert]'" in result["err"]

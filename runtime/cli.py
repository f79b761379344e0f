"""The ``m7onnx`` command: every subcommand registered here, each defined by its own module.

``convert``/``verify`` are defined by the converter (:mod:`m7_convert.cli`), whose imports
(onnx, ml_dtypes) take about a second: they are listed here by name and the converter is
imported only when one of them runs, so ``m7onnx --help`` and the runtime's commands start
without it. Without the converter's extra they explain how to get it.

Exit status: 0 success, 1 a check failed (``verify``, ``convert``, ``predict``), 2 a usage or
input error (one line on stderr, ``m7onnx COMMAND: error: ...``), 130 interrupted (Ctrl-C),
141 standard output closed early (``m7onnx info | head``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import locate
from .artifact import MANIFEST_SUFFIX, Manifest
from .errors import M7Error

#: the converter's commands: name -> one-line summary (their arguments are in m7_convert.cli)
CONVERTER_COMMANDS = {
    "convert": "convert pickled/JSON XGBoost models into verified ONNX artifacts",
    "verify": "re-check artifacts against their source models (for CI after retraining)",
}
_TARGET_HELP = (
    "a manifest, a folder of manifests, or a model name in the model folder "
    "(default: every model in the model folder, see --model-dir)"
)
_MODEL_DIR_HELP = "the model folder (default: $M7_MODEL_DIR, else the config file's, else the bundled models)"


class _Version(argparse.Action):
    """``--version``, read from the installed metadata only when asked (it costs ~60 ms)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from . import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit()


# ---- info and predict ----------------------------------------------------------------------


def _manifest_paths(target: str | None, model_dir: str | None) -> tuple[list[Path], Path | None]:
    """The manifests a MODEL|MANIFEST|DIR argument names, and the folder when it named one."""
    if target is None or Path(target).is_dir():
        folder = Path(target) if target is not None else locate.model_dir(model_dir)
        paths = sorted(folder.glob(f"*{MANIFEST_SUFFIX}"))
        if not paths:
            raise M7Error(f"{folder} holds no *{MANIFEST_SUFFIX}")
        return paths, folder
    return [locate.resolve_model(target, folder=model_dir)], None


def _info(args: argparse.Namespace) -> int:
    paths, _ = _manifest_paths(args.target, args.model_dir)
    rows = []
    for p in paths:
        m = Manifest.read(p)
        src, parity = m.source, m.parity
        rows.append(
            [
                m.name,
                m.task,
                str(len(m.features)),
                "+".join(sorted(m.flavors)),
                _layout_text(m),
                "linear" if src.booster == "gblinear" else f"{src.n_trees}x{src.max_depth}",
                src.objective,
                src.xgboost_version,
                _policy_text(m),
                m.policy_origin.kind if m.policy_origin else "unrecorded",
                ("pass " if parity.passed else "FAIL ")
                + f"{sum(parity.rows.values())} rows {parity.worst_rel_error():.1e}",
            ]
        )
    header = [
        "model",
        "task",
        "feat",
        "flavors",
        "tensor layout",
        "trees",
        "objective",
        "xgboost",
        "policy",
        "from",
        "parity (max rel err)",
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    manifests = [Manifest.read(p) for p in paths]
    print("\npolicy sources:")
    for m in manifests:
        print(f"  {m.name}: {m.policy_origin.describe() if m.policy_origin else 'not recorded (schema 1 manifest)'}")
    notes = [(m.name, f, e.note) for m in manifests for f, e in sorted(m.flavors.items()) if e.note]
    if notes:
        print("\nnotes:")
        for name, flavor, note in notes:
            print(f"  {name} ({flavor}): {note}")
    if args.features:
        for m in manifests:
            print(f"\n{m.name}: " + ", ".join(m.features))
    return 0


def _layout_text(m: Manifest) -> str:
    """The tensor graphs' strategies; the CPU's large-batch graph with its run size and from how many rows."""
    from .state import bulk_flavor

    parts = [f"{f}={m.flavors[f].strategy}" for f in ("tensor", "tensor_cpu") if f in m.flavors]
    bulk = bulk_flavor(m)
    if bulk is not None:
        e = m.flavors[bulk]
        parts.append(f"CPU>={e.cpu_min_rows} rows" + (f" x{e.rows_per_run}" if e.rows_per_run else ""))
    return ", ".join(parts) or "-"


def _policy_text(m: Manifest) -> str:
    p = m.policy
    parts = [p.on_missing]
    if p.clamp_min is not None:
        parts.append(f"clamp>={p.clamp_min:g}")
    if p.clamp_max is not None:
        parts.append(f"clamp<={p.clamp_max:g}")
    parts.extend(f"one-hot {o.input}" for o in p.one_hot)
    return ", ".join(parts)


def _predict(args: argparse.Namespace) -> int:
    from .model import load, load_dir

    try:
        features = (
            json.loads(Path(args.features).read_text(encoding="utf-8")) if args.features else json.load(sys.stdin)
        )
    except (OSError, ValueError) as exc:
        raise M7Error(f"cannot read the features JSON: {exc}") from exc
    if not isinstance(features, dict):
        raise M7Error("the features JSON must be one object of feature name -> value")
    paths, folder = _manifest_paths(args.target, args.model_dir)
    models = (
        list(load_dir(folder, provider=args.provider).values())
        if folder is not None
        else [load(paths[0], provider=args.provider)]
    )
    out: dict[str, object] = {}
    for model in models:
        try:
            y = model.predict_one(features)
            out[model.name] = y.tolist() if hasattr(y, "tolist") else y
        except M7Error as exc:
            out[model.name] = None
            print(exc, file=sys.stderr)
    status = 1 if any(y is None for y in out.values()) else 0
    if args.json:
        print(json.dumps(out, indent=2))
        return status
    width = max(len(m.name) for m in models)
    for model in models:
        y = out[model.name]
        targets = model.manifest.output.targets
        if isinstance(y, list) and targets:  # several targets: name each value
            shown = ", ".join(f"{t}={v:.6g}" for t, v in zip(targets, y, strict=True))
        else:
            shown = "None" if y is None else (f"{y:.6g}" if isinstance(y, float) else str(y))
        print(f"{model.name.ljust(width)}  {shown.ljust(10)}  {model.manifest.output.meaning}")
    return status


def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", metavar="MODEL|MANIFEST|DIR", help=_TARGET_HELP)
    p.add_argument("--model-dir", metavar="DIR", help=_MODEL_DIR_HELP)
    p.add_argument("--features", action="store_true", help="also list each model's features in order (default: off)")
    p.set_defaults(run=_info)


def _add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", metavar="MODEL|MANIFEST|DIR", help=_TARGET_HELP)
    p.add_argument("--model-dir", metavar="DIR", help=_MODEL_DIR_HELP)
    p.add_argument("--features", type=Path, help="JSON file of feature name -> value (default: read stdin)")
    p.add_argument(
        "--provider",
        default="auto",
        choices=["cpu", "cuda", "auto"],
        help="onnxruntime provider, as m7_runtime.load(); auto picks CUDA when onnxruntime has it "
        "(default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print JSON (default: a table)")
    p.set_defaults(run=_predict)


def _add_score(p: argparse.ArgumentParser) -> None:
    from .scoring import cli  # no pyarrow or dask: they load when `score` runs

    cli.add_arguments(p)
    p.set_defaults(run=cli.run)


def _add_drift(p: argparse.ArgumentParser) -> None:
    from . import monitor_cli  # pyarrow and matplotlib load when it runs

    monitor_cli.add_drift_arguments(p)


def _add_diff(p: argparse.ArgumentParser) -> None:
    from . import monitor_cli

    monitor_cli.add_diff_arguments(p)


#: the runtime's commands: name -> (summary, what adds its arguments)
RUNTIME_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "info": ("a table of the artifacts in the model folder, a folder or one manifest", _add_info),
    "predict": ("predict_one on a JSON object of features, with each model's caller policy", _add_predict),
    "score": ("score Parquet/CSV/JSONL files with one or more models (local or Dask)", _add_score),
    "drift": (
        "feature and prediction drift (PSI) of a file of live snapshots against each model's reference",
        _add_drift,
    ),
    "diff": ("A/B: compare two versions of models on the same rows", _add_diff),
}


# ---- the parser ------------------------------------------------------------------------------


def _with_converter(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return main([name, *args.rest])

    return run


def _missing_extra(name: str, error: ImportError) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise M7Error(f"'m7onnx {name}' needs the convert extra: pip install 'market7-onnx[convert]' ({error})")

    return run


def _converter_arguments() -> Mapping[str, Callable[[argparse.ArgumentParser], None]] | ImportError:
    try:
        from m7_convert import cli
    except ImportError as exc:
        return exc
    return cli.COMMANDS


def build_parser(*, converter: bool = False) -> argparse.ArgumentParser:
    """The whole command line; the converter's commands get their arguments only with ``converter``
    (which imports it): without, they are listed and take anything."""
    parser = argparse.ArgumentParser(prog="m7onnx", description="Run XGBoost trading models without XGBoost.")
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    found = _converter_arguments() if converter else None
    for name, summary in CONVERTER_COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        if isinstance(found, Mapping):
            found[name](p)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help="the command's arguments")
            p.set_defaults(run=_missing_extra(name, found) if isinstance(found, ImportError) else _with_converter(name))
    for name, (summary, add) in RUNTIME_COMMANDS.items():
        add(sub.add_parser(name, help=summary, description=summary))
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand in ``argv``: the first word that is not an option (the top level has no option values)."""
    return next((a for a in argv if not a.startswith("-")), None)


@contextlib.contextmanager
def _notes_on_stderr(command: str, quiet: bool) -> Iterator[None]:
    """The library's notes (logger ``m7_runtime``) as ``m7onnx COMMAND: note: ...`` lines, while the command runs.

    Only the command configures logging, and only for its own duration: a program that calls
    :func:`main` keeps its logging as it was.
    """
    logger = logging.getLogger("m7_runtime")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"m7onnx {command}: note: %(message)s"))
    level = logger.level
    logger.setLevel(logging.ERROR if quiet else logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(converter=_command(argv) in CONVERTER_COMMANDS)
    args = parser.parse_args(argv)
    try:
        with _notes_on_stderr(args.command, quiet=bool(getattr(args, "quiet", False))):
            status = int(args.run(args))
        sys.stdout.flush()  # here, so a closed pipe is handled below rather than at exit
        return status
    except M7Error as exc:
        print(f"m7onnx {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"m7onnx {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`m7onnx info | head`): stop quietly. Python flushes stdout again at
        # exit; pointing it at /dev/null keeps that flush from printing its own BrokenPipeError.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 141


if __name__ == "__main__":
    sys.exit(main())

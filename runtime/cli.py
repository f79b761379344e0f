"""The ``m7onnx`` command. Subcommands are registered explicitly here, each by its own module.

``convert``/``verify`` need the converter's extra; without it they explain how to get it,
and ``info`` works with the runtime alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .artifact import MANIFEST_SUFFIX, Manifest
from .errors import M7Error


def _missing_extra(name: str, extra: str, error: ImportError):
    def run(args: argparse.Namespace) -> int:
        raise M7Error(f"'m7onnx {name}' needs the {extra} extra: pip install 'market7-onnx[{extra}]' ({error})")

    return run


def _register_optional(sub: argparse._SubParsersAction, module: str, commands: tuple[str, ...], extra: str) -> None:
    import importlib

    try:
        importlib.import_module(module).register(sub)
    except ImportError as exc:
        for name in commands:
            p = sub.add_parser(name, help=f"(needs market7-onnx[{extra}])")
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(run=_missing_extra(name, extra, exc))


def _info(args: argparse.Namespace) -> int:
    target: Path = args.target
    paths = sorted(target.glob(f"*{MANIFEST_SUFFIX}")) if target.is_dir() else [target]
    if not paths:
        raise M7Error(f"{target} holds no *{MANIFEST_SUFFIX}")
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
    if args.features:
        for m in manifests:
            print(f"\n{m.name}: " + ", ".join(m.features))
    return 0


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
    import json

    from .model import load, load_dir

    try:
        features = (
            json.loads(Path(args.features).read_text(encoding="utf-8")) if args.features else json.load(sys.stdin)
        )
    except (OSError, ValueError) as exc:
        raise M7Error(f"cannot read the features JSON: {exc}") from exc
    if not isinstance(features, dict):
        raise M7Error("the features JSON must be one object of feature name -> value")
    target: Path = args.target
    models = (
        list(load_dir(target, provider=args.provider).values())
        if target.is_dir()
        else [load(target, provider=args.provider)]
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m7onnx", description="Run XGBoost trading models without XGBoost.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_optional(sub, "m7_convert.cli", ("convert", "verify"), "convert")
    info = sub.add_parser("info", help="a table of the artifacts in a folder (or one manifest)")
    info.add_argument("target", type=Path, metavar="MANIFEST|DIR")
    info.add_argument("--features", action="store_true", help="also list each model's features in order")
    info.set_defaults(run=_info)
    pred = sub.add_parser("predict", help="predict_one on a JSON object of features, with each model's caller policy")
    pred.add_argument("target", type=Path, metavar="MANIFEST|DIR")
    pred.add_argument("--features", type=Path, help="JSON file of feature name -> value (default: stdin)")
    pred.add_argument("--provider", default="cpu", choices=["cpu", "cuda", "auto"])
    pred.add_argument("--json", action="store_true", help="print JSON")
    pred.set_defaults(run=_predict)
    from . import batch  # numpy + the runtime only; pyarrow, tqdm and dask load when `score` runs

    score = sub.add_parser("score", help="score Parquet/CSV/JSONL files with one or more models (local or Dask)")
    batch.add_cli_arguments(score)
    score.set_defaults(run=batch.run_cli)
    from . import monitor_cli  # drift and diff; pyarrow and matplotlib load when they run

    monitor_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except M7Error as exc:
        print(f"m7onnx {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

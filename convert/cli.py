"""``m7onnx convert`` and ``m7onnx verify``: their arguments and commands (registered by ``m7_runtime.cli``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from m7_runtime.artifact import MANIFEST_SUFFIX
from m7_runtime.errors import M7Error

from .driver import convert, flavor_names
from .errors import ParityError
from .recheck import recheck
from .tune import TensorPlan, report_json


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    """``m7onnx convert``'s arguments, on the parser ``m7_runtime.cli`` made for it."""
    p.description = (
        "Convert each SRC into NAME.onnx (+ NAME.tensor.onnx, NAME.tensor-cpu.onnx) and NAME.manifest.json. "
        "An artifact is "
        "written only if it predicts what the source predicts on random, NaN and split-threshold rows."
    )
    p.add_argument("sources", nargs="+", type=Path, metavar="SRC", help=".pkl/.joblib pickle or xgboost .json/.ubj")
    p.add_argument("--out-dir", type=Path, required=True, help="folder for the artifacts (created if missing)")
    p.add_argument("--name", help="artifact name (one SRC only; default: the spec's name, else the file stem)")
    choices = [*flavor_names(), "all"]
    p.add_argument(
        "--flavor",
        choices=choices,
        default="all" if "tensor" in choices else "tree",
        help="which ONNX flavor(s) to write (default: %(default)s)",
    )
    p.add_argument("--spec", type=Path, help="model spec TOML (default: spec.toml beside each source, if any)")
    p.add_argument("--missing", type=float, help="missing-value sentinel for native .json/.ubj files (default: NaN)")
    p.add_argument("--rows", type=int, default=2000, help="random probe rows for verification (default: %(default)s)")
    p.add_argument(
        "--reference",
        type=Path,
        metavar="DATA",
        help="Parquet/CSV/JSONL with the model's feature columns (e.g. its training data): store a reference "
        "profile for drift monitoring (default: the spec's reference, else keep the existing artifact's)",
    )
    p.add_argument(
        "--tune",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="how the CPU tensor graph and its run size are chosen: --tune measures them on this machine (later "
        "conversions of the same source keep that choice); --no-tune uses the fixed rule; default: the choice of "
        "an artifact converted from the same source (in --out-dir or bundled), else the rule",
    )
    p.add_argument(
        "--tune-report", type=Path, metavar="FILE", help="write the tuning timings (JSON) to FILE (measured only)"
    )
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="DANGEROUS: let the pickle import globals outside the allow-list (runs code from the file; default: off)",
    )
    p.set_defaults(run=_convert)


def add_verify_arguments(p: argparse.ArgumentParser) -> None:
    """``m7onnx verify``'s arguments, on the parser ``m7_runtime.cli`` made for it."""
    p.description = (
        "Re-verify each manifest (or every manifest in DIR) against its source model: artifact hashes, "
        "source hash, and parity on fresh probe rows. Each problem has a stable code (missing_file, schema, "
        "artifact_changed, source_unreadable, source_changed, parity). Exit status: 0 all good; 3 only "
        "source_changed (a retrained model: re-convert and commit); 1 any other problem; 2 usage error."
    )
    p.add_argument("target", type=Path, metavar="MANIFEST|DIR", help="a manifest, or a folder of manifests")
    p.add_argument("--source", type=Path, help="source model (default: the path recorded in the manifest)")
    p.add_argument("--json", action="store_true", help="print a JSON report (default: one line per model)")
    p.add_argument("--rows", type=int, default=2000, help="random probe rows for parity (default: %(default)s)")
    p.add_argument("--trust-pickle", action="store_true", help="see convert --trust-pickle (default: off)")
    p.set_defaults(run=_verify)


#: m7onnx's converter commands: name -> what adds its arguments (m7_runtime.cli lists and registers them)
COMMANDS = {"convert": add_convert_arguments, "verify": add_verify_arguments}


def _warn_trust(args: argparse.Namespace) -> None:
    if args.trust_pickle:
        print(
            "WARNING: --trust-pickle lifts the pickle allow-list: a pickle can now run any code it holds, "
            "with your permissions. Use it only for files you wrote yourself.",
            file=sys.stderr,
        )


def _convert(args: argparse.Namespace) -> int:
    if args.name and len(args.sources) > 1:
        raise M7Error("--name applies to one SRC; drop it to name each artifact after its source")
    flavors = "all" if args.flavor == "all" else (args.flavor,)
    _warn_trust(args)
    failures = 0
    for src in args.sources:
        try:
            result = convert(
                src,
                out_dir=args.out_dir,
                name=args.name,
                flavors=flavors,
                spec_path=args.spec,
                trust_pickle=args.trust_pickle,
                missing=args.missing,
                n_random=args.rows,
                reference=args.reference,
                tune=args.tune,
            )
        except ParityError as exc:
            failures += 1
            print(f"FAIL {src}: {exc}", file=sys.stderr)
            continue
        except M7Error as exc:
            failures += 1
            print(f"FAIL {src}: {exc}", file=sys.stderr)
            continue
        worst = result.manifest.parity.worst_rel_error()
        rows = sum(result.manifest.parity.rows.values())
        print(
            f"ok   {result.name}: {', '.join(p.name for p in result.paths)} "
            f"(parity on {rows} rows, max rel error {worst:.2e})"
        )
        recorded = result.manifest.policy_origin
        inherited = f" (which took it from {recorded.describe()})" if recorded != result.policy_origin else ""
        print(f"     {result.name}: policy from {result.policy_origin.describe()}{inherited}")
        print(f"     {result.name}: {result.profile_note}")
        if result.plan is not None:
            _print_plan(result.name, result.plan, args.tune_report, len(args.sources) > 1)
        for flavor, why in result.skipped.items():
            print(f"     {result.name}: no {flavor} flavor: {why}")
    return 1 if failures else 0


def _print_plan(name: str, plan: TensorPlan, report: Path | None, many: bool) -> None:
    """The tensor graphs' choice; when measured, the medians behind it (and the full timings to --tune-report)."""
    print(f"     {name}: {plan.describe()}")
    for note in plan.notes:
        print(f"     {name}: {note}")
    if not plan.report:
        return
    layouts = ", ".join(f"{k} {v['ns_per_row']:.0f}" for k, v in plan.report["layouts"].items())
    print(f"     {name}: measured ns/row (one thread): {layouts}")
    if report is not None:
        path = report.with_name(f"{report.stem}.{name}{report.suffix}") if many else report
        path.write_text(report_json({"model": name, **plan.report}))
        print(f"     {name}: tuning timings written to {path}")


def _manifests(target: Path) -> list[Path]:
    if target.is_dir():
        found = sorted(target.glob(f"*{MANIFEST_SUFFIX}"))
        if not found:
            raise M7Error(f"{target} holds no *{MANIFEST_SUFFIX}")
        return found
    return [target]


#: ``m7onnx verify`` exit statuses (README, "Verifying artifacts in CI")
EXIT_OK, EXIT_BROKEN, EXIT_USAGE, EXIT_STALE = 0, 1, 2, 3


def _verify(args: argparse.Namespace) -> int:
    """0: every artifact matches its source; 3: only retrained sources (re-convert); 1: anything else."""
    manifests = _manifests(args.target)
    _warn_trust(args)
    if args.source and len(manifests) > 1:
        raise M7Error("--source applies to one manifest")
    reports = [
        recheck(m, source_path=args.source, trust_pickle=args.trust_pickle, n_random=args.rows) for m in manifests
    ]
    if args.json:
        print(json.dumps(reports, indent=2, default=str))
    else:
        for r in reports:
            status = "ok  " if r["pass"] else "FAIL"
            print(f"{status} {r['name']}" + "".join(f"\n     [{p['code']}] {p['message']}" for p in r["problems"]))
    codes = {p["code"] for r in reports for p in r["problems"]}
    if not codes:
        return EXIT_OK
    return EXIT_STALE if codes == {"source_changed"} else EXIT_BROKEN

"""``m7onnx verify``: re-verify committed artifacts against their source, with a stable problem code each.

The converter's gate (:mod:`m7_convert.driver`) refuses to write an artifact that disagrees
with its source; this re-runs the same checks later, in CI, on what was committed. It tells
a retrained source (information: how far the predictions moved, and how to re-convert)
apart from a broken artifact (hash, contract or parity failures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from m7_runtime.artifact import Manifest
from m7_runtime.compare import compare_outputs
from m7_runtime.errors import M7Error
from m7_runtime.integrity import artifact_bytes

from .driver import build_forest, failure_text, verify_pipeline
from .ir import Forest
from .load import Source, load_source
from .verify import FlavorReport, onnx_predict, probes, verify_graph, xgboost_predict

#: ``m7onnx verify`` problem codes (README, "Verifying artifacts in CI"): stable, for scripts and CI
PROBLEM_CODES = {
    "missing_file": "a manifest, an ONNX file or the source model is not where it should be",
    "schema": "the manifest is not a valid manifest of a schema this runtime reads",
    "artifact_changed": "an ONNX file or its manifest was edited after conversion (hash or contract mismatch)",
    "source_unreadable": "the source model cannot be read (corrupt, hostile, or of an unsupported kind)",
    "source_changed": "the source model differs from the one converted (retrained or replaced): re-convert",
    "parity": "the artifact disagrees with its unchanged source model",
}


def _problem(code: str, message: str, **details: Any) -> dict[str, Any]:
    assert code in PROBLEM_CODES, code
    return {"code": code, "message": message, **({"details": details} if details else {})}


def recheck(
    manifest_path: str | Path,
    *,
    source_path: str | Path | None = None,
    trust_pickle: bool = False,
    n_random: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Re-verify committed artifacts against their source (``m7onnx verify``): a JSON-able report.

    Each problem carries a stable ``code`` (:data:`PROBLEM_CODES`). A retrained source is
    told apart from a broken artifact: when the source's hash differs from the one recorded,
    the parity gate is not run against it (a new model disagreeing with the old artifact is
    expected, not a converter bug); instead the report says how far the new model's
    predictions are from the artifact's (``details``: rows, max and mean abs difference,
    decision flips) and how to re-convert.
    """
    result: dict[str, Any] = {"name": Path(manifest_path).name.split(".")[0], "manifest": str(manifest_path)}
    result.update(problems=[], flavors={})
    problems = result["problems"]
    try:
        man = Manifest.read(manifest_path)
    except M7Error as exc:
        missing = "does not exist" in str(exc)
        problems.append(_problem("missing_file" if missing else "schema", str(exc)))
        result["pass"] = False
        return result
    result["name"] = man.name
    recorded = man.source
    if source_path is None and recorded.path is None:
        src = None
    else:
        src = Path(source_path) if source_path else man.path.parent / recorded.path
    result["source"] = None if src is None else str(src)
    artifacts = {}
    for flavor in man.flavors:
        try:
            artifacts[flavor] = artifact_bytes(man, flavor)
        except M7Error as exc:
            missing = "cannot read" in str(exc)
            problems.append(_problem("missing_file" if missing else "artifact_changed", str(exc), flavor=flavor))
    if src is None or not src.exists():
        problems.append(
            _problem(
                "missing_file",
                f"the source model {src or '(converted from memory)'} is not there; give it with --source",
            )
        )
        result["pass"] = False
        return result
    try:
        source = load_source(src, trust_pickle=trust_pickle, missing=man.missing)
        forest, carried = build_forest(source, None)
    except M7Error as exc:
        problems.append(_problem("source_unreadable", f"{src}: {exc}"))
        result["pass"] = False
        return result
    probe_rows = probes(forest, n_random=n_random, seed=seed)
    if source.sha256 != recorded.sha256:
        problems.append(_source_changed(man, source, src, carried, artifacts, probe_rows))
    else:
        for flavor, data in artifacts.items():
            report = _check_flavor(source, forest, flavor, data, probe_rows, n_random, seed)
            result["flavors"][flavor] = report.as_json()
            if not report.passed:
                problems.append(_problem("parity", failure_text(man.name, {flavor: report}, [flavor]), flavor=flavor))
    result["pass"] = not problems
    return result


def _check_flavor(
    source: Source, forest: Forest, flavor: str, data: bytes, probe_rows: Any, n_random: int, seed: int
) -> FlavorReport:
    if source.preprocessor is None:
        return verify_graph(source, forest, flavor, data, probe_rows=probe_rows)
    return verify_pipeline(source, forest, flavor, onnx.load_from_string(data), data, probe_rows, n_random, seed)


def _source_changed(
    man: Manifest, source: Source, src: Path, carried: tuple[str, ...], artifacts: dict[str, bytes], probe_rows: Any
) -> dict[str, Any]:
    """The problem report for a retrained or replaced source: how far it moved the predictions, and what to do."""
    todo = f"if the new model is intended: m7onnx convert {src} --out-dir {man.path.parent} and commit the artifacts"
    head = (
        f"source {src.name} has sha256 {source.sha256[:12]}..., the manifest records {man.source.sha256[:12]}...: "
        "it was retrained or replaced since conversion"
    )
    if source.feature_names is not None and tuple(carried) != man.features:
        return _problem(
            "source_changed",
            f"{head}; its features differ from the artifact's ({list(carried)} vs {list(man.features)}); {todo}",
            features={"source": list(carried), "artifact": list(man.features)},
        )
    flavor = "tree" if "tree" in artifacts else next(iter(artifacts), None)
    if flavor is None or len(carried) != len(man.features):
        return _problem("source_changed", f"{head}; {todo}")
    X, _ = probe_rows.stacked()
    threshold = 0.5 if man.task == "binary" and man.source.link == "sigmoid" else None
    moved = compare_outputs(onnx_predict(artifacts[flavor], X), xgboost_predict(source, X), threshold=threshold, top=5)
    flips = (
        "" if moved.flips is None else f", {moved.flips} decision(s) flip" + (f" at {threshold}" if threshold else "")
    )
    return _problem(
        "source_changed",
        f"{head}. On {moved.rows} probe rows the new model's predictions differ from the artifact's by up to "
        f"{moved.max_abs_diff:.4g} (mean {moved.mean_abs_diff:.3g}){flips}. This is information, not a converter "
        f"error; {todo}",
        **moved.to_json(),
    )

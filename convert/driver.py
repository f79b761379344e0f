"""The short driver: load -> IR -> emit -> verify -> write. Each stage lives in its own module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from m7_runtime.manifest import contract as artifact_contract
from m7_runtime.policy import InputPolicy

from . import graph
from .booster_json import from_booster_json
from .emit_tensor import emit_tensor, tensor_facts
from .emit_tree import emit_tree
from .errors import ConvertError, ParityError, UnsupportedModelError
from .ir import Forest
from .load import Source, load_source
from .spec import ModelSpec, spec_for
from .verify import FlavorReport, probes, verify_graph
from .write import build_manifest, stamp_contract, write_artifacts

#: flavor name -> emitter; one function per flavor, from the same IR
EMITTERS: dict[str, Callable[[Forest], onnx.ModelProto]] = {"tree": emit_tree, "tensor": emit_tensor}


def flavor_names() -> tuple[str, ...]:
    return tuple(EMITTERS)


@dataclass(frozen=True)
class Conversion:
    name: str
    paths: list[Path]
    manifest: dict[str, Any]
    reports: dict[str, FlavorReport]
    skipped: dict[str, str] = field(default_factory=dict)  # flavor -> why ``all`` left it out


def task_of(source: Source, forest: Forest) -> str:
    """What the caller reads from the model (DESIGN.md, "Output semantics").

    Several outputs are class probabilities (multiclass), one probability per label
    (multilabel: a classifier trained on several binary targets), or several regression
    targets (several quantiles, multi-target regression).
    """
    if forest.objective.task == "multiclass":
        return "multiclass"
    binary = source.estimator == "classifier" or (source.estimator != "regressor" and forest.objective.task == "binary")
    if forest.n_outputs > 1:
        return "multilabel" if binary else "regression"
    return "binary" if binary else "regression"


def build_forest(source: Source, spec: ModelSpec | None) -> tuple[Forest, tuple[str, ...]]:
    """The IR, and the feature names the artifact's input uses (the spec's order if any)."""
    n_features = int(source.document["learner"]["learner_model_param"].get("num_feature", 0))
    if source.preprocessor is not None:
        n_features = int(getattr(source.preprocessor, "n_features_in_", n_features))
    features = spec.resolve_features(source.feature_names, n_features) if spec else source.feature_names
    if features is None:
        features = tuple(f"f{i}" for i in range(n_features))
    inner = features if source.preprocessor is None else None
    forest = from_booster_json(
        source.document, feature_names=inner, missing=source.missing, iteration_range=source.iteration_range
    )
    return forest, tuple(features)


def emit(source: Source, forest: Forest, flavor: str) -> onnx.ModelProto:
    try:
        emitter = EMITTERS[flavor]
    except KeyError:
        raise ConvertError(f"unknown flavor {flavor!r}; available: {', '.join(EMITTERS)}") from None
    model = emitter(forest)
    if source.preprocessor is not None:
        from .pipeline import prepend_preprocessor

        model = prepend_preprocessor(source.preprocessor, model, n_features=int(source.preprocessor.n_features_in_))
        foreign = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})
        if flavor == "tensor" and foreign:
            raise UnsupportedModelError(
                f"the pipeline's preprocessing converts to {', '.join(foreign)}, which onnxruntime's CUDA provider "
                "does not implement; the tensor flavor must be standard ONNX only (convert with --flavor tree)"
            )
        if flavor == "tensor":  # skl2onnx imports ai.onnx.ml even when no step uses it
            standard = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
            del model.opset_import[:]
            model.opset_import.extend(standard)
            onnx.checker.check_model(model, full_check=True)
    return model


def _emit_all(source: Source, forest: Forest, flavors: Sequence[str] | str) -> tuple[dict, dict[str, str]]:
    """Emit the requested flavors. With ``"all"``, a flavor that cannot represent the model is skipped (and why)."""
    wanted = flavor_names() if flavors == "all" else tuple(flavors)
    models: dict[str, onnx.ModelProto] = {}
    skipped: dict[str, str] = {}
    for flavor in wanted:
        try:
            models[flavor] = emit(source, forest, flavor)
        except UnsupportedModelError as exc:
            if flavors != "all" or flavor == "tree":
                raise
            skipped[flavor] = str(exc)
    return models, skipped


def convert(
    source_path: str | Path,
    *,
    out_dir: str | Path,
    name: str | None = None,
    flavors: Sequence[str] | str = "all",
    spec_path: str | Path | None = None,
    trust_pickle: bool = False,
    missing: float | None = None,
    n_random: int = 2000,
    seed: int = 0,
) -> Conversion:
    """Convert one model file; write artifacts only if every flavor passes parity.

    ``flavors``: ``"all"`` (every flavor that can represent the model: the tree flavor,
    and the tensor flavor unless a Pipeline's preprocessing needs ai.onnx.ml operators),
    or a sequence of flavor names, each of which must succeed.

    Raises :class:`ParityError` (with the report of the worst rows) when a flavor disagrees
    with xgboost beyond ``|onnx - ref| <= 1e-5 * max(1, |ref|)``; nothing is written then.
    """
    source_path = Path(source_path)
    out_dir = Path(out_dir)
    source = load_source(source_path, trust_pickle=trust_pickle, missing=missing)
    spec = spec_for(source_path, Path(spec_path) if spec_path else None)
    forest, features = build_forest(source, spec)
    name = name or (spec.name if spec else source_path.name.split(".")[0])
    task = task_of(source, forest)
    if spec and spec.task and spec.task != task:
        raise ConvertError(f"{name}: the spec says task {spec.task!r}, the model is {task!r} ({source.model_class})")

    policy = spec.policy if spec else InputPolicy()
    contract = artifact_contract(
        features=features,
        task=task,
        n_outputs=forest.n_outputs,
        input_name=graph.INPUT,
        output_name=graph.OUTPUT,
        policy=policy,
    )
    models, skipped = _emit_all(source, forest, flavors)
    models = {flavor: stamp_contract(m, contract) for flavor, m in models.items()}
    blobs = {flavor: m.SerializeToString() for flavor, m in models.items()}
    probe_rows = probes(forest, n_random=n_random, seed=seed)
    reports = {}
    for flavor, data in blobs.items():
        if source.preprocessor is None:
            reports[flavor] = verify_graph(source, forest, flavor, data, probe_rows=probe_rows)
        else:
            reports[flavor] = _verify_pipeline(source, forest, flavor, models[flavor], data, probe_rows, n_random, seed)
    failed = [f for f, r in reports.items() if not r.passed]
    if failed:
        raise ParityError(_failure_text(name, reports, failed), {f: r.as_json() for f, r in reports.items()})

    parity = {"rows": probe_rows.counts(), "flavors": {f: r.as_json() for f, r in reports.items()}, "pass": True}
    manifest = build_manifest(
        name=name,
        task=task,
        description=spec.description if spec else "",
        source=source,
        forest=forest,
        features=features,
        policy=policy,
        flavors=blobs,
        opsets={f: graph.opsets_of(m) for f, m in models.items()},
        parity=parity,
        out_dir=out_dir,
        flavor_facts={f: tensor_facts(m, forest) for f, m in models.items() if f == "tensor"},
        skipped_flavors=skipped,
    )
    return Conversion(name, write_artifacts(out_dir, name, blobs, manifest), manifest, reports, skipped)


def _verify_pipeline(
    source: Source,
    forest: Forest,
    flavor: str,
    model: onnx.ModelProto,
    data: bytes,
    probe_rows: Any,
    n_random: int,
    seed: int,
) -> FlavorReport:
    """Trees on edge rows in the booster's space, then the whole pipeline on input-space rows."""
    from .pipeline import input_space_probes

    trees_only = EMITTERS[flavor](forest).SerializeToString()
    report = verify_graph(source, forest, flavor, trees_only, probe_rows=probe_rows)
    whole = verify_graph(
        source, forest, flavor, data, probe_rows=input_space_probes(source, n_random, seed), composed=True
    )
    report.checks["pipeline_onnx_vs_xgboost"] = whole.checks["onnx_vs_xgboost"]
    return report


def _failure_text(name: str, reports: dict[str, FlavorReport], failed: list[str]) -> str:
    lines = [f"{name}: parity failed for flavor(s) {', '.join(failed)}; nothing was written"]
    for flavor in failed:
        for check, result in reports[flavor].checks.items():
            if result["pass"]:
                continue
            lines.append(
                f"  {flavor} {check}: max rel error {result.get('max_rel_error', float('nan')):.3g} "
                f"on {result.get('failing_rows', '?')} row(s) {result.get('error', '')}"
            )
            for w in result.get("worst", [])[:3]:
                lines.append(f"    row {w['row']} ({w['set']}): onnx {w['onnx']} vs reference {w['reference']}")
    hint = {"ir_vs_xgboost": "parsing", "onnx_vs_ir": "emitting"}
    stages = {hint[c] for f in failed for c, r in reports[f].checks.items() if c in hint and not r["pass"]}
    if stages:
        lines.append(f"  the failing stage: {', '.join(sorted(stages))} (please report this with the model file)")
    return "\n".join(lines)


def recheck(
    manifest_path: str | Path,
    *,
    source_path: str | Path | None = None,
    trust_pickle: bool = False,
    n_random: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Re-verify committed artifacts against their source (``m7onnx verify``): a JSON-able report.

    Fails when an artifact's bytes no longer match the manifest, when the source file is not
    the one converted (retrained or replaced), or when predictions disagree.
    """
    from m7_runtime.errors import M7Error
    from m7_runtime.manifest import Manifest

    man = Manifest.read(manifest_path)
    recorded = man.raw.get("source", {})
    src = Path(source_path) if source_path else man.path.parent / str(recorded.get("path", ""))
    result: dict[str, Any] = {
        "name": man.name,
        "manifest": str(man.path),
        "source": str(src),
        "problems": [],
        "flavors": {},
    }
    source = load_source(src, trust_pickle=trust_pickle, missing=_missing_of(man.raw))
    if source.sha256 != recorded.get("sha256"):
        result["problems"].append(
            f"source {src.name} has sha256 {source.sha256}, the manifest records {recorded.get('sha256')}: "
            "it was retrained or replaced since conversion; re-convert"
        )
    forest, carried = build_forest(source, None)
    if source.feature_names is not None and carried != man.features:
        result["problems"].append(
            f"the source's features {list(carried)} differ from the manifest's {list(man.features)}"
        )
    probe_rows = probes(forest, n_random=n_random, seed=seed)
    for flavor in man.flavors:
        try:
            data = man.artifact_bytes(flavor)
        except M7Error as exc:
            result["problems"].append(str(exc))
            continue
        if source.preprocessor is None:
            report = verify_graph(source, forest, flavor, data, probe_rows=probe_rows)
        else:
            import onnx as _onnx

            report = _verify_pipeline(
                source, forest, flavor, _onnx.load_from_string(data), data, probe_rows, n_random, seed
            )
        result["flavors"][flavor] = report.as_json()
        if not report.passed:
            result["problems"].append(_failure_text(man.name, {flavor: report}, [flavor]))
    result["pass"] = not result["problems"]
    return result


def _missing_of(raw: dict[str, Any]) -> float | None:
    value = raw.get("missing_value", "NaN")
    return None if value in ("NaN", None) else float(value)

"""The short driver: load -> IR -> emit -> verify -> write. Each stage lives in its own module."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from m7_runtime.artifact import Manifest
from m7_runtime.manifest_parts import OutputSpec, PolicyOrigin, SplitRange
from m7_runtime.parity import REL_TOL, TOLERANCE_TEXT, Parity
from m7_runtime.policy import InputPolicy
from m7_runtime.profile import prediction_of
from m7_runtime.state import TENSOR_FLAVORS

from . import graph, profiles
from . import tune as tuning
from .booster_json import from_booster_json
from .emit_tensor import emit_tensor
from .emit_tree import emit_tree
from .errors import ConvertError, ParityError, UnsupportedModelError
from .ir import Forest
from .load import Source, load_source, source_from_object
from .spec import ModelSpec, resolve
from .verify import FlavorReport, onnx_predict, probes, verify_graph
from .write import flavor_entries, library_versions, source_info, stamp_contract, write_artifacts

#: flavor name -> emitter; one function per flavor, from the same IR. The CPU-only tensor graph
#: ("tensor_cpu") is built by :func:`emitter` from the tuning plan (its strategy is chosen per model).
EMITTERS: dict[str, Callable[[Forest], onnx.ModelProto]] = {"tree": emit_tree, "tensor": emit_tensor}


def flavor_names() -> tuple[str, ...]:
    return (*EMITTERS, "tensor_cpu")


def emitter(flavor: str, plan: tuning.TensorPlan | None) -> Callable[[Forest], onnx.ModelProto]:
    """The emitter of ``flavor``; the tensor graphs follow ``plan`` (the CUDA rule, the CPU choice)."""
    if flavor == "tensor" and plan is not None:
        return lambda forest: emit_tensor(forest, strategy=plan.cuda_strategy)
    if flavor == "tensor_cpu":
        if plan is None or plan.cpu.strategy is None:
            raise ConvertError("no CPU tensor graph was planned for this model")
        strategy = plan.cpu.strategy
        return lambda forest: emit_tensor(forest, strategy=strategy, summation="cumsum")
    try:
        return EMITTERS[flavor]
    except KeyError:
        raise ConvertError(f"unknown flavor {flavor!r}; available: {', '.join(flavor_names())}") from None


@dataclass(frozen=True)
class Conversion:
    name: str
    paths: list[Path]
    manifest: Manifest
    reports: dict[str, FlavorReport]
    skipped: dict[str, str] = field(default_factory=dict)  # flavor -> why ``all`` left it out
    policy_origin: PolicyOrigin = field(default_factory=lambda: PolicyOrigin("default"))
    profile_note: str = ""  # where the reference profile came from (m7_convert.profiles)
    plan: tuning.TensorPlan | None = None  # how the tensor graphs were chosen (timings in plan.report)


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


def emit(source: Source, forest: Forest, flavor: str, plan: tuning.TensorPlan | None = None) -> onnx.ModelProto:
    model = emitter(flavor, plan)(forest)
    if source.preprocessor is not None:
        from .pipeline import prepend_preprocessor

        model = prepend_preprocessor(source.preprocessor, model, n_features=int(source.preprocessor.n_features_in_))
        foreign = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})
        if flavor in TENSOR_FLAVORS and foreign:
            raise UnsupportedModelError(
                f"the pipeline's preprocessing converts to {', '.join(foreign)}, which onnxruntime's CUDA provider "
                "does not implement; the tensor flavor must be standard ONNX only (convert with --flavor tree)"
            )
        if flavor in TENSOR_FLAVORS:  # skl2onnx imports ai.onnx.ml even when no step uses it
            standard = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
            del model.opset_import[:]
            model.opset_import.extend(standard)
            onnx.checker.check_model(model, full_check=True)
    return model


def _emit_all(
    source: Source, forest: Forest, flavors: Sequence[str] | str, plan: tuning.TensorPlan | None
) -> tuple[dict, dict[str, str]]:
    """Emit the requested flavors. With ``"all"``, a flavor that cannot represent the model is skipped (and why);
    the CPU tensor graph is part of ``"all"`` when the plan has one."""
    wanted = flavor_names() if flavors == "all" else tuple(flavors)
    if flavors == "all" and (plan is None or plan.cpu.strategy is None):
        wanted = tuple(f for f in wanted if f != "tensor_cpu")
    models: dict[str, onnx.ModelProto] = {}
    skipped: dict[str, str] = {}
    for flavor in wanted:
        try:
            models[flavor] = emit(source, forest, flavor, plan)
        except UnsupportedModelError as exc:
            if flavors != "all" or flavor == "tree":
                raise
            skipped[flavor] = str(exc)
    return models, skipped


def convert(
    source_path: str | os.PathLike[str] | Any,
    *,
    out_dir: str | Path,
    name: str | None = None,
    flavors: Sequence[str] | str = "all",
    spec_path: str | Path | None = None,
    trust_pickle: bool = False,
    missing: float | None = None,
    n_random: int = 2000,
    seed: int = 0,
    reference: str | Path | None = None,
    tune: bool | None = None,
) -> Conversion:
    """Convert one model (a file, or an in-memory model); write artifacts only if every flavor passes parity.

    ``source_path``: a pickle or xgboost ``.json``/``.ubj`` file, or an in-memory xgboost
    ``Booster``, xgboost sklearn estimator or scikit-learn ``Pipeline`` ending in one (then
    ``name`` is required; it is read through the same allow-list as a file).

    ``reference``: data (Parquet, CSV, JSONL with the model's feature columns) to store a
    reference profile from, for drift monitoring (:mod:`m7_convert.profiles` says which
    profile is used without it).

    ``flavors``: ``"all"`` (every flavor that can represent the model: the tree flavor,
    the tensor flavor unless a Pipeline's preprocessing needs ai.onnx.ml operators, and the
    CPU tensor graph when it is faster), or a sequence of flavor names, each of which must
    succeed.

    ``tune``: how the CPU tensor graph is chosen (``m7_convert.tune``): None inherits the
    choice of an artifact converted from the same source (in ``out_dir`` or bundled), else
    uses the fixed rule; True measures on this machine; False uses the rule regardless.
    Nothing measured is written unless asked for or inherited, so conversion stays
    deterministic.

    Raises :class:`ParityError` (with the report of the worst rows) when a flavor disagrees
    with xgboost beyond ``|onnx - ref| <= 1e-5 * max(1, |ref|)``; nothing is written then.
    """
    out_dir = Path(out_dir)
    if isinstance(source_path, (str, os.PathLike)):
        source_path = Path(source_path)
        source = load_source(source_path, trust_pickle=trust_pickle, missing=missing)
    elif not name:
        raise ConvertError(f"converting an in-memory {type(source_path).__name__} needs name= (the artifact's name)")
    else:
        source = source_from_object(source_path, trust_pickle=trust_pickle, missing=missing)
        source_path = None
    spec, origin = resolve(source_path, name=name, spec_path=Path(spec_path) if spec_path else None, out_dir=out_dir)
    forest, features = build_forest(source, spec)
    name = name or (spec.name if spec else source_path.name.split(".")[0])
    task = task_of(source, forest)
    if spec and spec.task and spec.task != task:
        raise ConvertError(
            f"{name}: the {origin.kind} entry says task {spec.task!r}, the model is {task!r} ({source.model_class})"
        )

    probe_rows = probes(forest, n_random=n_random, seed=seed)
    wanted = flavor_names() if flavors == "all" else tuple(flavors)
    plan = None
    if any(f in TENSOR_FLAVORS for f in wanted):  # the tensor graphs' layouts and run sizes (m7_convert.tune)
        cpu_graph = "none" if "tensor_cpu" not in wanted else "optional" if flavors == "all" else "required"
        plan = tuning.plan(
            forest,
            name=name,
            source_sha256=source.sha256,
            out_dir=out_dir,
            tune=tune,
            cpu_graph=cpu_graph,
            tree_graph=lambda: emit_tree(forest).SerializeToString(),
            probe_rows=probe_rows.stacked()[0],
        )
    models, skipped = _emit_all(source, forest, flavors, plan)
    facts = tuning.flavor_facts(models, forest, plan)
    opsets = {f: graph.opsets_of(m) for f, m in models.items()}
    policy = spec.policy if spec else InputPolicy()
    first = models["tree"] if "tree" in models else next(iter(models.values()))
    profile, profile_note = profiles.choose(
        reference=Path(reference) if reference is not None else None,
        spec=spec,
        out_dir=out_dir,
        name=name,
        features=features,
        policy=policy,
        predict=lambda rows: onnx_predict(first.SerializeToString(), rows),
        prediction_of=prediction_of(task, forest.n_outputs),
    )
    draft = Manifest(
        name=name,
        task=task,
        features=features,
        flavors=flavor_entries(name, dict.fromkeys(models), opsets, facts),
        source=source_info(source, forest, task=task, out_dir=out_dir),
        parity=Parity(TOLERANCE_TEXT, REL_TOL, {}, {}, passed=False),
        description=spec.description if spec else "",
        output=OutputSpec(graph.OUTPUT, forest.objective.meaning, forest.n_outputs, forest.targets),
        input_name=graph.INPUT,
        missing=None if np.isnan(forest.missing) else float(forest.missing),
        skipped_flavors=skipped,
        policy=policy,
        policy_origin=spec.recorded_origin if spec else origin,
        split_ranges={}
        if source.preprocessor is not None
        else {k: SplitRange(**v) for k, v in forest.split_ranges().items()},
        categories={k: v for k, v in forest.category_values.items() if k in features},
        converter=library_versions(),
        reference=profile,
    )
    contract = draft.contract_text
    models = {flavor: stamp_contract(m, contract) for flavor, m in models.items()}
    blobs = {flavor: m.SerializeToString() for flavor, m in models.items()}
    reports = {}
    for flavor, data in blobs.items():
        if source.preprocessor is None:
            reports[flavor] = verify_graph(source, forest, flavor, data, probe_rows=probe_rows)
        else:
            reports[flavor] = verify_pipeline(
                source, forest, flavor, models[flavor], data, probe_rows, n_random, seed, plan
            )
    failed = [f for f, r in reports.items() if not r.passed]
    if failed:
        raise ParityError(failure_text(name, reports, failed), {f: r.as_json() for f, r in reports.items()})

    manifest = replace(
        draft,
        flavors=flavor_entries(name, blobs, opsets, facts),
        parity=Parity(
            TOLERANCE_TEXT,
            REL_TOL,
            probe_rows.counts(),
            {f: r.typed() for f, r in reports.items()},
            passed=True,
        ),
    )
    if manifest.contract_text != contract:  # the stamp and the manifest come from one Manifest: never differ
        raise AssertionError("the manifest's contract changed after stamping")
    paths = write_artifacts(out_dir, blobs, manifest)
    return Conversion(name, paths, manifest, reports, skipped, origin, profile_note, plan)


def verify_pipeline(
    source: Source,
    forest: Forest,
    flavor: str,
    model: onnx.ModelProto,
    data: bytes,
    probe_rows: Any,
    n_random: int,
    seed: int,
    plan: tuning.TensorPlan | None = None,
) -> FlavorReport:
    """Trees on edge rows in the booster's space, then the whole pipeline on input-space rows."""
    from .pipeline import input_space_probes

    if plan is None and flavor == "tensor_cpu":  # re-verifying: every strategy gives the same bits
        trees_only = emit_tensor(forest, summation="cumsum").SerializeToString()
    else:
        trees_only = emitter(flavor, plan)(forest).SerializeToString()
    report = verify_graph(source, forest, flavor, trees_only, probe_rows=probe_rows)
    whole = verify_graph(
        source, forest, flavor, data, probe_rows=input_space_probes(source, n_random, seed), composed=True
    )
    report.checks["pipeline_onnx_vs_xgboost"] = whole.checks["onnx_vs_xgboost"]
    return report


def failure_text(name: str, reports: dict[str, FlavorReport], failed: list[str]) -> str:
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

"""The scoring plan: what to compute, decided once from the manifests and the input's columns.

Built and validated before the first row is read, so a missing column or an unknown model
fails in a second with one message instead of an hour into a run. A model whose feature is
produced by another scored model (``input_policy.upstream`` in its manifest, declared in
``models/spec.toml``) runs after it and takes that output when the input lacks the column.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m7_runtime.artifact import Manifest
from m7_runtime.errors import M7Error
from m7_runtime.locate import resolve_model

from .deps import pyarrow
from .inputs import InputSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedModel:
    name: str
    manifest: Path
    outputs: tuple[str, ...]  # NAME; NAME_0..NAME_{k-1} for k class probabilities; NAME_TARGET for named targets
    fed: tuple[tuple[str, str], ...] = ()  # (feature, model whose output feeds it)


@dataclass(frozen=True)
class ScoringPlan:
    """What to compute. Plain data (paths and names), so it pickles cheaply to Dask workers,
    which load the models themselves."""

    models: tuple[PlannedModel, ...]  # in run order: producers before the models they feed
    keep: tuple[str, ...]  # input columns copied to the output
    numeric: tuple[str, ...]  # input columns read as model features
    categorical: tuple[str, ...]  # input columns read as one-hot inputs (strings)
    outputs: tuple[str, ...]  # output columns: keep, then each model's in the order asked
    notes: tuple[str, ...] = field(default=(), compare=False)  # zero-filled or defaulted inputs, for the user

    @property
    def read(self) -> tuple[str, ...]:
        """Input columns to read (kept and needed), in first-seen order."""
        return tuple(dict.fromkeys((*self.keep, *self.numeric, *self.categorical)))


def _manifests(
    models: Sequence[str | os.PathLike[str]], model_dir: str | os.PathLike[str] | None
) -> dict[str, Manifest]:
    if not models:
        raise M7Error("no model given; name at least one (e.g. xgb_recovery_model) or a manifest path")
    manifests: dict[str, Manifest] = {}
    for arg in models:
        m = Manifest.read(resolve_model(arg, folder=model_dir))
        if m.name in manifests:
            raise M7Error(f"model {m.name!r} is given twice ({manifests[m.name].path} and {m.path})")
        manifests[m.name] = m
    return manifests


def make_plan(
    models: Sequence[str | os.PathLike[str]],
    *,
    columns: Sequence[str],
    keep: Sequence[str] | None = None,
    model_dir: str | os.PathLike[str] | None = None,
) -> ScoringPlan:
    """Resolve and order the models, and check the input has what each needs.

    Raises one :class:`M7Error` naming every missing column of every model (and how it could
    be supplied), so a backtest fails before reading its first row rather than in its last.
    """
    manifests = _manifests(models, model_dir)
    present = set(columns)
    producers = {f: p for m in manifests.values() for f, p in m.policy.upstream.items()}
    problems: list[str] = []
    notes: list[str] = []
    numeric: list[str] = []
    categorical: list[str] = []
    fed: dict[str, list[tuple[str, str]]] = {}
    for m in manifests.values():
        policy = m.policy
        derived = policy.derived()
        missing: list[str] = []
        hints: list[str] = []
        zeroed: list[str] = []
        fed[m.name] = []
        for f in m.features:
            if f in derived:
                continue
            if f in present:
                numeric.append(f)
                continue
            producer = policy.upstream.get(f)
            if producer in manifests:
                if manifests[producer].n_outputs != 1:
                    raise M7Error(
                        f"{m.name}: feature {f!r} is declared to come from {producer!r}, which outputs "
                        f"{manifests[producer].n_outputs} values per row, not one"
                    )
                fed[m.name].append((f, producer))
                continue
            if producer is not None:
                hints.append(f"score {producer} in the same pass to compute {f!r}")
            elif producers.get(f) in manifests and producers[f] != m.name:
                hints.append(
                    f"{producers[f]} produces {f!r} for other models, but {m.name}'s spec declares no "
                    f"upstream for it; add it under [models.{m.name}.upstream] if that is what it means"
                )
            (missing if policy.on_missing == "reject" else zeroed).append(f)
        if missing:
            problems.append(f"{m.name}: {missing}" + (f" ({'; '.join(hints)})" if hints else ""))
        if zeroed:
            notes.append(
                f"{m.name}: the input has no column(s) {zeroed}; filled with 0.0 per its policy"
                + (f" ({'; '.join(hints)})" if hints else "")
            )
        for o in policy.one_hot:
            if o.input in present:
                categorical.append(o.input)
                shadowed = [c for c in o.columns if c in present]
                if shadowed:
                    notes.append(f"{m.name}: input columns {shadowed} are ignored; they are derived from {o.input!r}")
            else:
                notes.append(f"{m.name}: the input has no {o.input!r} column; every row takes {o.default!r}")
    if problems:
        shown = list(columns)[:40]
        more = f" ... (+{len(columns) - 40})" if len(columns) > 40 else ""
        raise M7Error(
            "the input lacks column(s) the models need; their policy rejects rows without them:\n  "
            + "\n  ".join(problems)
            + f"\ninput columns: {shown}{more}"
        )
    order = _run_order(list(manifests), {n: [p for _, p in fed[n]] for n in manifests})
    kept = list(columns) if keep is None else list(dict.fromkeys(keep))
    unknown = [c for c in kept if c not in present]
    if unknown:
        raise M7Error(f"--keep names column(s) {unknown} that the input does not have; it has {list(columns)}")
    planned = {}
    for name, m in manifests.items():
        names = m.output.targets or range(m.n_outputs)  # several targets by name, class probabilities by index
        outputs = (name,) if m.n_outputs == 1 else tuple(f"{name}_{t}" for t in names)
        clash = [c for c in outputs if c in kept]
        if clash:
            raise M7Error(
                f"the input already has column(s) {clash}, the output name of model {name!r} "
                "(is it an already scored file?); drop them with --keep"
            )
        planned[name] = PlannedModel(name, m.path, outputs, tuple(fed[name]))
    for n in notes:
        log.warning(n)
    return ScoringPlan(
        models=tuple(planned[n] for n in order),
        keep=tuple(kept),
        numeric=tuple(dict.fromkeys(numeric)),
        categorical=tuple(dict.fromkeys(categorical)),
        outputs=tuple(kept) + tuple(c for m in manifests for c in planned[m].outputs),
        notes=tuple(notes),
    )


def _run_order(names: list[str], needs: Mapping[str, list[str]]) -> list[str]:
    """Producers before consumers; otherwise the order given. Refuses a cycle, naming it."""
    order: list[str] = []
    done: set[str] = set()
    remaining = list(names)
    while remaining:
        ready = [n for n in remaining if all(p in done for p in needs[n])]
        if not ready:
            raise M7Error(
                f"the models' upstream declarations form a cycle among {remaining}; "
                "fix input_policy.upstream in their specs"
            )
        order.append(ready[0])
        done.add(ready[0])
        remaining.remove(ready[0])
    return order


# ---- column types ---------------------------------------------------------------------------


def _value_type(t: Any) -> Any:
    return t.value_type if pyarrow().types.is_dictionary(t) else t


def _is_string_type(t: Any) -> bool:
    types = pyarrow().types
    t = _value_type(t)
    return types.is_string(t) or types.is_large_string(t) or types.is_null(t)


def _is_numeric_type(t: Any) -> bool:
    types = pyarrow().types
    t = _value_type(t)
    return types.is_integer(t) or types.is_floating(t) or types.is_boolean(t) or types.is_decimal(t) or types.is_null(t)


def check_types(plan: ScoringPlan, schema: Any, *, where: Path | str) -> None:
    """Feature columns must hold numbers, one-hot inputs strings: checked on the schema, up front."""
    bad = [f"{c!r} is {schema.field(c).type}" for c in plan.numeric if not _is_numeric_type(schema.field(c).type)]
    bad += [
        f"{c!r} is {schema.field(c).type} (a one-hot input must be strings)"
        for c in plan.categorical
        if not _is_string_type(schema.field(c).type)
    ]
    if bad:
        raise M7Error(f"{where}: model input column(s) of the wrong type: {'; '.join(bad)}; features must be numbers")


def read_names(plan: ScoringPlan, source: InputSource) -> tuple[str, ...]:
    """The columns to read: the plan's, or just the first when it needs none (to count rows)."""
    return plan.read or source.columns[:1]


def read_schema(plan: ScoringPlan, source: InputSource) -> Any:
    """The types the input is read with: features as float64 (never an int type guessed from
    the first rows of a text file), one-hot inputs as strings, null-only columns as strings.
    """
    pa = pyarrow()
    fields = []
    for name in read_names(plan, source):
        t = source.schema.field(name).type
        if source.format != "parquet":
            if name in plan.numeric and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
                t = pa.float64()
            elif pa.types.is_null(t):
                t = pa.string()
        fields.append(pa.field(name, t))
    return pa.schema(fields)


def output_schema(plan: ScoringPlan, input_schema: Any) -> Any:
    """The output's Arrow schema: kept input fields, then float32 predictions."""
    pa = pyarrow()
    fields = [input_schema.field(c) for c in plan.keep]
    fields += [pa.field(c, pa.float32()) for c in plan.outputs[len(plan.keep) :]]
    return pa.schema(fields)

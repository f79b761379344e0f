"""Monitoring over data files: reference rows for a profile, drift of a file, A/B diff of two versions.

Files are read with the batch-scoring readers (Parquet file or folder, CSV, JSON Lines;
pyarrow, the ``batch`` extra), in bounded batches, and each model sees its rows exactly as
``Model.score`` builds them: its caller policy (zero-fill or reject, the one-hot from its
string column), upstream models feeding their outputs forward, the clamp. So
:func:`drift_file` gives the numbers ``model.drift()`` gives after ``model.score`` of the
same rows, and :func:`diff_files` the numbers ``compare_outputs`` gives on the two
models' predictions (plus a bounded sample of them, for plots).

The readers are used through one adapter, :class:`_Reader`: this is the only module that
knows where they live.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import MANIFEST_SUFFIX, Manifest
from .compare import Comparison, RunningComparison, default_threshold, feature_difference
from .drift import DriftReport, LiveProfile, no_reference_error
from .errors import M7Error
from .model import Model, load
from .observe import range_bounds
from .policy import InputPolicy
from .scoring import inputs as _inputs
from .scoring import plan as _plan_mod
from .scoring import read as _read
from .scoring import score as _score
from .scoring.api import DEFAULT_BATCH_ROWS

#: predictions kept per pair for the diff plot (the first rows of the input)
SAMPLE_ROWS = 20_000
ID_COLUMNS = ("id", "row_id", "snapshot_id")


# ---- reading ---------------------------------------------------------------------------------------


class _Reader:
    """An input file and the columns to read from it, as named float64/str numpy columns per batch."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.source = _inputs.inspect_input(path)
        self.path = self.source.path

    @property
    def columns(self) -> tuple[str, ...]:
        return self.source.columns

    def batches(
        self, numeric: Sequence[str], categorical: Sequence[str] = (), keep: Sequence[str] = (), *, batch_rows: int
    ) -> Iterator[tuple[int, dict[str, np.ndarray], Any]]:
        """``(rows, {column: values}, kept pyarrow columns)`` per batch; types checked before the first row."""
        plan = _plan_mod.ScoringPlan(
            models=(), keep=tuple(keep), numeric=tuple(numeric), categorical=tuple(categorical), outputs=()
        )
        _plan_mod.check_types(plan, self.source.schema, where=self.path)
        for table in _read.iter_batches(self.source, plan, batch_rows=batch_rows):
            cols: dict[str, np.ndarray] = {c: _score.numeric_column(table.column(c)) for c in numeric}
            cols.update({c: _score.string_column(table.column(c)) for c in categorical})
            yield table.num_rows, cols, [table.column(c) for c in keep]


def reference_rows(
    path: str | os.PathLike[str],
    features: Sequence[str],
    policy: InputPolicy,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> np.ndarray:
    """Reference data as float32 rows in model order after the caller policy, for a profile.

    Stricter than scoring: every feature must be a column (a profile of zero-filled
    columns would describe nothing), a one-hot feature either its string input column or
    the one-hot columns themselves. Feature columns must hold numbers. Refuses an empty file.
    """
    reader = _Reader(path)
    have = set(reader.columns)
    derived = policy.derived()
    numeric = [f for f in features if f not in derived and f in have]
    missing = [f for f in features if f not in derived and f not in have]
    one_hot = []
    for o in policy.one_hot:
        mine = [c for c in o.columns if c in features]
        if o.input in have:
            one_hot.append(o)
        elif all(c in have for c in mine):
            numeric += mine  # given as columns: read as they are
        else:
            missing.append(f"{o.input} (or its one-hot columns {mine})")
    if missing:
        raise M7Error(
            f"reference data {reader.path} lacks column(s) {missing}; a profile needs every feature of the model "
            f"(its columns: {list(reader.columns)[:40]})"
        )
    rule = replace(policy, one_hot=tuple(one_hot), on_missing="reject")
    parts = [
        rule.columns(features, cols, n)
        for n, cols, _ in reader.batches(numeric, [o.input for o in one_hot], batch_rows=batch_rows)
    ]
    rows = np.concatenate(parts) if parts else np.empty((0, len(features)), np.float32)
    if not len(rows):
        raise M7Error(f"reference data {reader.path} has no rows")
    return rows


# ---- models from targets -----------------------------------------------------------------------------


def manifests_in(target: str | os.PathLike[str]) -> list[Path]:
    """A manifest (or an ONNX file beside one) as given, or every manifest in a folder."""
    p = Path(target)
    if p.is_dir():
        found = sorted(p.glob(f"*{MANIFEST_SUFFIX}"))
        if not found:
            raise M7Error(f"{p} holds no *{MANIFEST_SUFFIX}")
        return found
    if not p.exists():
        raise M7Error(f"{p} does not exist")
    return [p]


def _score_chunk(
    plan: _plan_mod.ScoringPlan, models: Mapping[str, Model], n: int, cols: Mapping[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each model's rows (after its policy) and outputs (after its clamp), in run order: ``Model.score``,
    with upstream outputs fed forward as :func:`m7_runtime.scoring.score.predict_columns` feeds them."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for step in plan.models:
        table = dict(cols)
        for feature, producer in step.fed:
            table[feature] = out[producer][1]
        model = models[step.name]
        rows = model.policy.columns(model.feature_names, table, n)
        out[step.name] = (rows, model.policy.clamp(model.predict(rows)))
    return out


def _plan(reader: _Reader, paths: Sequence[Path]) -> tuple[_plan_mod.ScoringPlan, dict[str, Model]]:
    plan = _plan_mod.make_plan([str(p) for p in paths], columns=reader.columns, keep=[])
    return plan, {m.name: load(m.manifest, provider="cpu") for m in plan.models}


# ---- drift -------------------------------------------------------------------------------------------


def drift_file(
    targets: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    input: str | os.PathLike[str],
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> list[DriftReport]:
    """The drift of a file of live snapshots against each model's reference profile.

    ``targets``: manifests and/or folders; in a folder, models without a profile are left
    out (an error if none has one); a manifest named explicitly must have one. Every row is
    counted (no sampling), so the PSI equals ``model.drift()`` after ``model.score`` of
    these rows wherever that counted every row too (batches of at most a few thousand rows).
    ``out_of_range`` counts every row of the file too (a running model counts its single
    ``predict_one`` rows only: a backtest would pay for the comparison on every cell).
    """
    given = [targets] if isinstance(targets, (str, os.PathLike)) else list(targets)
    paths: list[Path] = []
    for t in given:
        found = manifests_in(t)
        for p in found:
            m = Manifest.read(p)
            if m.reference is not None:
                paths.append(p)
            elif not Path(t).is_dir():
                raise no_reference_error(m.name, m.path)
    if not paths:
        where = ", ".join(map(str, given))
        raise M7Error(f"no model in {where} has a reference profile; {no_reference_error('a model', None)}")
    reader = _Reader(input)
    plan, models = _plan(reader, paths)
    profiles = {
        name: LiveProfile(model.manifest.reference, model.feature_names, name=name, stride=1)  # type: ignore[arg-type]
        for name, model in models.items()
    }
    bounds = {name: range_bounds(m.feature_names, m.manifest.split_ranges) for name, m in models.items()}
    outside = {name: np.zeros(len(m.feature_names), np.int64) for name, m in models.items()}
    for n, cols, _ in reader.batches(plan.numeric, plan.categorical, batch_rows=batch_rows):
        for name, (rows, y) in _score_chunk(plan, models, n, cols).items():
            profiles[name].observe(rows, y)
            lo, hi = bounds[name]
            outside[name] += np.count_nonzero((rows < lo) | (rows > hi), axis=0)
    return [
        profiles[m.name].report(
            out_of_range={f: int(c) for f, c in zip(models[m.name].feature_names, outside[m.name], strict=True) if c}
        )
        for m in plan.models
    ]


# ---- diff --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffResult:
    """One pair of model versions compared on the same rows (``old`` and ``new`` are their manifests)."""

    name: str
    old: Path
    new: Path
    comparison: Comparison
    sample_old: np.ndarray  # the first SAMPLE_ROWS predictions of each, for plots
    sample_new: np.ndarray

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "old": str(self.old), "new": str(self.new), **self.comparison.to_json()}


def pairs(old: str | os.PathLike[str], new: str | os.PathLike[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Manifest pairs to compare: two manifests, or two folders matched by model name (and notes on the rest)."""
    a, b = manifests_in(old), manifests_in(new)
    if not Path(old).is_dir() and not Path(new).is_dir():
        return [(a[0], b[0])], []
    if Path(old).is_dir() != Path(new).is_dir():
        raise M7Error("give two manifests or two folders of artifacts")
    by_a = {Manifest.read(p).name: p for p in a}
    by_b = {Manifest.read(p).name: p for p in b}
    common = sorted(set(by_a) & set(by_b))
    notes = [f"{n}: only in {old}" for n in sorted(set(by_a) - set(by_b))]
    notes += [f"{n}: only in {new}" for n in sorted(set(by_b) - set(by_a))]
    if not common:
        raise M7Error(f"{old} and {new} have no model name in common ({sorted(by_a)} vs {sorted(by_b)})")
    return [(by_a[n], by_b[n]) for n in common], notes


def diff_files(
    old: str | os.PathLike[str],
    new: str | os.PathLike[str],
    *,
    input: str | os.PathLike[str],
    threshold: float | None = None,
    id_column: str | None = None,
    top: int = 10,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> tuple[list[DiffResult], list[str]]:
    """Compare model versions on the rows of ``input``; returns the results and notes.

    Each side is scored as ``m7onnx score`` would score it (its own policy, clamp and
    upstream models), on the same rows. Pairs must have the same features in the same
    order. ``threshold``: where decisions flip (default 0.5 for binary classifiers, arg-max
    for multiclass, none for regressors). ``id_column`` (default: a column named id,
    row_id or snapshot_id, if any) names the rows that moved most.
    """
    matched, notes = pairs(old, new)
    olds, news = [Manifest.read(p) for p, _ in matched], [Manifest.read(p) for _, p in matched]
    for a, b in zip(olds, news, strict=True):
        why = feature_difference(a.features, b.features)
        if why is not None:
            raise M7Error(f"cannot compare {a.name} ({a.path}) with {b.name} ({b.path}): {why}")
        if a.n_outputs != b.n_outputs:
            raise M7Error(f"cannot compare {a.name}: {a.n_outputs} vs {b.n_outputs} outputs per row")
    reader = _Reader(input)
    ids = id_column or next((c for c in ID_COLUMNS if c in reader.columns), None)
    if ids is not None and ids not in reader.columns:
        raise M7Error(f"--id {ids!r} is not a column of {reader.path}")
    plan_a, models_a = _plan(reader, [p for p, _ in matched])
    plan_b, models_b = _plan(reader, [p for _, p in matched])
    running = {
        a.name: RunningComparison(threshold=default_threshold(a.task) if threshold is None else threshold, top=top)
        for a in olds
    }
    samples: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {a.name: ([], []) for a in olds}
    numeric = list(dict.fromkeys((*plan_a.numeric, *plan_b.numeric)))
    categorical = list(dict.fromkeys((*plan_a.categorical, *plan_b.categorical)))
    seen = 0
    for n, cols, kept in reader.batches(numeric, categorical, [ids] if ids else [], batch_rows=batch_rows):
        side_a, side_b = _score_chunk(plan_a, models_a, n, cols), _score_chunk(plan_b, models_b, n, cols)
        labels = kept[0].to_numpy(zero_copy_only=False) if ids else np.arange(seen, seen + n)
        for a, b in zip(olds, news, strict=True):
            ya, yb = side_a[a.name][1], side_b[b.name][1]
            running[a.name].add(ya, yb, ids=labels)
            if seen < SAMPLE_ROWS:
                samples[a.name][0].append(ya[: SAMPLE_ROWS - seen])
                samples[a.name][1].append(yb[: SAMPLE_ROWS - seen])
        seen += n
    results = []
    for (pa, pb), a in zip(matched, olds, strict=True):
        sa, sb = samples[a.name]
        results.append(
            DiffResult(
                a.name,
                pa,
                pb,
                running[a.name].result(),
                np.concatenate(sa) if sa else np.empty(0, np.float32),
                np.concatenate(sb) if sb else np.empty(0, np.float32),
            )
        )
    return results, notes

"""Stage 4, verify: the converted graph must predict what the source model predicts.

Probe rows come from the IR itself: random rows spread over every feature's split range,
rows with NaN (and the model's missing sentinel), and rows sitting exactly on every split
threshold and one float32 ulp either side (where a ``<`` versus ``<=`` or a float64
threshold would flip a branch). Three comparisons name the stage that broke:

* ``ir_vs_xgboost``:   reference evaluator vs xgboost   -> parsing
* ``onnx_vs_ir``:      ONNX vs reference evaluator      -> emitting
* ``onnx_vs_xgboost``: ONNX vs xgboost                  -> the claim written to the manifest
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from m7_runtime.fields import Fields
from m7_runtime.parity import REL_TOL, FlavorParity, check_from_json

from . import reference
from .ir import Forest
from .load import Source


@dataclass(frozen=True)
class Probes:
    """Named sets of float32 rows in the forest's feature space."""

    sets: dict[str, np.ndarray]

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """All rows, and the name of the set each row came from."""
        rows = np.concatenate(list(self.sets.values())).astype(np.float32)
        labels = np.concatenate([np.full(len(v), k) for k, v in self.sets.items()])
        return rows, labels

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.sets.items()}


def edge_rows(forest: Forest, *, seed: int = 0) -> np.ndarray:
    """Every threshold, and one float32 ulp below and above it, in every feature's column.

    Column ``f`` cycles through its own edge values (shuffled), so the row count is three
    times the largest per-feature threshold count, not the sum over features.
    """
    rng = np.random.default_rng(seed)
    per_feature = []
    for th in forest.thresholds():
        if len(th) == 0:
            per_feature.append(np.zeros(1, np.float32))
            continue
        vals = np.concatenate([th, np.nextafter(th, np.float32(-np.inf)), np.nextafter(th, np.float32(np.inf))])
        per_feature.append(rng.permutation(vals.astype(np.float32)))
    n = max(len(v) for v in per_feature)
    return np.stack([np.resize(v, n) for v in per_feature], axis=1).astype(np.float32)


def random_rows(forest: Forest, n: int, *, seed: int = 0) -> np.ndarray:
    """Rows spread a little beyond each feature's split range, a fifth of cells on a threshold."""
    rng = np.random.default_rng(seed)
    cols = []
    for th in forest.thresholds():
        if len(th) == 0:
            cols.append(rng.normal(0, 1, n))
            continue
        lo, hi = float(th[0]), float(th[-1])
        pad = 0.25 * (hi - lo) + 1e-3 * max(1.0, abs(lo), abs(hi))
        col = rng.uniform(lo - pad, hi + pad, n)
        on = rng.random(n) < 0.2
        col[on] = rng.choice(th, on.sum())
        cols.append(col)
    return np.stack(cols, axis=1).astype(np.float32)


def nan_rows(forest: Forest, base: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Copies of ``base`` with missing cells (NaN, and the sentinel if the model has one)."""
    rng = np.random.default_rng(seed + 1)
    rows = base.copy()
    rows[rng.random(rows.shape) < 0.3] = np.nan
    if not math.isnan(forest.missing):
        rows[rng.random(rows.shape) < 0.15] = np.float32(forest.missing)
    extremes = np.array([[np.nan], [1e30], [-1e30]], np.float32).repeat(forest.n_features, axis=1)
    return np.concatenate([rows, extremes])


def probes(forest: Forest, *, n_random: int = 2000, seed: int = 0) -> Probes:
    rand = random_rows(forest, n_random, seed=seed)
    edge = edge_rows(forest, seed=seed)
    edge_nan = nan_rows(forest, edge[: min(len(edge), 500)], seed=seed)
    return Probes(
        {
            "random": rand,
            "nan": nan_rows(forest, rand[: n_random // 2], seed=seed + 2),
            "edge": edge,
            "edge_nan": edge_nan,
        }
    )


def compare(pred: np.ndarray, ref: np.ndarray, labels: np.ndarray, *, worst: int = 5) -> dict[str, Any]:
    """Max absolute and relative error under the project tolerance, and the worst rows."""
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape:
        return {"pass": False, "error": f"shape {pred.shape} vs reference {ref.shape}"}
    same = (pred == ref) | (np.isnan(pred) & np.isnan(ref))
    with np.errstate(invalid="ignore"):
        abs_err = np.where(same, 0.0, np.abs(pred - ref))
    abs_err = np.nan_to_num(abs_err, nan=np.inf)
    rel_err = abs_err / np.maximum(1.0, np.nan_to_num(np.abs(ref), nan=1.0, posinf=1.0))
    row_err = rel_err.reshape(len(rel_err), -1).max(axis=1) if len(rel_err) else rel_err
    order = np.argsort(-row_err, kind="stable")[:worst]
    return {
        "pass": bool(np.all(rel_err <= REL_TOL)),
        "max_abs_error": float(abs_err.max(initial=0.0)),
        "max_rel_error": float(rel_err.max(initial=0.0)),
        "failing_rows": int(np.count_nonzero(row_err > REL_TOL)),
        "worst": [
            {"row": int(i), "set": str(labels[i]), "onnx": np.atleast_1d(pred[i]).tolist(),
             "reference": np.atleast_1d(ref[i]).tolist(), "rel_error": float(row_err[i])}
            for i in order if row_err[i] > 0
        ],
    }  # fmt: skip


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@lru_cache(maxsize=32)
def _booster_from(doc_json: str) -> Any:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(doc_json.encode()))
    return booster


def booster(source: Source) -> Any:
    """The installed xgboost's Booster for the source's model document (cached)."""
    return _booster_from(json.dumps(_jsonable(source.document)))


def xgboost_predict(source: Source, X: np.ndarray, *, transformed: bool = False) -> np.ndarray:
    """What the source object's predict/predict_proba gives (P(class 1) for a binary classifier).

    ``transformed=True``: ``X`` is already in the booster's feature space (after a
    Pipeline's preprocessing steps).
    """
    if source.preprocessor is not None and not transformed:
        X = np.asarray(source.preprocessor.transform(X), dtype=np.float32)
    out = booster(source).inplace_predict(
        np.ascontiguousarray(X, dtype=np.float32),
        iteration_range=source.iteration_range or (0, 0),
        missing=source.missing,
        validate_features=False,
    )
    return np.asarray(out, dtype=np.float32)


def onnx_predict(model_bytes: bytes, X: np.ndarray) -> np.ndarray:
    """onnxruntime on the CPU with the runtime's session options, as the runtime runs every graph."""
    from m7_runtime.sessions import cpu_session

    sess = cpu_session(model_bytes)
    return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(X, dtype=np.float32)})[0]


@dataclass
class FlavorReport:
    flavor: str
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c["pass"] for c in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {"pass": self.passed, **self.checks}

    def typed(self) -> FlavorParity:
        """The report as the manifest schema records it."""
        checks = {
            k: check_from_json(Fields(_jsonable(v), f"{self.flavor} parity", f"{k}.")) for k, v in self.checks.items()
        }
        return FlavorParity(passed=self.passed, checks=checks)


def verify_graph(
    source: Source,
    forest: Forest,
    flavor: str,
    model_bytes: bytes,
    *,
    probe_rows: Probes,
    composed: bool = False,
) -> FlavorReport:
    """Compare one ONNX graph with xgboost and the reference evaluator on the probe rows.

    ``composed``: the graph includes a Pipeline's preprocessing; then the probes are in
    the input space and the IR comparisons (which live in the booster's space) are skipped.
    """
    X, labels = probe_rows.stacked()
    ref = xgboost_predict(source, X, transformed=not composed)
    got = onnx_predict(model_bytes, X)
    report = FlavorReport(flavor)
    if not composed:
        ir = reference.predict(forest, X)
        report.checks["ir_vs_xgboost"] = compare(ir, ref, labels)
        report.checks["onnx_vs_ir"] = compare(got, ir, labels)
    report.checks["onnx_vs_xgboost"] = compare(got, ref, labels)
    return report

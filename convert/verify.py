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
from .ir import CATEGORY_LIMIT, Forest
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


def category_probe_values(sets: list[np.ndarray]) -> np.ndarray:
    """Where a categorical feature's values can go: each code, codes in no set, non-integer, invalid.

    Every code the sets mention and the codes between (or a sample when there are many),
    each code plus 0.5 and one float32 ulp below the next integer (still that category),
    one ulp below each code (the category before it; below 0: negative, invalid), unseen
    codes past the largest, negative values, ``-0.0`` (category 0), and the last valid
    code ``2**24 - 1`` and the first invalid one ``2**24``.
    """
    codes = np.unique(np.concatenate(sets)).astype(np.float64)
    codes = codes[codes < CATEGORY_LIMIT]
    k = int(codes.max()) + 1 if len(codes) else 0
    between = np.arange(k) if k <= 512 else np.linspace(0, k - 1, 512).round()
    base = np.unique(np.concatenate([codes, between])).astype(np.float32)
    up = np.float32(np.inf)
    values = [
        base,
        base + np.float32(0.5),
        np.nextafter(base + np.float32(1), -up),
        np.nextafter(base, -up),
        np.array([k, k + 1, k + 31, k + 32.5, -1, -0.5, -0.0, CATEGORY_LIMIT - 1, CATEGORY_LIMIT], np.float32),
    ]
    return np.unique(np.concatenate(values).astype(np.float32))


def edge_values(forest: Forest) -> list[np.ndarray]:
    """Per feature, the values where a split decides: thresholds ±1 ulp, or :func:`category_probe_values`."""
    out = []
    for th, sets in zip(forest.thresholds(), forest.category_sets(), strict=True):
        vals = [th, np.nextafter(th, np.float32(-np.inf)), np.nextafter(th, np.float32(np.inf))] if len(th) else []
        if sets:
            vals.append(category_probe_values(sets))
        out.append(np.concatenate(vals).astype(np.float32) if vals else np.empty(0, np.float32))
    return out


def edge_rows(forest: Forest, *, seed: int = 0) -> np.ndarray:
    """Every threshold, and one float32 ulp below and above it, in every feature's column.

    Column ``f`` cycles through its own edge values (shuffled), so the row count is three
    times the largest per-feature threshold count, not the sum over features. A
    categorical column cycles through :func:`category_probe_values`.
    """
    rng = np.random.default_rng(seed)
    per_feature = [rng.permutation(v) if len(v) else np.zeros(1, np.float32) for v in edge_values(forest)]
    n = max(len(v) for v in per_feature)
    return np.stack([np.resize(v, n) for v in per_feature], axis=1).astype(np.float32)


def random_rows(forest: Forest, n: int, *, seed: int = 0) -> np.ndarray:
    """Rows spread a little beyond each feature's split range, a fifth of cells on a threshold.

    A categorical column draws codes from -1 to a few past the largest, a fifth of them
    not integers. A linear model's columns are spread over magnitudes (0.01 to 100), so
    float32 rounding of its products and sums is exercised.
    """
    rng = np.random.default_rng(seed)
    cols = []
    for th, sets in zip(forest.thresholds(), forest.category_sets(), strict=True):
        if sets:
            k = int(max(int(s.max()) for s in sets)) + 1
            col = rng.integers(-1, k + 3, n).astype(np.float64)
            frac = rng.random(n) < 0.2
            col[frac] += rng.random(frac.sum())
            cols.append(col)
        elif not np.isfinite(th).any():  # no split, or only at ±inf
            scale = 10.0 ** rng.integers(-2, 3, n) if forest.linear is not None else 1.0
            col = rng.normal(0, 1, n) * scale
            on = rng.random(n) < 0.2
            if len(th):
                col[on] = rng.choice(th, on.sum())
            cols.append(col)
        else:
            finite = th[np.isfinite(th)]
            lo, hi = float(finite[0]), float(finite[-1])
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


def inf_rows(forest: Forest, base: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Copies of ``base`` with +inf and -inf cells, and rows of each alone."""
    rng = np.random.default_rng(seed + 3)
    rows = base.copy()
    draw = rng.random(rows.shape)
    rows[draw < 0.15] = np.inf
    rows[(draw >= 0.15) & (draw < 0.3)] = -np.inf
    alone = np.array([[np.inf], [-np.inf]], np.float32).repeat(forest.n_features, axis=1)
    return np.concatenate([rows, alone])


def accepts_inf(forest: Forest) -> bool:
    """xgboost predicts ±inf with trees (``inplace_predict``); a gblinear model needs a DMatrix, which refuses inf."""
    return forest.linear is None


def probes(forest: Forest, *, n_random: int = 2000, seed: int = 0) -> Probes:
    rand = random_rows(forest, n_random, seed=seed)
    edge = edge_rows(forest, seed=seed)
    edge_nan = nan_rows(forest, edge[: min(len(edge), 500)], seed=seed)
    sets = {
        "random": rand,
        "nan": nan_rows(forest, rand[: n_random // 2], seed=seed + 2),
        "edge": edge,
        "edge_nan": edge_nan,
    }
    if accepts_inf(forest):
        sets["inf"] = inf_rows(forest, edge[: min(len(edge), 300)], seed=seed)
    return Probes(sets)


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
    Pipeline's preprocessing steps). A gblinear booster has no ``inplace_predict``; it
    predicts through a DMatrix, as its wrappers do.
    """
    if source.preprocessor is not None and not transformed:
        X = source.preprocessor.transform(_input_frame(source.preprocessor, X))
    sparse = hasattr(X, "tocsr")  # a sparse output: xgboost reads an unstored entry as missing
    X = X.tocsr().astype(np.float32) if sparse else np.ascontiguousarray(X, dtype=np.float32)
    bst = booster(source)
    rounds = source.iteration_range or (0, 0)
    if source.document["learner"]["gradient_booster"].get("name") == "gblinear":
        import xgboost as xgb

        out = bst.predict(xgb.DMatrix(X, missing=source.missing), validate_features=False)
    else:
        out = bst.inplace_predict(X, iteration_range=rounds, missing=source.missing, validate_features=False)
    return np.asarray(out, dtype=np.float32)


def _input_frame(preprocessor: Any, X: np.ndarray) -> Any:
    """Rows as the fitted preprocessor expects them: a DataFrame when it was fitted on named columns."""
    names = getattr(preprocessor, "feature_names_in_", None)
    if names is None:
        return X
    import pandas as pd

    return pd.DataFrame(np.asarray(X, dtype=np.float32), columns=list(names))


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

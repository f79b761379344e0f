"""A zoo of small, real XGBoost models: every objective, booster and wrapper the converter claims.

Each case trains a real model (seconds in total), saves it the way a user would (joblib,
pickle, native JSON/UBJ), and predicts with the *source object itself*: ``predict_proba``
column 1 for a binary classifier, ``predict_proba`` for softprob, ``predict`` otherwise,
``Booster.predict`` for a raw booster. Parity tests of both flavors run over this zoo.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import xgboost as xgb

N_FEATURES = 6


@dataclass
class Built:
    path: Path
    predict: Callable[[np.ndarray], np.ndarray]  # the source object's own prediction
    model: Any


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Built]
    onnxmltools: bool = True  # stock onnxmltools can convert it (cross-check)
    tags: tuple[str, ...] = ()


def data(n: int = 600, *, seed: int = 0, nan: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    X[:, 3] = rng.integers(0, 5, n)  # a few distinct values: splits land on them
    X[rng.random(X.shape) < nan] = np.nan
    return X


def _signal(X: np.ndarray) -> np.ndarray:
    Z = np.nan_to_num(X)
    return Z[:, 0] + 0.5 * Z[:, 1] * Z[:, 2] - 0.3 * Z[:, 3] + 0.2 * np.sin(3 * Z[:, 4])


def y_binary(X: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (_signal(X) + rng.normal(0, 0.5, len(X)) > 0).astype(int)


def y_multi(X: np.ndarray, k: int = 3) -> np.ndarray:
    return np.digitize(_signal(X), np.quantile(_signal(X), np.linspace(0, 1, k + 1)[1:-1]))


def y_reg(X: np.ndarray) -> np.ndarray:
    return 3 * _signal(X) + 10


def _proba1(m: Any) -> Callable[[np.ndarray], np.ndarray]:
    return lambda X: m.predict_proba(X)[:, 1]


SUFFIX = {"joblib": "pkl", "pickle": "pickle", "json": "json", "ubj": "ubj", "joblib-z": "joblib"}


def _sk(cls: type, y: Callable[[np.ndarray], np.ndarray], *, fmt: str = "joblib", proba: str = "auto", **params: Any):
    """A case that fits a sklearn-wrapper model and saves it as ``fmt``."""

    def build(tmp: Path) -> Built:
        X = data()
        if "missing" in params:  # half the missing cells carry the sentinel instead of NaN
            X[np.isnan(X) & (np.random.default_rng(5).random(X.shape) < 0.5)] = params["missing"]
        params.setdefault("n_estimators", 12)
        params.setdefault("max_depth", 3)
        m = cls(**params, random_state=0, n_jobs=1)
        m.fit(X, y(X))
        path = tmp / ("model." + SUFFIX[fmt])
        if fmt == "joblib":
            joblib.dump(m, path)
        elif fmt == "joblib-z":
            joblib.dump(m, path, compress=3)
        elif fmt == "pickle":
            path.write_bytes(pickle.dumps(m))
        else:
            m.save_model(path)
        kind = proba if proba != "auto" else ("p1" if hasattr(m, "predict_proba") and m.n_classes_ == 2 else "p")
        if kind == "p1":
            predict = _proba1(m)
        elif kind == "proba":
            predict = m.predict_proba
        else:
            predict = m.predict
        return Built(path, predict, m)

    return build


def _booster(params: dict[str, Any], y: Callable[[np.ndarray], np.ndarray], *, rounds: int = 10, fmt: str = "pickle"):
    def build(tmp: Path) -> Built:
        X = data()
        bst = xgb.train({**params, "nthread": 1, "seed": 0}, xgb.DMatrix(X, label=y(X)), num_boost_round=rounds)
        path = tmp / {"pickle": "booster.pkl", "json": "booster.json", "ubj": "booster.ubj"}[fmt]
        if fmt == "pickle":
            joblib.dump(bst, path)
        else:
            bst.save_model(path)
        return Built(path, lambda X: bst.predict(xgb.DMatrix(X)), bst)

    return build


def _early_stopping(tmp: Path) -> Built:
    X = data(900)
    y = y_binary(X)
    m = xgb.XGBClassifier(
        n_estimators=200, max_depth=3, learning_rate=0.3, early_stopping_rounds=3, random_state=0, n_jobs=1
    )
    m.fit(X[:600], y[:600], eval_set=[(X[600:], 1 - y[600:])], verbose=False)  # flipped labels: stops early
    assert m.best_iteration < 199
    path = tmp / "early.pkl"
    joblib.dump(m, path)
    return Built(path, _proba1(m), m)


def _pipeline(tmp: Path) -> Built:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X = data(nan=0.0) * 5 + 3
    m = Pipeline(
        [
            ("scale", StandardScaler()),
            ("xgb", xgb.XGBClassifier(n_estimators=10, max_depth=3, random_state=0, n_jobs=1)),
        ]
    )
    m.fit(X, y_binary(X))
    path = tmp / "pipeline.pkl"
    joblib.dump(m, path)
    return Built(path, _proba1(m), m)


def _named(tmp: Path) -> Built:
    import pandas as pd

    cols = ["rsi", "macd hist", "ema.50", "Δ price", "f3", "btc_status_nan"]
    X = data()
    df = pd.DataFrame(X, columns=cols)
    m = xgb.XGBClassifier(n_estimators=8, max_depth=3, random_state=0, n_jobs=1).fit(df, y_binary(X))
    path = tmp / "named.pkl"
    joblib.dump(m, path)
    return Built(path, lambda A: m.predict_proba(pd.DataFrame(A, columns=cols))[:, 1], m)


def _stumps(tmp: Path) -> Built:
    """Trees that are a single leaf (nothing worth splitting): the emitters' smallest case."""
    X = data()
    m = xgb.XGBRegressor(n_estimators=3, max_depth=3, gamma=1e9, random_state=0, n_jobs=1).fit(X, y_reg(X))
    path = tmp / "stumps.pkl"
    joblib.dump(m, path)
    return Built(path, m.predict, m)


C, R, RFC, RFR = xgb.XGBClassifier, xgb.XGBRegressor, xgb.XGBRFClassifier, xgb.XGBRFRegressor
pos = lambda X: np.abs(y_reg(X)) + 0.5  # noqa: E731
counts = lambda X: np.random.default_rng(0).poisson(np.exp(np.clip(_signal(X), -2, 2)))  # noqa: E731
unit = lambda X: 1 / (1 + np.exp(-_signal(X)))  # noqa: E731

CASES: list[Case] = [
    Case("binary_logistic", _sk(C, y_binary)),
    Case("binary_logitraw", _sk(C, y_binary, objective="binary:logitraw"), onnxmltools=False),
    Case("binary_hinge", _sk(C, y_binary, objective="binary:hinge")),
    Case("reg_squarederror", _sk(R, y_reg)),
    Case("reg_squaredlogerror", _sk(R, pos, objective="reg:squaredlogerror")),
    Case("reg_pseudohubererror", _sk(R, y_reg, objective="reg:pseudohubererror")),
    Case("reg_absoluteerror", _sk(R, y_reg, objective="reg:absoluteerror")),
    Case("reg_quantileerror", _sk(R, y_reg, objective="reg:quantileerror", quantile_alpha=0.3), onnxmltools=False),
    Case("reg_logistic_regressor", _sk(R, unit, objective="reg:logistic"), tags=("onnxmltools-wrong",)),
    Case("count_poisson", _sk(R, counts, objective="count:poisson")),
    Case("reg_gamma", _sk(R, pos, objective="reg:gamma")),
    Case("reg_tweedie", _sk(R, pos, objective="reg:tweedie", tweedie_variance_power=1.4)),
    Case("multi_softprob", _sk(C, y_multi, proba="proba")),
    Case("multi_softmax", _sk(C, y_multi, objective="multi:softmax", proba="predict"), onnxmltools=False),
    Case("dart_classifier", _sk(C, y_binary, booster="dart", rate_drop=0.3, skip_drop=0.0), onnxmltools=False),
    Case("dart_regressor", _sk(R, y_reg, booster="dart", rate_drop=0.3, skip_drop=0.0), onnxmltools=False),
    Case("rf_classifier", _sk(RFC, y_binary, n_estimators=8)),
    Case("rf_regressor", _sk(RFR, y_reg, n_estimators=8)),
    Case(
        "multi_parallel_trees",
        _sk(C, y_multi, proba="proba", num_parallel_tree=3, n_estimators=4),
        tags=("onnxmltools-wrong",),
    ),
    Case("early_stopping", _early_stopping),
    Case("missing_sentinel", _sk(C, y_binary, missing=-999.0), onnxmltools=False),
    Case("deep_lossguide", _sk(R, y_reg, max_depth=0, max_leaves=64, grow_policy="lossguide", n_estimators=6)),
    Case("stumps", _stumps),
    Case("named_features", _named, onnxmltools=False),
    Case("booster_pickle", _booster({"objective": "binary:logistic", "max_depth": 3}, y_binary)),
    Case("booster_json", _booster({"objective": "reg:squarederror", "max_depth": 4}, y_reg, fmt="json")),
    Case(
        "booster_ubj_multi",
        _booster({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, y_multi, fmt="ubj"),
    ),
    Case("classifier_json", _sk(C, y_binary, fmt="json")),
    Case("classifier_plain_pickle", _sk(C, y_binary, fmt="pickle")),
    Case("classifier_joblib_compressed", _sk(C, y_binary, fmt="joblib-z")),
    Case("pipeline_scaler", _pipeline, onnxmltools=False),
]

BY_NAME = {c.name: c for c in CASES}

"""A zoo of small, real XGBoost models: every objective, booster and wrapper the converter claims.

Each case trains a real model (seconds in total), saves it the way a user would (joblib,
pickle, native JSON/UBJ), and predicts with the *source object itself*: ``predict_proba``
column 1 for a binary classifier, ``predict_proba`` for softprob, ``predict`` otherwise,
``Booster.predict`` for a raw booster. Parity tests of both flavors run over this zoo.
"""

from __future__ import annotations

import json
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


def _sk(
    cls: type,
    y: Callable[[np.ndarray], np.ndarray],
    *,
    fmt: str = "joblib",
    proba: str = "auto",
    rows: Callable[[], np.ndarray] | None = None,
    fit: dict[str, Any] | None = None,
    **params: Any,
):
    """A case that fits a sklearn-wrapper model on ``rows()`` (default :func:`data`) and saves it as ``fmt``."""

    def build(tmp: Path) -> Built:
        X = data() if rows is None else rows()
        if "missing" in params:  # half the missing cells carry the sentinel instead of NaN
            X[np.isnan(X) & (np.random.default_rng(5).random(X.shape) < 0.5)] = params["missing"]
        params.setdefault("n_estimators", 12)
        if params.get("booster") != "gblinear":
            params.setdefault("max_depth", 3)
        m = cls(**params, random_state=0, n_jobs=1)
        m.fit(X, y(X), **(fit or {}))
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


def _booster_predict(bst: xgb.Booster) -> Callable[[np.ndarray], np.ndarray]:
    """The booster's own prediction: ``inplace_predict`` (it takes ±inf), a DMatrix for gblinear (no inplace)."""
    if json.loads(bst.save_config())["learner"]["gradient_booster"]["name"] == "gblinear":
        return lambda X: bst.predict(xgb.DMatrix(X))
    return lambda X: bst.inplace_predict(X)


def _booster(
    params: dict[str, Any],
    y: Callable[[np.ndarray], np.ndarray],
    *,
    rounds: int = 10,
    fmt: str = "pickle",
    rows: Callable[[], np.ndarray] | None = None,
    dmatrix: Callable[[np.ndarray, np.ndarray], xgb.DMatrix] | None = None,
):
    def build(tmp: Path) -> Built:
        X = data() if rows is None else rows()
        train = dmatrix(X, y(X)) if dmatrix else xgb.DMatrix(X, label=y(X))
        bst = xgb.train({**params, "nthread": 1, "seed": 0}, train, num_boost_round=rounds)
        path = tmp / {"pickle": "booster.pkl", "json": "booster.json", "ubj": "booster.ubj"}[fmt]
        if fmt == "pickle":
            joblib.dump(bst, path)
        else:
            bst.save_model(path)
        return Built(path, _booster_predict(bst), bst)

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


# ---- families added for issue 13: categorical, several targets, more objectives, gblinear, ColumnTransformer
CAT_COLUMNS = (3, 4)  # integer category codes: 0..4 (with NaN) and 0..39
FEATURE_TYPES = ["q", "q", "q", "c", "c", "q"]


def data_cat(n: int = 700, *, seed: int = 0) -> np.ndarray:
    """:func:`data` with column 4 holding codes 0..39 (column 3 already holds codes 0..4)."""
    X = data(n, seed=seed)
    rng = np.random.default_rng(seed + 7)
    X[:, 4] = rng.integers(0, 40, n)
    X[rng.random(n) < 0.05, 4] = np.nan
    return X


def y_cat(X: np.ndarray) -> np.ndarray:
    Z = np.nan_to_num(X, nan=-1)
    return Z[:, 0] + 2.0 * np.isin(Z[:, 3], [1, 3]) + np.sin(Z[:, 4]) + 0.5 * (Z[:, 4] % 7 == 2)


def _frame(X: np.ndarray) -> Any:
    """The rows as a pandas DataFrame with the category columns as ``category`` dtype (codes = the values)."""
    import pandas as pd

    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    for c in CAT_COLUMNS:
        df[f"c{c}"] = pd.Categorical.from_codes(np.nan_to_num(X[:, c], nan=-1).astype(int), categories=range(40))
    return df


def _categorical_pandas(tmp: Path) -> Built:
    """Partition splits learnt from a DataFrame of pandas categories, pickled; the artifact takes the codes."""
    X = data_cat()
    m = xgb.XGBRegressor(
        n_estimators=10, max_depth=4, enable_categorical=True, tree_method="hist", max_cat_to_onehot=1,
        random_state=0, n_jobs=1,
    ).fit(_frame(X), y_cat(X))  # fmt: skip
    path = tmp / "cat.pkl"
    joblib.dump(m, path)
    return Built(path, lambda A: m.get_booster().inplace_predict(A), m)


def y_targets(X: np.ndarray) -> np.ndarray:
    return np.stack([y_reg(X), np.nan_to_num(X[:, 2]) * 2 - 1, _signal(X) ** 2], axis=1)


def y_labels(X: np.ndarray) -> np.ndarray:
    return (y_targets(X) > np.median(y_targets(X), axis=0)).astype(int)


def y_survival(X: np.ndarray) -> np.ndarray:
    """Survival times; negative = right-censored (survival:cox's convention)."""
    t = np.exp(0.5 * _signal(X)) + 0.1
    return np.where(np.random.default_rng(3).random(len(X)) < 0.2, -t, t)


def _aft(X: np.ndarray, y: np.ndarray) -> xgb.DMatrix:
    d = xgb.DMatrix(X)
    t = np.abs(y)
    d.set_float_info("label_lower_bound", t)
    d.set_float_info("label_upper_bound", np.where(y < 0, np.inf, t))
    return d


def _ranking(X: np.ndarray, y: np.ndarray) -> xgb.DMatrix:
    d = xgb.DMatrix(X, label=y)
    d.set_group([len(X) // 6] * 6)
    return d


def grades(X: np.ndarray) -> np.ndarray:
    return np.digitize(_signal(X), [-1, 0, 1])


def _column_transformer(tmp: Path, *, sparse: bool) -> Built:
    """StandardScaler on numeric columns + OneHotEncoder on code columns, then XGBoost; dense or sparse output."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X = data_cat()
    X[:, [0, 1, 2, 5]] = np.nan_to_num(X[:, [0, 1, 2, 5]]) * 4 + 3
    if sparse:  # named columns, the 40-code column one-hot: a sparse output (xgboost: unstored = missing)
        names = [f"c{i}" for i in range(X.shape[1])]
        pre = ColumnTransformer(
            [("num", StandardScaler(), ["c0", "c1", "c2"]), ("codes", OneHotEncoder(drop="first"), ["c3", "c4"])],
            remainder="passthrough",
        )
        frame = lambda A: pd.DataFrame(np.asarray(A, np.float32), columns=names)  # noqa: E731
    else:
        pre = ColumnTransformer(
            [("num", StandardScaler(), [0, 1, 2, 5]), ("codes", OneHotEncoder(handle_unknown="ignore"), [3])],
            sparse_threshold=0.0,
        )
        frame = lambda A: np.asarray(A, np.float32)  # noqa: E731
    m = Pipeline([("pre", pre), ("xgb", xgb.XGBClassifier(n_estimators=10, max_depth=4, random_state=0, n_jobs=1))])
    m.fit(frame(X), y_binary(np.nan_to_num(X)))
    assert m[0].sparse_output_ == sparse
    path = tmp / "pipeline.pkl"
    joblib.dump(m, path)
    return Built(path, lambda A: m.predict_proba(frame(A))[:, 1], m)


C, R, RFC, RFR = xgb.XGBClassifier, xgb.XGBRegressor, xgb.XGBRFClassifier, xgb.XGBRFRegressor
L = {"booster": "gblinear"}
CAT = {"enable_categorical": True, "tree_method": "hist", "feature_types": FEATURE_TYPES}
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
    # categorical splits: partition (category sets) and one-hot style, pickle / json / ubj
    Case("categorical_pandas_partition", _categorical_pandas, onnxmltools=False, tags=("categorical",)),
    Case(
        "categorical_onehot_json",
        _sk(C, lambda X: (y_cat(X) > 1).astype(int), fmt="json", rows=data_cat, max_cat_to_onehot=64, **CAT),
        onnxmltools=False,
        tags=("categorical",),
    ),
    Case(
        "categorical_booster_ubj",
        _booster(
            {
                "objective": "multi:softprob",
                "num_class": 3,
                "max_depth": 4,
                "max_cat_to_onehot": 4,
                "tree_method": "hist",
            },
            lambda X: np.digitize(y_cat(X), [0.5, 2.0]),
            fmt="ubj",
            rows=data_cat,
            dmatrix=lambda X, y: xgb.DMatrix(X, label=y, feature_types=FEATURE_TYPES, enable_categorical=True),
        ),
        onnxmltools=False,
        tags=("categorical",),
    ),
    # several targets: one tree per target, vector leaves, several quantiles, multi-label, multiclass vector leaves
    Case("multi_target_trees", _sk(R, y_targets), onnxmltools=False, tags=("targets",)),
    Case(
        "multi_target_vector_leaf_ubj",
        _sk(R, y_targets, fmt="ubj", multi_strategy="multi_output_tree", tree_method="hist"),
        onnxmltools=False,
        tags=("targets",),
    ),
    Case(
        "quantiles",
        _sk(R, y_reg, objective="reg:quantileerror", quantile_alpha=np.array([0.1, 0.5, 0.9])),
        onnxmltools=False,
        tags=("targets",),
    ),
    Case("multilabel", _sk(C, y_labels, proba="proba"), onnxmltools=False, tags=("targets",)),
    Case(
        "softprob_vector_leaf",
        _sk(C, y_multi, proba="proba", multi_strategy="multi_output_tree", tree_method="hist"),
        onnxmltools=False,
        tags=("targets",),
    ),
    # objectives whose prediction is a fixed function of the margin
    Case("survival_cox", _booster({"objective": "survival:cox", "max_depth": 3}, y_survival, fmt="json"), False),
    Case(
        "survival_aft",
        _booster({"objective": "survival:aft", "max_depth": 3}, y_survival, fmt="ubj", dmatrix=_aft),
        onnxmltools=False,
    ),
    Case("ranker_ndcg", _sk(xgb.XGBRanker, grades, fit={"qid": np.repeat(np.arange(6), 100)}), onnxmltools=False),
    Case(
        "rank_pairwise_json",
        _booster({"objective": "rank:pairwise", "max_depth": 3}, grades, fmt="json", dmatrix=_ranking),
        onnxmltools=False,
    ),
    Case("rank_map", _booster({"objective": "rank:map", "max_depth": 3}, y_binary, dmatrix=_ranking), False),
    # gblinear: weights + bias per output group, then the link
    Case("gblinear_regressor", _sk(R, y_reg, **L), onnxmltools=False, tags=("gblinear",)),
    Case("gblinear_multiclass_json", _sk(C, y_multi, proba="proba", fmt="json", **L), False, tags=("gblinear",)),
    Case(
        "gblinear_booster_ubj",
        _booster({"objective": "binary:logistic", **L}, y_binary, fmt="ubj"),
        onnxmltools=False,
        tags=("gblinear",),
    ),
    Case("gblinear_poisson", _sk(R, counts, objective="count:poisson", **L), False, tags=("gblinear",)),
    # scikit-learn pipelines: a ColumnTransformer (scaled numbers + one-hot codes) before the booster
    Case("pipeline_column_transformer", lambda tmp: _column_transformer(tmp, sparse=False), onnxmltools=False),
    Case("pipeline_column_transformer_sparse", lambda tmp: _column_transformer(tmp, sparse=True), False),
]

BY_NAME = {c.name: c for c in CASES}

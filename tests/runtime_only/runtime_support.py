"""Shared data for the runtime-only tests: paths, the bad-input matrix, and the pickle's answers.

Everything under tests/runtime_only/ runs with numpy + onnxruntime (+ pytest) only, so CI can
run it against the oldest onnxruntime we claim (see .ci/run). It must not import xgboost,
scikit-learn, joblib, pandas or m7_convert. What the original pickles predict for each case
is recorded in ``reference.json`` (the map's call sites on the bad-input matrix) and
``parity_reference.npz`` (predictions on random, NaN, threshold and inf rows);
tests/test_bad_inputs.py recomputes both from the pickles and fails if a recording drifts
(regenerate with ``python tests/test_bad_inputs.py``).
"""

from __future__ import annotations

import decimal
import fractions
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import m7_runtime
from m7_runtime import market7

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ONNX = ROOT / "onnx"
SNAPSHOT = json.loads((ROOT / "models" / "example_snapshot.json").read_text())
REFERENCE = HERE / "reference.json"
PARITY_REFERENCE = HERE / "parity_reference.npz"

#: drop-in name -> (artifact, function)
DROP_INS: dict[str, tuple[str, Callable[..., float | None]]] = {
    "recovery": ("xgb_recovery_model", market7.predict_recovery_odds),
    "confidence": ("xgb_confidence_model", market7.predict_confidence_score),
    "spend": ("xgb_spend_model", market7.predict_spend_volume),
    "dca_spend": ("xgb_dca_spend_model", lambda f, **kw: market7.predict_spend_volume(f, use_dca_model=True, **kw)),
    "safu": ("safu_exit_model", market7.predict_safu_exit),
    "legacy": ("xgb_model", market7.predict_legacy),
}


def target_feature(which: str) -> str:
    """The feature each case varies: RSI, which every model splits on."""
    return "ind_rsi" if which == "legacy" else "rsi"


class _Weird:
    """An object that is no number."""

    def __repr__(self) -> str:
        return "<weird>"


#: value cases: the target feature set to this value in the snapshot row
VALUES: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "nan": lambda: math.nan,
    "inf": lambda: math.inf,
    "-inf": lambda: -math.inf,
    "true": lambda: True,
    "false": lambda: False,
    "np.bool_": lambda: np.bool_(True),
    "np.float16": lambda: np.float16(31.5),
    "np.float32": lambda: np.float32(31.5),
    "np.float64": lambda: np.float64(31.5),
    "np.int64": lambda: np.int64(31),
    "np.uint8": lambda: np.uint8(31),
    "np.float32_nan": lambda: np.float32("nan"),
    "np.longdouble": lambda: np.longdouble(31.5),
    "int": lambda: 31,
    "int_beyond_float32": lambda: 10**39,
    "int_beyond_float64": lambda: 10**400,
    "negative_zero": lambda: -0.0,
    "float64_beyond_float32": lambda: 1e300,
    "tiny_subnormal": lambda: 1e-45,
    "decimal": lambda: decimal.Decimal("31.5"),
    "fraction": lambda: fractions.Fraction(63, 2),
    "0d_array": lambda: np.array(31.5),
    "1_element_array": lambda: np.array([31.5]),
    "string": lambda: "abc",
    "numeric_string": lambda: "31.5",
    "np.str_": lambda: np.str_("31.5"),
    "empty_string": lambda: "",
    "bytes": lambda: b"31.5",
    "list": lambda: [31.5],
    "tuple": lambda: (31.5,),
    "dict": lambda: {"value": 31.5},
    "complex": lambda: complex(31.5, 1),
    "datetime64": lambda: np.datetime64("2024-01-01"),
    "object": _Weird,
}

#: Deliberate deviations from what xgboost does with the value, each documented in the README
#: ("Bad input"): a date is not a number (numpy hands xgboost its tick count).
DEVIATIONS = {"datetime64"}


def snapshot_row() -> dict[str, Any]:
    return dict(SNAPSHOT)


def value_case(which: str, case: str) -> dict[str, Any]:
    row = snapshot_row()
    row[target_feature(which)] = VALUES[case]()
    return row


def _without(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in keys}


#: structural cases: the whole input, given the drop-in's name
STRUCTURE: dict[str, Callable[[str], Any]] = {
    "full_row": lambda w: snapshot_row(),
    "missing_target": lambda w: _without(snapshot_row(), target_feature(w)),
    "empty_mapping": lambda w: {},
    "extra_keys": lambda w: snapshot_row() | {"extra": "text", "more": None, 7: [1, 2], ("a", 1): object()},
    "only_unrelated_keys": lambda w: {"foo": 1.0, "bar": "x"},
    "all_values_none": lambda w: {k: (None if k != "btc_status" else v) for k, v in snapshot_row().items()},
    "all_values_nan": lambda w: {k: (math.nan if k != "btc_status" else v) for k, v in snapshot_row().items()},
    "all_values_numpy": lambda w: {k: (np.float32(v) if k != "btc_status" else v) for k, v in snapshot_row().items()},
    "all_values_bool": lambda w: {
        k: (bool(i % 2) if k != "btc_status" else v) for i, (k, v) in enumerate(SNAPSHOT.items())
    },
}

#: inputs that are not a mapping at all: predict_one raises M7Error, drop-ins return None
NOT_MAPPINGS: dict[str, Callable[[], Any]] = {
    "list_of_values": lambda: [v for v in SNAPSHOT.values() if not isinstance(v, str)],
    "tuple_of_pairs": lambda: tuple(SNAPSHOT.items()),
    "none": lambda: None,
    "string": lambda: json.dumps(SNAPSHOT),
    "int": lambda: 42,
    "ndarray": lambda: np.array([v for v in SNAPSHOT.values() if not isinstance(v, str)]),
    "set_of_names": lambda: set(SNAPSHOT),
}


def reference() -> dict[str, dict[str, float | None]]:
    """{drop-in: {case: what the original pickle's call site returns (None when it fails)}}."""
    return json.loads(REFERENCE.read_text())


def same(ours: float | None, theirs: float | None) -> bool:
    """The project's parity rule for one value, None only matching None."""
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if math.isnan(theirs):
        return math.isnan(ours)
    return abs(ours - theirs) <= 1e-5 * max(1.0, abs(theirs))


def copy_artifacts(dest: Path) -> Path:
    """A private copy of the bundled artifacts to tamper with."""
    shutil.copytree(ONNX, dest, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return dest


def load_all() -> dict[str, m7_runtime.Model]:
    return m7_runtime.load_dir(ONNX, provider="cpu")


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux), without psutil."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _page_size()


def _page_size() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE")


def base_matrix(features: tuple[str, ...]) -> np.ndarray:
    """Three rows in model order: the snapshot, the snapshot with a NaN, and a scaled one."""
    row = np.array([float(SNAPSHOT.get(f, 0.0)) if not isinstance(SNAPSHOT.get(f), str) else 0.0 for f in features])
    X = np.stack([row, row, row * 1.5])
    X[1, 0] = np.nan
    return X


def batch_cases(features: tuple[str, ...]) -> dict[str, tuple[Any, np.ndarray | None]]:
    """predict() inputs: name -> (input, the float32 matrix it means, or None when it must raise M7Error)."""
    X = base_matrix(features)
    n, k = X.shape
    f32 = X.astype(np.float32)

    def obj(value: Any) -> np.ndarray:
        a = X.astype(object)
        a[0, 1] = value
        return a

    def eq(value: float) -> np.ndarray:
        a = f32.copy()
        a[0, 1] = value
        return a

    cols = {f: X[:, i] for i, f in enumerate(features)}
    return {
        "float64": (X, f32),
        "float32": (f32, f32),
        "int64": (np.nan_to_num(X).astype(np.int64), np.nan_to_num(X).astype(np.int64).astype(np.float32)),
        "bool": (X > 1, (X > 1).astype(np.float32)),
        "fortran_order": (np.asfortranarray(X), f32),
        "strided_view": (np.repeat(X, 2, axis=0)[::2], f32),
        "big_endian": (X.astype(">f8"), f32),
        "float16": (X.astype(np.float16), X.astype(np.float16).astype(np.float32)),
        "inf": (np.where(np.isnan(X), np.inf, X), np.where(np.isnan(f32), np.inf, f32)),
        "-inf": (np.where(np.isnan(X), -np.inf, X), np.where(np.isnan(f32), -np.inf, f32)),
        "object_none": (obj(None), eq(np.nan)),
        "object_numpy_scalar": (obj(np.float32(2.5)), eq(2.5)),
        "object_bool": (obj(True), eq(1.0)),
        "object_decimal": (obj(decimal.Decimal("2.5")), eq(2.5)),
        "list_of_rows": (X.tolist(), f32),
        "list_rows_with_none": ([[None if np.isnan(v) else v for v in r] for r in X.tolist()], f32),
        "empty_batch": (np.zeros((0, k)), np.zeros((0, k), np.float32)),
        "empty_object_batch": (np.zeros((0, k), dtype=object), np.zeros((0, k), np.float32)),
        "mapping_of_columns": (cols, f32),
        "mapping_reordered_with_extra": ({**dict(reversed(cols.items())), "unrelated": np.zeros(n)}, f32),
        # errors
        "one_row_1d": (X[0], None),
        "3d": (X[None], None),
        "too_few_columns": (X[:, :-1], None),
        "too_many_columns": (np.hstack([X, X[:, :1]]), None),
        "no_columns": (np.zeros((n, 0)), None),
        "empty_list": ([], None),
        "none": (None, None),
        "scalar": (3.0, None),
        "string": ("1,2,3", None),
        "ragged_rows": ([X[0].tolist(), X[1, :-1].tolist()], None),
        "object_string": (obj("abc"), None),
        "object_numeric_string": (obj("2.5"), None),
        "object_list": (obj([2.5]), None),
        "object_int_beyond_float64": (obj(10**400), None),
        "string_array": (X.astype(str), None),
        "complex": (X.astype(complex), None),
        "datetime64": (np.zeros((n, k), dtype="M8[s]"), None),
        "mapping_missing_a_column": ({f: c for f, c in list(cols.items())[1:]}, None),
        "mapping_unequal_lengths": ({**cols, features[0]: X[:2, 0]}, None),
        "mapping_2d_column": ({**cols, features[0]: X[:, :2]}, None),
    }

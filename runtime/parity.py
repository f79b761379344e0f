"""The parity report in a manifest: what the converter measured before it wrote the artifact.

The converter's gate (``m7_convert.verify``) compares each flavor with xgboost and with the
reference evaluator on probe rows; its result is recorded here, typed, so ``m7onnx info``
and ``verify`` read numbers rather than dict lookups. Part of the manifest schema
(:mod:`m7_runtime.artifact`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .fields import Fields, as_int, enc_float

REL_TOL = 1e-5
TOLERANCE_TEXT = "|onnx - ref| <= 1e-5 * max(1, |ref|)"


@dataclass(frozen=True)
class WorstRow:
    """One of the rows that disagreed most (kept so a failure report can show them)."""

    row: int
    set: str
    onnx: tuple[float, ...]
    reference: tuple[float, ...]
    rel_error: float


@dataclass(frozen=True)
class Check:
    """One comparison of the parity gate (``onnx_vs_xgboost``, ``ir_vs_xgboost``, ``onnx_vs_ir``...)."""

    passed: bool
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    failing_rows: int = 0
    worst: tuple[WorstRow, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class FlavorParity:
    passed: bool
    checks: Mapping[str, Check]


@dataclass(frozen=True)
class Parity:
    """The gate's result for every flavor, on ``rows`` probe rows per probe set."""

    tolerance: str
    rel_tol: float
    rows: Mapping[str, int]
    flavors: Mapping[str, FlavorParity]
    passed: bool

    def worst_rel_error(self) -> float:
        """The largest relative error of any flavor against xgboost (NaN if none was measured)."""
        return max(
            (f.checks["onnx_vs_xgboost"].max_rel_error for f in self.flavors.values() if "onnx_vs_xgboost" in f.checks),
            default=float("nan"),
        )


# ---- JSON ------------------------------------------------------------------------


def _worst(f: Fields) -> WorstRow:
    row = WorstRow(
        row=f.int("row"),
        set=f.str("set", max_len=64),
        onnx=f.floats("onnx", finite=False),
        reference=f.floats("reference", finite=False),
        rel_error=f.float("rel_error", finite=False),
    )
    f.done()
    return row


def check_from_json(f: Fields) -> Check:
    worst = f.raw("worst", [])
    if not isinstance(worst, list) or len(worst) > 100:
        raise f.error("worst", "must be a list of at most 100 rows")
    check = Check(
        passed=f.bool("pass"),
        max_abs_error=f.float("max_abs_error", 0.0, finite=False),
        max_rel_error=f.float("max_rel_error", 0.0, finite=False),
        failing_rows=f.int("failing_rows", 0),
        worst=tuple(_worst(Fields(w, f.where, f"{f.name('worst')}[{i}].")) for i, w in enumerate(worst)),
        error=f.str("error", None),
    )
    f.done()
    return check


def _flavor(f: Fields) -> FlavorParity:
    checks = {key: check_from_json(f.obj(key)) for key in f.keys() if key != "pass"}  # noqa: SIM118 - Fields is not a dict
    flavor = FlavorParity(passed=f.bool("pass"), checks=checks)
    f.done()
    return flavor


def parity_from_json(f: Fields) -> Parity:
    rows = f.raw("rows", {})
    if not isinstance(rows, Mapping):
        raise f.error("rows", "must be an object of probe set -> row count")
    try:
        counts = {str(k): as_int(v) for k, v in rows.items()}
    except (TypeError, ValueError):
        raise f.error("rows", "must map probe sets to row counts") from None
    parity = Parity(
        tolerance=f.str("tolerance", ""),
        rel_tol=f.float("rel_tol"),
        rows=counts,
        flavors=f.mapping("flavors", _flavor, {}),
        passed=f.bool("pass"),
    )
    f.done()
    return parity


def check_to_json(c: Check) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pass": c.passed,
        "max_abs_error": enc_float(c.max_abs_error),
        "max_rel_error": enc_float(c.max_rel_error),
        "failing_rows": c.failing_rows,
        "worst": [
            {
                "row": w.row,
                "set": w.set,
                "onnx": [enc_float(v) for v in w.onnx],
                "reference": [enc_float(v) for v in w.reference],
                "rel_error": enc_float(w.rel_error),
            }
            for w in c.worst
        ],
    }
    if c.error is not None:
        out["error"] = c.error
    return out


def parity_to_json(p: Parity) -> dict[str, Any]:
    return {
        "tolerance": p.tolerance,
        "rel_tol": p.rel_tol,
        "rows": dict(p.rows),
        "flavors": {
            k: {"pass": v.passed, **{name: check_to_json(c) for name, c in v.checks.items()}}
            for k, v in p.flavors.items()
        },
        "pass": p.passed,
    }

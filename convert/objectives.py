"""XGBoost objective -> how its margin becomes a prediction, as a table of data.

Two columns matter for inference:

* ``link``: the transform ``Booster.predict`` applies to the summed margin (xgboost's
  ``PredTransform``). Emitters and the reference evaluator each map a link name to their
  own implementation, so adding an objective is one row here.
* ``intercept``: how the stored ``base_score`` (in output space) becomes the margin the
  trees start from (xgboost's ``ProbToMargin``).

Objectives missing from the table (ranking, survival, custom) are refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import UnsupportedModelError

Link = Literal["identity", "sigmoid", "exp", "softmax", "argmax", "hinge"]
Intercept = Literal["identity", "logit", "log"]
Task = Literal["binary", "multiclass", "regression"]


@dataclass(frozen=True)
class Objective:
    name: str
    link: Link
    intercept: Intercept
    task: Task  # what the objective predicts when no sklearn wrapper says otherwise
    meaning: str  # what one output value is, for the manifest and `m7onnx info`


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in [
        Objective("binary:logistic", "sigmoid", "logit", "binary", "P(class 1)"),
        Objective("binary:logitraw", "identity", "identity", "binary", "margin (log-odds of class 1)"),
        Objective("binary:hinge", "hinge", "identity", "binary", "class (0 or 1)"),
        Objective("reg:logistic", "sigmoid", "logit", "regression", "value in (0, 1)"),
        Objective("reg:squarederror", "identity", "identity", "regression", "value"),
        Objective("reg:linear", "identity", "identity", "regression", "value"),
        Objective("reg:squaredlogerror", "identity", "identity", "regression", "value"),
        Objective("reg:pseudohubererror", "identity", "identity", "regression", "value"),
        Objective("reg:absoluteerror", "identity", "identity", "regression", "value (conditional median)"),
        Objective("reg:quantileerror", "identity", "identity", "regression", "value (conditional quantile)"),
        Objective("count:poisson", "exp", "log", "regression", "expected count"),
        Objective("reg:gamma", "exp", "log", "regression", "value (gamma mean)"),
        Objective("reg:tweedie", "exp", "log", "regression", "value (tweedie mean)"),
        Objective("multi:softprob", "softmax", "identity", "multiclass", "class probabilities"),
        Objective("multi:softmax", "argmax", "identity", "multiclass", "class index"),
    ]
}


def objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        known = ", ".join(sorted(OBJECTIVES))
        raise UnsupportedModelError(
            f"objective {name!r} is not supported (ranking, survival and custom objectives have no "
            f"defined prediction to export). Supported: {known}"
        ) from None

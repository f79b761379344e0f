"""XGBoost objective -> how its margin becomes a prediction, as a table of data.

Two columns matter for inference:

* ``link``: the transform ``Booster.predict`` applies to the summed margin (xgboost's
  ``PredTransform``). Emitters and the reference evaluator each map a link name to their
  own implementation, so adding an objective is one row here. An elementwise link
  (identity, sigmoid, exp, hinge) applies to each of several targets alike.
* ``intercept``: how the stored ``base_score`` (in output space) becomes the margin the
  trees start from (xgboost's ``ProbToMargin``).

Every objective xgboost 3.2 registers (``XGBOOST_REGISTER_OBJECTIVE`` in
``src/objective/*``) has a row; the source of each link is named beside it. Objectives
missing from the table (custom objectives, ``plugin/`` examples) are refused by name.
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


# fmt: off
OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in [
        # src/objective/regression_loss.h: LogisticClassification / LogisticRaw / LogisticRegression
        Objective("binary:logistic", "sigmoid", "logit", "binary", "P(class 1)"),
        Objective("binary:logitraw", "identity", "identity", "binary", "margin (log-odds of class 1)"),
        Objective("reg:logistic", "sigmoid", "logit", "regression", "value in (0, 1)"),
        # src/objective/hinge.cu: PredTransform is `margin > 0 ? 1 : 0`, no ProbToMargin
        Objective("binary:hinge", "hinge", "identity", "binary", "class (0 or 1)"),
        # regression_loss.h LinearSquareLoss / SquaredLogError (identity both ways); "reg:linear" is its old name
        Objective("reg:squarederror", "identity", "identity", "regression", "value"),
        Objective("reg:linear", "identity", "identity", "regression", "value"),
        Objective("reg:squaredlogerror", "identity", "identity", "regression", "value"),
        # regression_obj.cu PseudoHuberRegression, absolute_error_obj, quantile_obj.cu: no PredTransform
        Objective("reg:pseudohubererror", "identity", "identity", "regression", "value"),
        Objective("reg:absoluteerror", "identity", "identity", "regression", "value (conditional median)"),
        Objective("reg:quantileerror", "identity", "identity", "regression", "value (conditional quantile)"),
        # regression_obj.cu PoissonRegression / TweedieRegression, regression_loss.h GammaDeviance: exp, log
        Objective("count:poisson", "exp", "log", "regression", "expected count"),
        Objective("reg:gamma", "exp", "log", "regression", "value (gamma mean)"),
        Objective("reg:tweedie", "exp", "log", "regression", "value (tweedie mean)"),
        # regression_obj.cu CoxRegression: PredTransform exp, ProbToMargin log (doc: "HR = exp(margin)")
        Objective("survival:cox", "exp", "log", "regression", "hazard ratio exp(margin)"),
        # aft_obj.cu AFTObj: PredTransform exp ("trees give us a prediction in log scale"), ProbToMargin log
        Objective("survival:aft", "exp", "log", "regression", "predicted survival time exp(margin)"),
        # lambdarank_obj.cc: no PredTransform and no ProbToMargin override (ObjFunction's identity)
        Objective("rank:ndcg", "identity", "identity", "regression", "ranking score (margin)"),
        Objective("rank:map", "identity", "identity", "regression", "ranking score (margin)"),
        Objective("rank:pairwise", "identity", "identity", "regression", "ranking score (margin)"),
        # multiclass_obj.cu SoftmaxMultiClassObj: softmax (softprob) or the arg max, first on ties (softmax)
        Objective("multi:softprob", "softmax", "identity", "multiclass", "class probabilities"),
        Objective("multi:softmax", "argmax", "identity", "multiclass", "class index"),
    ]
}
# fmt: on


def objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        known = ", ".join(sorted(OBJECTIVES))
        raise UnsupportedModelError(
            f"objective {name!r} is not supported (a custom objective has no prediction the model file "
            f"defines). Supported: {known}"
        ) from None

"""The typed intermediate representation: a forest of trees as arrays.

Built once from the booster JSON that every xgboost version writes (``save_raw("json")``,
``.ubj``, or the snapshot inside a pickle). Emitters and the reference evaluator read
only this, so a parsing bug and an emitting bug show up in different tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .document import checked
from .errors import SourceError, UnsupportedModelError
from .objectives import Objective, objective


@dataclass(frozen=True, eq=False)
class Tree:
    """One regression tree in xgboost's node layout (node 0 is the root)."""

    left: np.ndarray  # int32, -1 at a leaf
    right: np.ndarray  # int32
    feature: np.ndarray  # int32 split feature
    threshold: np.ndarray  # float32: go left when x < threshold
    default_left: np.ndarray  # bool: where a missing value goes
    leaf_value: np.ndarray  # float32, meaningful at leaves
    group: int = 0  # which output margin the tree adds to (class index)
    weight: float = 1.0  # DART tree weight, 1.0 for gbtree

    @property
    def n_nodes(self) -> int:
        return len(self.left)

    @property
    def is_leaf(self) -> np.ndarray:
        return self.left < 0

    def reachable(self) -> np.ndarray:
        """Node ids reachable from the root, parents before children (pruned nodes dropped)."""
        order, seen = [0], {0}
        for node in order:
            if self.left[node] >= 0:
                for child in (int(self.left[node]), int(self.right[node])):
                    if child in seen or not 0 <= child < self.n_nodes:
                        raise SourceError(f"tree node {node} points to child {child}: the tree is malformed")
                    seen.add(child)
                    order.append(child)
        return np.asarray(order, dtype=np.int64)

    def depth(self) -> int:
        depth = np.zeros(self.n_nodes, dtype=np.int64)
        for node in self.reachable():
            if self.left[node] >= 0:
                depth[self.left[node]] = depth[self.right[node]] = depth[node] + 1
        return int(depth.max())

    def weighted_leaf_values(self) -> np.ndarray:
        """Leaf values times the DART weight, in float32 as xgboost multiplies them."""
        return (self.leaf_value * np.float32(self.weight)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Forest:
    """Everything inference needs: trees, how margins start, and how they end."""

    trees: tuple[Tree, ...]
    feature_names: tuple[str, ...]
    n_groups: int  # margins per row: 1, or the number of classes
    base_margin: np.ndarray  # float32, one per group
    objective: Objective
    missing: float = math.nan  # the value xgboost treats as missing besides NaN
    booster: str = "gbtree"
    extra: dict[str, Any] = field(default_factory=dict)  # source facts for the manifest

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_outputs(self) -> int:
        """Width of one prediction: class probabilities for softprob, else one value."""
        return self.n_groups if self.objective.link == "softmax" else 1

    def max_depth(self) -> int:
        return max((t.depth() for t in self.trees), default=0)

    def n_leaves(self) -> int:
        return sum(int(t.is_leaf[t.reachable()].sum()) for t in self.trees)

    def thresholds(self) -> list[np.ndarray]:
        """Sorted unique float32 split thresholds of each feature (empty if never split on)."""
        per: list[list[np.ndarray]] = [[] for _ in range(self.n_features)]
        for t in self.trees:
            nodes = t.reachable()
            nodes = nodes[~t.is_leaf[nodes]]
            for f in np.unique(t.feature[nodes]):
                per[f].append(t.threshold[nodes[t.feature[nodes] == f]])
        return [np.unique(np.concatenate(p)).astype(np.float32) if p else np.empty(0, np.float32) for p in per]

    def split_ranges(self) -> dict[str, dict[str, float | int]]:
        """Per feature: lowest and highest threshold, and how many distinct ones."""
        return {
            name: {"min": float(th[0]), "max": float(th[-1]), "n_thresholds": len(th)}
            for name, th in zip(self.feature_names, self.thresholds(), strict=True)
            if len(th)
        }

    def validate(self) -> Forest:
        """Check the invariants the emitters rely on; raise naming the first violation."""
        if not self.trees:
            raise UnsupportedModelError("the model has no trees (nothing to convert)")
        if len(self.base_margin) != self.n_groups:
            raise SourceError(f"{len(self.base_margin)} base margins for {self.n_groups} output groups")
        if not np.all(np.isfinite(self.base_margin)):
            raise SourceError(f"base margin {self.base_margin.tolist()} is not finite")
        for i, t in enumerate(self.trees):
            arrays = (t.left, t.right, t.feature, t.threshold, t.default_left, t.leaf_value)
            if len({len(a) for a in arrays}) != 1 or t.n_nodes == 0:
                raise SourceError(f"tree {i}: node arrays have different lengths")
            nodes = t.reachable()
            inner = nodes[~t.is_leaf[nodes]]
            if inner.size and (t.feature[inner].min() < 0 or t.feature[inner].max() >= self.n_features):
                raise SourceError(
                    f"tree {i} splits on feature {int(t.feature[inner].max())}, model has {self.n_features}"
                )
            if not np.all(np.isfinite(t.leaf_value[nodes[t.is_leaf[nodes]]])):
                raise SourceError(f"tree {i} has a non-finite leaf value")
            if np.any(np.isnan(t.threshold[inner])):
                raise SourceError(f"tree {i} has a NaN split threshold")
            if not 0 <= t.group < self.n_groups:
                raise SourceError(f"tree {i} adds to output group {t.group}, model has {self.n_groups}")
        return self


def _base_scores(text: Any) -> np.ndarray:
    """``"5E-1"`` (<= 2.x), ``"[4.5E-1]"`` or ``"[a,b,c]"`` (3.x vector intercept)."""
    if isinstance(text, (int, float)):
        return np.asarray([text], dtype=np.float32)
    parts = str(text).strip().strip("[]").split(",")
    try:
        return np.asarray([float(p) for p in parts if p.strip()], dtype=np.float32)
    except ValueError:
        raise SourceError(f"cannot read base_score {text!r}") from None


def _to_margin(base_score: np.ndarray, obj: Objective) -> np.ndarray:
    """xgboost's ProbToMargin, in float32 as xgboost computes it."""
    one = np.float32(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if obj.intercept == "logit":
            return (-np.log(one / base_score - one)).astype(np.float32)
        if obj.intercept == "log":
            return np.log(base_score).astype(np.float32)
    return base_score.astype(np.float32)


def _tree(raw: Mapping[str, Any], index: int, group: int, weight: float) -> Tree:
    param = raw.get("tree_param", {})
    if int(param.get("size_leaf_vector", 1) or 1) > 1:
        raise UnsupportedModelError(
            f"tree {index} has vector leaves (multi_strategy='multi_output_tree'); only one value per leaf is supported"
        )
    split_type = np.asarray(raw.get("split_type", []), dtype=np.int64)
    if split_type.size and split_type.any():
        raise UnsupportedModelError(
            f"tree {index} has categorical splits (split_type=1); convert a model trained without "
            "enable_categorical, or one-hot encode the categories before training"
        )
    left = np.asarray(raw["left_children"], dtype=np.int32)
    leaf = left < 0
    cond = np.asarray(raw["split_conditions"], dtype=np.float32)
    return Tree(
        left=left,
        right=np.asarray(raw["right_children"], dtype=np.int32),
        feature=np.asarray(raw["split_indices"], dtype=np.int32),
        threshold=np.where(leaf, np.float32(0), cond).astype(np.float32),
        default_left=np.asarray(raw["default_left"]).astype(bool),
        leaf_value=np.where(leaf, cond, np.float32(0)).astype(np.float32),
        group=group,
        weight=weight,
    )


def iteration_bounds(model: Mapping[str, Any], n_trees: int, n_groups: int) -> list[int]:
    """Index of the first tree of each boosting round (plus the end), any xgboost version.

    3.x records ``iteration_indptr``; before that a round is ``num_parallel_tree`` trees
    per output group.
    """
    if "iteration_indptr" in model:
        return [int(i) for i in model["iteration_indptr"]]
    parallel = max(1, int(model["gbtree_model_param"].get("num_parallel_tree", 1)))
    per_round = n_groups * parallel
    return list(range(0, n_trees + 1, per_round)) if n_trees % per_round == 0 else [0, n_trees]


def from_booster_json(
    doc: Mapping[str, Any],
    *,
    feature_names: Sequence[str] | None = None,
    missing: float = math.nan,
    iteration_range: tuple[int, int] | None = None,
) -> Forest:
    """Build the IR from xgboost's model JSON (the ``{"learner": ..., "version": ...}`` document).

    ``iteration_range`` keeps rounds ``[begin, end)`` as ``Booster.predict`` does (the
    sklearn wrappers pass ``(0, best_iteration + 1)`` after early stopping).
    """
    doc = checked(doc)  # types, lengths and ranges of every field read below (free if load_source checked it)
    learner = doc["learner"]
    mparam = learner["learner_model_param"]
    gb = learner["gradient_booster"]
    obj = objective(learner["objective"]["name"])
    booster = gb.get("name", "gbtree")
    if booster == "gblinear":
        raise UnsupportedModelError("booster 'gblinear' is a linear model, not trees; it is not supported")
    if booster not in ("gbtree", "dart"):
        raise UnsupportedModelError(f"booster {booster!r} is not supported (gbtree and dart are)")
    model = gb["gbtree"]["model"] if booster == "dart" else gb["model"]
    if int(mparam.get("num_target", 1) or 1) > 1:
        raise UnsupportedModelError(
            f"the model has {mparam['num_target']} targets (e.g. several quantiles); export one target per model"
        )
    n_groups = max(1, int(mparam.get("num_class", 0) or 0))
    raw_trees = model["trees"]
    tree_info = [int(g) for g in model.get("tree_info", [0] * len(raw_trees))]
    weights = [float(w) for w in gb.get("weight_drop", [])] if booster == "dart" else []

    bounds = iteration_bounds(model, len(raw_trees), n_groups)
    n_rounds = len(bounds) - 1
    begin, end = iteration_range or (0, 0)
    end = n_rounds if end in (0, None) else min(int(end), n_rounds)
    keep = range(bounds[begin], bounds[end])
    trees = tuple(_tree(raw_trees[i], i, tree_info[i], weights[i] if weights else 1.0) for i in keep)

    n_features = int(mparam.get("num_feature", 0))
    names = list(feature_names) if feature_names else list(learner.get("feature_names") or [])
    if not names:
        names = [f"f{i}" for i in range(n_features)]
    if len(names) != n_features:
        raise SourceError(f"{len(names)} feature names for a model of {n_features} features")

    scores = _base_scores(mparam.get("base_score", 0.5))
    if len(scores) == 1 and n_groups > 1:
        scores = np.repeat(scores, n_groups)
    version = doc.get("version", [])
    return Forest(
        trees=trees,
        feature_names=tuple(str(n) for n in names),
        n_groups=n_groups,
        base_margin=_to_margin(scores, obj),
        objective=obj,
        missing=float(missing),
        booster=booster,
        extra={
            "xgboost_version": ".".join(str(int(v)) for v in version) if len(version) else "unknown",
            "base_score": [float(s) for s in scores],
            "n_trees_total": len(raw_trees),
            "n_rounds_total": n_rounds,
            "rounds_used": [begin, end],
            "num_parallel_tree": int(model["gbtree_model_param"].get("num_parallel_tree", 1)),
        },
    ).validate()

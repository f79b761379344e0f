"""Reading xgboost's model document into the IR: gbtree, dart and gblinear boosters, any version.

The document is what every xgboost from 1.7 on writes (``save_raw("json")``, ``.ubj``, the
snapshot inside a pickle). Field meanings follow xgboost's own loaders:
``RegTree::LoadModel`` / ``LoadCategoricalSplit`` (``src/tree/tree_model.cc``),
``MultiTargetTree::LoadModel`` (``src/tree/multi_target_tree_model.cc``), ``GBLinearModel``
(``src/gbm/gblinear_model.h``) and ``LearnerModelParam`` (intercept, classes, targets).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .errors import SourceError, UnsupportedModelError
from .ir import _NO_CATEGORIES, Forest, Linear, Provenance, Tree
from .objectives import Objective, objective


def _base_scores(text: object) -> np.ndarray:
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


def iteration_bounds(model: dict, n_trees: int, n_groups: int) -> list[int]:
    """Index of the first tree of each boosting round (plus the end), any xgboost version.

    3.x records ``iteration_indptr``; before that a round is ``num_parallel_tree`` trees
    per output group.
    """
    if "iteration_indptr" in model:
        return [int(i) for i in model["iteration_indptr"]]
    parallel = max(1, int(model["gbtree_model_param"].get("num_parallel_tree", 1)))
    per_round = n_groups * parallel
    return list(range(0, n_trees + 1, per_round)) if n_trees % per_round == 0 else [0, n_trees]


def _quantile_names(objective_doc: dict) -> list[str] | None:
    """``quantile_alpha`` as xgboost writes it (``"[1E-1,5E-1]"`` or ``"0.5"``) -> output names."""
    raw = objective_doc.get("quantile_loss_param", {}).get("quantile_alpha")
    if raw is None:
        return None
    try:
        alphas = [float(a) for a in str(raw).strip("[]").split(",") if a.strip()]
    except ValueError:
        raise SourceError(f"cannot read quantile_alpha {raw!r}") from None
    return [f"quantile_{a:g}" for a in alphas]


def _targets(learner: dict, obj: Objective, n_groups: int) -> tuple[str, ...] | None:
    """Names of the outputs when there are several targets: quantiles, labels, or targets by position."""
    if n_groups == 1 or obj.task == "multiclass":  # class probabilities are indexed by class (NAME_0, NAME_1...)
        return None
    if obj.task == "binary":  # a multi-label classifier: P(label g) each
        return tuple(f"label_{g}" for g in range(n_groups))
    quantiles = _quantile_names(learner["objective"])
    if quantiles is not None and len(quantiles) == n_groups:
        return tuple(quantiles)
    return tuple(f"target_{g}" for g in range(n_groups))


def _category_values(model: dict, names: Sequence[str]) -> dict[str, tuple[str | float, ...]]:
    """The training categories xgboost >= 3.1 stores (``CatContainer::Save``, ``src/data/cat_container.cc``).

    Per feature: text categories as UTF-8 bytes cut at ``offsets``, or numbers; a code is
    the position in this list (what ``DataFrame[col].cat.codes`` gives for these categories).
    """
    enc = model.get("cats", {}).get("enc", [])
    out: dict[str, tuple[str | float, ...]] = {}
    for name, column in zip(names, enc, strict=False):
        if "offsets" in column:
            offsets = [int(o) for o in column["offsets"]]
            raw = bytes(int(v) & 0xFF for v in column["values"])
            labels: tuple[str | float, ...] = tuple(
                raw[a:b].decode("utf-8", errors="replace") for a, b in itertools.pairwise(offsets)
            )
        else:
            labels = tuple(v if isinstance(v, int) else float(v) for v in column.get("values", []))
        if labels:
            out[str(name)] = labels
    return out


def _categories(raw: dict, n_nodes: int, index: int) -> tuple[np.ndarray, ...]:
    """Per node, the category set of a categorical split (``RegTree::LoadCategoricalSplit``)."""
    split_type = np.asarray(raw.get("split_type", []), dtype=np.int64)
    if not split_type.size or not split_type.any():
        return ()
    if len(split_type) != n_nodes:
        raise SourceError(f"tree {index}: {len(split_type)} split types for {n_nodes} nodes")
    nodes = [int(n) for n in raw.get("categories_nodes", [])]
    begins = [int(b) for b in raw.get("categories_segments", [])]
    sizes = [int(s) for s in raw.get("categories_sizes", [])]
    values = np.asarray(raw.get("categories", []), dtype=np.int64)
    if not len(nodes) == len(begins) == len(sizes) or sorted(nodes) != list(np.flatnonzero(split_type == 1)):
        raise SourceError(f"tree {index}: its categorical split records do not match its split types")
    out = [_NO_CATEGORIES] * n_nodes
    for node, begin, size in zip(nodes, begins, sizes, strict=True):
        if size <= 0 or begin < 0 or begin + size > len(values):
            raise SourceError(f"tree {index} node {node}: category segment [{begin}, {begin + size}) is out of range")
        out[node] = np.unique(values[begin : begin + size])
    return tuple(out)


def _tree(raw: dict, index: int, group: int, weight: float, n_groups: int) -> Tree:
    left = np.asarray(raw["left_children"], dtype=np.int32)
    n = len(left)
    leaf = left < 0
    cond = np.asarray(raw["split_conditions"], dtype=np.float32)
    categories = _categories(raw, n, index)
    categorical = np.array([len(c) > 0 for c in categories]) if categories else np.zeros(n, bool)
    width = int(raw.get("tree_param", {}).get("size_leaf_vector", 1) or 1)
    right = np.asarray(raw["right_children"], dtype=np.int32)
    if width > 1:  # a vector-leaf tree (multi_target_tree_model.cc)
        if width != n_groups:
            raise SourceError(f"tree {index} has leaves of {width} values, the model has {n_groups} outputs")
        if "leaf_weights" in raw:  # 3.2+: a leaf's right child is its row in leaf_weights
            table = np.asarray(raw["leaf_weights"], dtype=np.float32).reshape(-1, width)
            rows = np.where(leaf, right, 0)
            if rows.size and (rows.min() < 0 or rows.max() >= len(table)):
                raise SourceError(f"tree {index}: a leaf points past its {len(table)} leaf weights")
            values = table[rows]
            right = np.where(leaf, -1, right).astype(np.int32)
        else:  # 2.0-3.1: every node's weights in base_weights
            values = np.asarray(raw["base_weights"], dtype=np.float32).reshape(n, width)
        leaf_value = np.where(leaf[:, None], values, np.float32(0)).astype(np.float32)
    else:
        leaf_value = np.where(leaf, cond, np.float32(0)).astype(np.float32)
    return Tree(
        left=left,
        right=right,
        feature=np.asarray(raw["split_indices"], dtype=np.int32),
        threshold=np.where(leaf | categorical, np.float32(0), cond).astype(np.float32),
        default_left=np.asarray(raw["default_left"]).astype(bool),
        leaf_value=leaf_value,
        group=0 if width > 1 else group,
        weight=weight,
        categories=categories,
    )


def _linear(gb: dict, n_features: int, n_groups: int) -> Linear:
    """``gblinear``'s weights: ``(features + 1) x groups`` row-major, the bias row last (gblinear_model.h)."""
    w = np.asarray(gb["model"]["weights"], dtype=np.float32)
    if len(w) != (n_features + 1) * n_groups:
        raise SourceError(f"gblinear has {len(w)} weights for {n_features} features and {n_groups} groups")
    w = w.reshape(n_features + 1, n_groups)
    return Linear(weights=np.ascontiguousarray(w[:-1]), bias=np.ascontiguousarray(w[-1]))


def from_booster_json(
    doc: dict,
    *,
    feature_names: Sequence[str] | None = None,
    missing: float = math.nan,
    iteration_range: tuple[int, int] | None = None,
) -> Forest:
    """Build the IR from xgboost's model JSON (the ``{"learner": ..., "version": ...}`` document).

    ``iteration_range`` keeps rounds ``[begin, end)`` as ``Booster.predict`` does (the
    sklearn wrappers pass ``(0, best_iteration + 1)`` after early stopping).
    """
    try:
        learner = doc["learner"]
        mparam = learner["learner_model_param"]
        gb = learner["gradient_booster"]
        obj = objective(learner["objective"]["name"])
    except KeyError as exc:
        raise SourceError(f"not an xgboost model document: no {exc.args[0]!r} key") from None
    booster = gb.get("name", "gbtree")
    if booster not in ("gbtree", "dart", "gblinear"):
        raise UnsupportedModelError(f"booster {booster!r} is not supported (gbtree, dart and gblinear are)")
    n_groups = max(1, int(mparam.get("num_class", 0) or 0), int(mparam.get("num_target", 1) or 1))
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
    common = {
        "feature_names": tuple(str(n) for n in names),
        "n_groups": n_groups,
        "objective": obj,
        "missing": float(missing),
        "booster": booster,
        "targets": _targets(learner, obj, n_groups),
    }
    facts = Provenance(
        xgboost_version=".".join(str(int(v)) for v in version) if len(version) else "unknown",
        base_score=tuple(float(s) for s in scores),
    )
    if booster == "gblinear":
        # GBLinear::Pred starts every group from base_score(0) (gblinear.cc), whatever the other groups' intercepts
        margin = np.repeat(_to_margin(scores[:1], obj), n_groups)
        linear = _linear(gb, n_features, n_groups)
        return Forest(trees=(), base_margin=margin, linear=linear, provenance=facts, **common).validate()

    model = gb["gbtree"]["model"] if booster == "dart" else gb["model"]
    raw_trees = model["trees"]
    tree_info = [int(g) for g in model.get("tree_info", [0] * len(raw_trees))]
    weights = [float(w) for w in gb.get("weight_drop", [])] if booster == "dart" else []
    if booster == "dart" and len(weights) != len(raw_trees):
        raise SourceError(f"dart booster has {len(weights)} tree weights for {len(raw_trees)} trees")
    if len(tree_info) != len(raw_trees):
        raise SourceError(f"{len(tree_info)} tree groups for {len(raw_trees)} trees")

    bounds = iteration_bounds(model, len(raw_trees), n_groups)
    n_rounds = len(bounds) - 1
    begin, end = iteration_range or (0, 0)
    end = n_rounds if end in (0, None) else min(int(end), n_rounds)
    keep = range(bounds[begin], bounds[end])
    trees = tuple(_tree(raw_trees[i], i, tree_info[i], weights[i] if weights else 1.0, n_groups) for i in keep)
    facts = replace(
        facts,
        n_trees_total=len(raw_trees),
        n_rounds_total=n_rounds,
        rounds_used=(begin, end),
        num_parallel_tree=int(model["gbtree_model_param"].get("num_parallel_tree", 1)),
    )
    cats = _category_values(model, common["feature_names"])
    return Forest(
        trees=trees, base_margin=_to_margin(scores, obj), provenance=facts, category_values=cats, **common
    ).validate()

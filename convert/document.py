"""The booster document, checked against xgboost's JSON model schema before anything reads it.

Every source (a ``.json`` or ``.ubj`` file, the snapshot inside a pickle) decodes to this
one document, and :func:`checked` is its one entry point: the loader calls it as soon as
the document is decoded (and ``booster_json`` calls it again, free, for a document given
to it directly), so the wrapper logic in ``load``, the IR builder and xgboost's own loader
in ``verify`` read only documents whose fields have the types,
lengths and ranges xgboost writes (``doc/model.schema`` and ``src/tree/tree_model.cc``
in xgboost). A field that does not is a :class:`SourceError` naming its dotted path.

The checks are what a hostile or corrupted document needs, not a copy of xgboost:

* types and lengths, so nothing downstream raises a raw ``TypeError``/``IndexError``,
  and xgboost, which trusts node indices, tree ids and category segments and crashes on
  bad ones (a segmentation fault, or ``terminate``), is never handed one;
* counts bounded by what the document holds: ``num_class`` by the output groups the trees
  add to, ``num_feature`` by the features the trees split on (plus :data:`SPARE_FEATURES`
  that no split uses), since the converter builds a column of probe rows per feature and
  a margin per class while a declared count costs the file nothing;
* nothing about what is *supported*: categorical splits, vector leaves, several targets
  and ``gblinear`` boosters are checked when present and left to the IR to accept or
  refuse. The field checks themselves are in :mod:`doc_fields`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .bounds import brief
from .doc_fields import INT32_MAX, FieldChecker, key_name

#: features a model may declare beyond the highest one its trees split on (xgboost keeps
#: the training width, so unused trailing columns are normal), unless it names them all
SPARE_FEATURES = 4096
#: category values are float32-exact integers in xgboost (2**24); larger ones cost bitsets
MAX_CATEGORY = 1 << 24
_DELETED = INT32_MAX  # the split index xgboost writes for a pruned (deleted) node
_TREE_FIELDS = ("left_children", "right_children", "parents", "split_indices", "split_conditions", "default_left")
_STATS = ("loss_changes", "sum_hessian")
_CATEGORICAL = ("categories", "categories_nodes", "categories_segments", "categories_sizes")


class Document(dict):
    """A booster document that passed :func:`checked` (a dict, so it serializes as one)."""


def checked(doc: Any, *, what: str = "the model") -> Document:
    """``doc`` once every field the converter and xgboost read is well-formed; else a SourceError.

    Idempotent and free on a :class:`Document`, so callers that may receive either (the
    IR builder) call it too without checking twice. The one change it makes: vector-leaf
    trees saved by xgboost 2.0-3.1 come back in 3.2's layout (:func:`_as_3_2`).
    """
    if isinstance(doc, Document):
        return doc
    checker = _Checker(what)
    checker.document(doc)
    return Document(_as_3_2(doc, checker.pre_3_2) if checker.pre_3_2 else doc)


def _as_3_2(doc: Mapping[str, Any], indices: list[int]) -> dict[str, Any]:
    """The document with its vector-leaf trees in xgboost 3.2's layout (the others shared, not copied).

    xgboost 2.0-3.1 keep a leaf's values in its row of ``base_weights``; 3.2 moved them to
    ``leaf_weights``, indexed by the leaf's right child, and the pinned xgboost 3.2 crashes
    (a segmentation fault, measured) loading the older layout, which verification does. The
    values are the same numbers, so this changes how the document is laid out, not what it
    predicts (``tests/test_ir.py`` reads both layouts to the same forest).
    """
    out = dict(doc)
    learner = out["learner"] = dict(doc["learner"])
    gb = learner["gradient_booster"] = dict(learner["gradient_booster"])
    holder = gb
    if gb["name"] == "dart":
        holder = gb["gbtree"] = dict(gb["gbtree"])
    model = holder["model"] = dict(holder["model"])
    trees = model["trees"] = list(model["trees"])
    for i in indices:
        t = trees[i] = dict(trees[i])
        k = int(t["tree_param"]["size_leaf_vector"])
        left = np.asarray(t["left_children"])
        leaves = np.flatnonzero(left < 0)
        weights = np.asarray(t["base_weights"], dtype=np.float64).reshape(len(left), k)
        t["leaf_weights"] = weights[leaves].ravel().tolist()
        right = np.asarray(t["right_children"], dtype=np.int64).copy()
        right[leaves] = np.arange(len(leaves))
        t["right_children"] = right.tolist()
    return out


def count(value: Any, path: str, *, what: str = "the model", lo: int = 0, hi: int = INT32_MAX) -> int:
    """An integer field as xgboost writes it (a decimal string; an int where Python wrote one)."""
    return FieldChecker(what).count(value, path, lo=lo, hi=hi)


class _Checker(FieldChecker):
    """The schema: which fields each object of the document has, and how they relate."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.pre_3_2: list[int] = []  # trees with vector leaves in the layout before xgboost 3.2

    # ---- the document ------------------------------------------------------------------

    def document(self, doc: Any) -> None:
        doc = self.obj(doc, "the document")
        if "version" in doc:
            version = self.array(doc["version"], "version", "int", length=3)
            self.within(version, "version", 0, 10_000)
        learner = self.obj(self.field(doc, "learner", "the document"), "learner")
        mparam = self.params(self.field(learner, "learner_model_param", "learner"), "learner.learner_model_param")
        objective = self.obj(self.field(learner, "objective", "learner"), "learner.objective")
        self.text(self.field(objective, "name", "learner.objective"), "learner.objective.name", max_len=100)
        for group, params in objective.items():  # e.g. {"quantile_loss_param": {"quantile_alpha": "[1E-1,9E-1]"}}
            if group != "name":
                self.params(params, f"learner.objective.{key_name(group)}")
        attributes = self.obj(self.field(learner, "attributes", "learner"), "learner.attributes")
        for key, value in attributes.items():
            self.text(value, f"learner.attributes.{key_name(key)}", max_len=1 << 20)
        p = "learner.learner_model_param"
        n_features = self.count(self.field(mparam, "num_feature", p), f"{p}.num_feature", text=True)
        n_class = self.count(self.field(mparam, "num_class", p), f"{p}.num_class", text=True)
        n_target = self.count(mparam.get("num_target", "1"), f"{p}.num_target", lo=1, text=True)
        groups = max(n_class, n_target, 1)
        self.base_score(self.field(mparam, "base_score", p), f"{p}.base_score", groups)
        names = self.names(learner, "feature_names", n_features)
        self.names(learner, "feature_types", n_features)

        g = "learner.gradient_booster"
        gb = self.obj(self.field(learner, "gradient_booster", "learner"), g)
        booster = self.text(self.field(gb, "name", g), f"{g}.name", max_len=32)
        if booster == "gblinear":
            self.linear(gb, n_features, groups)
            return
        if booster == "dart":
            inner = self.obj(self.field(gb, "gbtree", "learner.gradient_booster"), "learner.gradient_booster.gbtree")
            if inner.get("name", "gbtree") != "gbtree":
                raise self.fail("learner.gradient_booster.gbtree.name", f"is {brief(inner.get('name'))}, not 'gbtree'")
            path = "learner.gradient_booster.gbtree.model"
            model = self.obj(self.field(inner, "model", "learner.gradient_booster.gbtree"), path)
        else:
            path = "learner.gradient_booster.model"
            model = self.obj(self.field(gb, "model", "learner.gradient_booster"), path)
        n_trees, used_groups, used_features, leaf_vector = self.forest(model, path, n_features, groups)
        if booster == "dart":
            self.array(self.field(gb, "weight_drop", "learner.gradient_booster"),
                       "learner.gradient_booster.weight_drop", "float", length=n_trees)  # fmt: skip
        if groups > max(used_groups, leaf_vector, 1):
            field = "num_class" if n_class >= n_target else "num_target"
            raise self.fail(
                f"{p}.{field}",
                f"is {groups}, but the trees add to {max(used_groups, 1)} output group(s) with {leaf_vector} "
                "value(s) per leaf: the document disagrees with itself",
            )
        if not names and n_features > used_features + SPARE_FEATURES:
            raise self.fail(
                f"{p}.num_feature",
                f"is {n_features}, but the trees split on features below {used_features} only and no "
                f"feature names are given; more than {SPARE_FEATURES} unused features is taken for a corrupted "
                "or hostile count",
            )
        if "best_iteration" in attributes:
            self.count(attributes["best_iteration"], "learner.attributes.best_iteration", hi=max(n_trees, 0))

    def base_score(self, value: Any, path: str, groups: int) -> None:
        """``"5E-1"`` (<= 2.x) or ``"[a,b,c]"`` (3.x: one per output); xgboost parses the text itself."""
        text = self.text(value, path, max_len=64 * groups + 64)
        try:
            parsed = json.loads(text) if text.strip().startswith("[") else float(text)
        except (ValueError, json.JSONDecodeError):
            raise self.fail(path, f"is {brief(text)}, not a number or a list of numbers") from None
        values = parsed if isinstance(parsed, list) else [parsed]
        if not values or not all(type(v) in (int, float) and math.isfinite(v) for v in values):
            raise self.fail(path, f"is {brief(text)}, not finite numbers")
        if len(values) not in (1, groups):
            raise self.fail(path, f"holds {len(values)} values for {groups} output(s)")

    def names(self, learner: Mapping[str, Any], key: str, n_features: int) -> list[str]:
        path = f"learner.{key}"
        value = learner.get(key, [])
        if not isinstance(value, list):
            raise self.fail(path, f"is {brief(value)}, not a list of strings")
        for i, feature in enumerate(value):
            self.text(feature, f"{path}[{i}]")
        if value and len(value) != n_features:
            raise self.fail(path, f"has {len(value)} entries for num_feature {n_features}")
        return value

    def linear(self, gb: Mapping[str, Any], n_features: int, groups: int) -> None:
        path = "learner.gradient_booster.model"
        model = self.obj(self.field(gb, "model", "learner.gradient_booster"), path)
        weights = self.array(self.field(model, "weights", path), f"{path}.weights", "float")
        if len(weights) != (n_features + 1) * groups:
            raise self.fail(
                f"{path}.weights",
                f"has {len(weights)} entries; (num_feature + 1) x outputs is {(n_features + 1) * groups}",
            )
        if "boosted_rounds" in model:
            self.count(model["boosted_rounds"], f"{path}.boosted_rounds")

    def forest(self, model: Mapping[str, Any], path: str, n_features: int, groups: int) -> tuple[int, int, int, int]:
        """Checks the trees; returns (trees, output groups used, features split on, values per leaf)."""
        trees = self.field(model, "trees", path)
        if not isinstance(trees, list):
            raise self.fail(f"{path}.trees", f"is {brief(trees)}, not a list of trees")
        n_trees = len(trees)
        mp = self.params(self.field(model, "gbtree_model_param", path), f"{path}.gbtree_model_param")
        self.count(self.field(mp, "num_trees", f"{path}.gbtree_model_param"), f"{path}.gbtree_model_param.num_trees",
                   lo=n_trees, hi=n_trees, text=True)  # fmt: skip
        if "num_parallel_tree" in mp:
            self.count(mp["num_parallel_tree"], f"{path}.gbtree_model_param.num_parallel_tree", text=True)
        info = self.array(self.field(model, "tree_info", path), f"{path}.tree_info", "int", length=n_trees)
        self.within(info, f"{path}.tree_info", 0, groups - 1)
        if "iteration_indptr" in model:
            ip = f"{path}.iteration_indptr"
            indptr = self.array(model["iteration_indptr"], ip, "int")
            if len(indptr) < 1 or indptr[0] != 0 or indptr[-1] != n_trees or np.any(np.diff(indptr) <= 0):
                shown = brief(model["iteration_indptr"])
                raise self.fail(ip, f"is {shown}, not increasing from 0 to the {n_trees} trees")
        if "cats" in model:
            self.cats(model["cats"], f"{path}.cats")
        used_features = leaf_vector = 0
        for i, raw in enumerate(trees):
            f, k = self.tree(raw, f"{path}.trees[{i}]", i, n_features)
            used_features, leaf_vector = max(used_features, f), max(leaf_vector, k)
        used_groups = int(info.max()) + 1 if n_trees else 0
        return n_trees, used_groups, used_features, leaf_vector

    def cats(self, value: Any, path: str) -> None:
        """The training categories (xgboost >= 3.1, ``CatContainer::Save``): per feature, numbers or UTF-8 text."""
        cats = self.obj(value, path)
        enc = self.field(cats, "enc", path)
        if not isinstance(enc, list):
            raise self.fail(f"{path}.enc", f"is {brief(enc)}, not a list")
        for i, column in enumerate(enc):
            column = self.obj(column, f"{path}.enc[{i}]")
            if "offsets" in column:  # text: UTF-8 bytes, cut at the offsets
                values = self.array(column.get("values", []), f"{path}.enc[{i}].values", "int")
                self.within(values, f"{path}.enc[{i}].values", 0, 255)
                offsets = self.array(column["offsets"], f"{path}.enc[{i}].offsets", "int")
                self.within(offsets, f"{path}.enc[{i}].offsets", 0, len(values))
                if np.any(np.diff(offsets) < 0):
                    raise self.fail(f"{path}.enc[{i}].offsets", "decrease")
            elif "values" in column:
                values = column["values"]
                kinds = set(map(type, values)) if isinstance(values, list) else {type(values)}
                if not (kinds <= {int, float} or (isinstance(values, np.ndarray) and values.dtype.kind in "iuf")):
                    raise self.fail(f"{path}.enc[{i}].values", f"is {brief(values)}, not a list of numbers")
        for key in ("feature_segments", "sorted_idx"):
            self.within(self.array(self.field(cats, key, path), f"{path}.{key}", "int"), f"{path}.{key}", 0, INT32_MAX)

    def tree(self, raw: Any, path: str, index: int, n_features: int) -> tuple[int, int]:
        """One tree; returns (1 + the highest feature it splits on, values per leaf)."""
        t = self.obj(raw, path)
        self.count(self.field(t, "id", path), f"{path}.id", lo=index, hi=index)  # xgboost places trees by id
        pp = f"{path}.tree_param"
        tp = self.params(self.field(t, "tree_param", path), pp)
        n = self.count(self.field(tp, "num_nodes", pp), f"{pp}.num_nodes", lo=1, text=True)
        self.count(self.field(tp, "num_feature", pp), f"{pp}.num_feature", text=True)
        leaf_values = max(1, self.count(self.field(tp, "size_leaf_vector", pp), f"{pp}.size_leaf_vector", text=True))
        a = {key: self.array(self.field(t, key, path), f"{path}.{key}",
                             "float" if key == "split_conditions" else "bool" if key == "default_left" else "int",
                             length=n) for key in _TREE_FIELDS}  # fmt: skip
        for key in _STATS:
            self.array(self.field(t, key, path), f"{path}.{key}", "float", length=n)
        left, right, split = a["left_children"], a["right_children"], a["split_indices"]
        inner = left >= 0
        self.within(left, f"{path}.left_children", -1, n - 1)
        parents = a["parents"]
        if parents[0] not in (-1, INT32_MAX):  # older xgboost writes the root's parent as 2**31 - 1
            raise self.fail(f"{path}.parents[0]", f"is {int(parents[0])}, but node 0 is the root")
        self.within(a["default_left"], f"{path}.default_left", 0, 1)
        self.within(split, f"{path}.split_indices", 0, INT32_MAX)
        # every inner node's children are other nodes, each the child of one node only: the
        # nodes reachable from the root then form a tree (no cycle, no shared subtree)
        children = np.concatenate([left[inner], right[inner]])
        if children.size and (children.min() < 1 or children.max() >= n or len(np.unique(children)) != children.size):
            raise self.fail(f"{path}.left_children", "and right_children do not form a tree (a child out of range, "
                            "the root, or a node with two parents)")  # fmt: skip
        owners = np.concatenate([np.flatnonzero(inner)] * 2)
        if np.any(parents[children] != owners):  # xgboost walks these up from the leaves
            i = int(children[np.flatnonzero(parents[children] != owners)[0]])
            raise self.fail(f"{path}.parents[{i}]", f"is {int(parents[i])}, but node {i} is a child of another node")
        if not np.all(np.isfinite(a["split_conditions"])):
            i = int(np.flatnonzero(~np.isfinite(a["split_conditions"]))[0])
            raise self.fail(f"{path}.split_conditions[{i}]", f"is {a['split_conditions'][i]}, not a finite number")
        used = int(split[inner].max()) + 1 if inner.any() else 0
        if used > n_features:
            i = int(np.flatnonzero(inner & (split >= n_features))[0])
            raise self.fail(f"{path}.split_indices[{i}]", f"is {int(split[i])}, but num_feature is {n_features}")
        deleted = int(np.count_nonzero((split == _DELETED) & (a["default_left"] != 0)))
        if "num_deleted" in tp:
            self.count(tp["num_deleted"], f"{pp}.num_deleted", lo=deleted, hi=deleted, text=True)
        weights = self.array(self.field(t, "base_weights", path), f"{path}.base_weights", "float")
        if len(weights) == 0 or len(weights) % n:
            raise self.fail(f"{path}.base_weights", f"has {len(weights)} entries, not a multiple of {n} nodes")
        n_leaves = int(np.count_nonzero(~inner))
        if leaf_values > 1 and "leaf_weights" not in t:  # vector leaves as xgboost 2.0-3.1 write them
            if len(weights) != n * leaf_values:
                raise self.fail(f"{path}.base_weights", f"has {len(weights)} entries for {n} nodes of "
                                f"{leaf_values} values (vector leaves without leaf_weights)")  # fmt: skip
            if not np.all(right[~inner] == -1):
                raise self.fail(f"{path}.right_children", "map leaves to rows of leaf_weights, which is missing")
            self.pre_3_2.append(index)
        elif leaf_values > 1:  # 3.2: right_children maps each leaf to its row of leaf_weights
            self.array(t["leaf_weights"], f"{path}.leaf_weights", "float", length=n_leaves * leaf_values)
            if not np.array_equal(np.sort(right[~inner]), np.arange(n_leaves)):
                raise self.fail(f"{path}.right_children", "does not map the leaves to rows of leaf_weights")
        else:
            self.within(right, f"{path}.right_children", -1, n - 1)
            if len(weights) != n:
                raise self.fail(f"{path}.base_weights", f"has {len(weights)} entries for {n} nodes")
        if "split_type" in t:
            self.categorical(t, path, n, self.array(t["split_type"], f"{path}.split_type", "int", length=n))
        return used, leaf_values

    def categorical(self, t: Mapping[str, Any], path: str, n: int, split_type: np.ndarray) -> None:
        """``split_type`` 1 nodes test membership in ``categories[segment : segment + size]``.

        The wording of the refusals is the IR's own (``booster_json``), which checks the same
        records when it is given a document directly.
        """
        self.within(split_type, f"{path}.split_type", 0, 1)
        cat = {key: self.array(self.field(t, key, path), f"{path}.{key}", "int") for key in _CATEGORICAL}
        values, nodes = cat["categories"], cat["categories_nodes"]
        segments, sizes = cat["categories_segments"], cat["categories_sizes"]
        expected = np.flatnonzero(split_type == 1)
        if not len(nodes) == len(segments) == len(sizes) or not np.array_equal(nodes, expected):
            raise self.fail(f"{path}.categories_nodes", f"is {brief(t['categories_nodes'])}, but the categorical "
                            f"splits are at nodes {brief(expected.tolist())}: the categorical split records do "
                            "not match its split types")  # fmt: skip
        bad = np.flatnonzero((values < 0) | (values >= MAX_CATEGORY))
        if bad.size:
            raise self.fail(f"{path}.categories[{int(bad[0])}]", f"is {int(values[bad[0]])}: categories are not "
                            f"distinct codes >= 0 and below {MAX_CATEGORY}")  # fmt: skip
        bad = np.flatnonzero((segments < 0) | (sizes < 0) | (segments + sizes > len(values)))
        if bad.size:
            j = int(bad[0])
            raise self.fail(f"{path}.categories_segments[{j}]", f"and categories_sizes[{j}] give the segment "
                            f"[{int(segments[j])}, {int(segments[j] + sizes[j])}), which is out of range of the "
                            f"{len(values)} categories")  # fmt: skip


__all__ = ["MAX_CATEGORY", "SPARE_FEATURES", "Document", "checked", "count"]

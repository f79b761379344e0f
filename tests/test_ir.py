"""The IR's own contracts: every model layout xgboost has written reads to the same forest; one home for shapes.

* vector-leaf trees: xgboost 2.0-3.1 keep each leaf's values in ``base_weights`` (a row per
  node); 3.2 in ``leaf_weights``, indexed by the leaf's right child. Both must read alike.
* ``Tree.compact`` (used by both emitters): reachable nodes only, parents first, right
  child = left child + 1, and it predicts what the original tree predicts.
* ``Tree.leaf``: the one-leaf tree of the intercepts and of padding.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import xgboost as xgb

from m7_convert import reference
from m7_convert.booster_json import from_booster_json
from m7_convert.ir import Forest, Tree
from m7_convert.objectives import objective
from zoo import data, y_targets


def _vector_leaf_doc() -> dict:
    X = data()
    m = xgb.XGBRegressor(n_estimators=4, max_depth=3, multi_strategy="multi_output_tree", tree_method="hist")
    return json.loads(m.fit(X, y_targets(X)).get_booster().save_raw("json"))


def _as_pre_3_2(doc: dict) -> dict:
    """The same model in the layout of xgboost 2.0-3.1 (MultiTargetTree::SaveModel before leaf_weights)."""
    old = copy.deepcopy(doc)
    for t in old["learner"]["gradient_booster"]["model"]["trees"]:
        k = int(t["tree_param"]["size_leaf_vector"])
        left, right = np.array(t["left_children"]), np.array(t["right_children"])
        weights = np.array(t["base_weights"], np.float32).reshape(-1, k)
        leaf_weights = np.array(t.pop("leaf_weights"), np.float32).reshape(-1, k)
        weights[left < 0] = leaf_weights[right[left < 0]]
        t["base_weights"] = weights.ravel().tolist()
        t["right_children"] = np.where(left < 0, -1, right).tolist()
    return old


def test_vector_leaves_read_alike_in_every_layout():
    doc = _vector_leaf_doc()
    assert "leaf_weights" in doc["learner"]["gradient_booster"]["model"]["trees"][0]
    new, old = from_booster_json(doc), from_booster_json(_as_pre_3_2(doc))
    X = data(300, seed=9)
    np.testing.assert_array_equal(reference.predict(new, X), reference.predict(old, X))
    bst = xgb.Booster()
    bst.load_model(bytearray(json.dumps(doc).encode()))
    np.testing.assert_array_equal(reference.predict(new, X), bst.inplace_predict(X))
    assert all(t.is_vector and t.leaf_value.shape[1] == 3 for t in new.trees)


def test_compact_keeps_reachable_nodes_in_order_and_predicts_the_same():
    # node 5 is unreachable; children listed out of order
    t = Tree(
        left=np.array([2, -1, 3, -1, -1, -1], np.int32),
        right=np.array([1, -1, 4, -1, -1, -1], np.int32),
        feature=np.array([0, 0, 1, 0, 0, 0], np.int32),
        threshold=np.array([0.5, 9, -1.0, 9, 9, 9], np.float32),
        default_left=np.array([True, True, False, True, True, True]),
        leaf_value=np.array([0, 1.0, 0, 2.0, 3.0, 99.0], np.float32),
    )
    c = t.compact()
    assert c.n_nodes == 5
    inner = np.flatnonzero(c.left >= 0)
    assert np.all(c.right[inner] == c.left[inner] + 1) and np.all(c.left[inner] > inner)
    assert np.all(c.threshold[c.left < 0] == 0) and not np.any(c.default_left[c.left < 0])
    forest = Forest((t,), ("a", "b"), 1, np.zeros(1, np.float32), objective("reg:squarederror"))
    X = np.array([[0, -2], [0, 0], [1, 0], [np.nan, np.nan], [0.5, -1.0]], np.float32)
    compacted = Forest((c,), ("a", "b"), 1, np.zeros(1, np.float32), forest.objective)
    np.testing.assert_array_equal(reference.predict(forest, X), reference.predict(compacted, X))


def test_leaf_trees():
    scalar, vector = Tree.leaf(1.5, group=2), Tree.leaf(np.array([1.0, -2.0]))
    assert scalar.n_nodes == 1 and scalar.leaf_value.tolist() == [1.5] and scalar.group == 2 and not scalar.is_vector
    assert vector.is_vector and vector.leaf_value.shape == (1, 2)
    assert vector.for_group(1).leaf_value.tolist() == [-2.0] and vector.for_group(1).group == 1

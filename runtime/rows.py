"""The single-row hot path in two parts: reading a feature mapping, and running one row.

``Model.predict_one`` is read -> run -> post. Reading (:func:`row_reader`) turns the bot's
dict into values in model order under the caller policy; running (:class:`RowRunner`) packs
them into this thread's float32 row and runs the session bound to it. Every shortcut here
is pinned to the plain computation (``policy.row`` through numpy's float32 cast, then
``session.run``) by ``tests/test_runtime_fastpath.py``; why each is the cheapest measured
way is in benchmarks/NOTES.md, "predict_one".
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from .errors import M7Error
from .policy import InputPolicy, to_float
from .providers import Placement
from .sessions import bound_run

#: values taken as they are on the hot path; anything else goes through to_float
_FAST = frozenset({float, int})
_fast_types = _FAST.issuperset
#: one-hot encodings remembered per input value: a few statuses in practice, never unbounded
MEMO_SIZE = 64

Reader = Callable[[Mapping[str, Any]], Sequence[Any]]


def row_reader(name: str, features: tuple[str, ...], policy: InputPolicy) -> Reader:
    """The cheapest correct reader for this policy: a mapping -> one value per feature, in order.

    Missing features are refused ("reject", naming every one) or read as 0.0 ("zero");
    one-hot columns are derived from their string input (each encoding memoised); values
    other than Python floats and ints go through :func:`~m7_runtime.policy.to_float`.
    """
    reject = policy.on_missing == "reject"
    if policy.one_hot and not reject:
        return _one_hot_reader(features, policy)
    if policy.one_hot:
        return lambda given: policy.row(features, given)
    if reject:
        getter = operator.itemgetter(*features) if len(features) > 1 else (lambda d, _f=features[0]: (d[_f],))

        def read_required(given: Mapping[str, Any]) -> Sequence[Any]:
            try:
                vals = getter(given)
            except KeyError:
                missing = [f for f in features if f not in given]
                raise M7Error(
                    f"{name}: missing feature(s) {missing}; this model's policy rejects rows without them"
                ) from None
            if not _fast_types(map(type, vals)):
                return [to_float(f, v) for f, v in zip(features, vals, strict=True)]
            return vals

        return read_required
    zeros = (0.0,) * len(features)

    def read_or_zero(given: Mapping[str, Any]) -> Sequence[Any]:
        vals = list(map(given.get, features, zeros))
        if not _fast_types(map(type, vals)):
            return [to_float(f, v) for f, v in zip(features, vals, strict=True)]
        return vals

    return read_or_zero


def _one_hot_reader(features: tuple[str, ...], policy: InputPolicy) -> Reader:
    """Zero-fill with one-hot columns (the spend models): ``policy.row``'s answer, filled C-level.

    Encoding a status costs ~1 µs, a dict lookup ~50 ns: encodings of string (and absent)
    values are memoised per encoder.
    """
    position = {f: i for i, f in enumerate(features)}
    slots = [(o, [(position[c], j) for j, c in enumerate(o.columns) if c in position], {}) for o in policy.one_hot]
    zeros = (0.0,) * len(features)

    def read(given: Mapping[str, Any]) -> Sequence[Any]:
        vals = list(map(given.get, features, zeros))
        for encoder, places, memo in slots:
            value = given.get(encoder.input)
            cacheable = value is None or value.__class__ is str
            encoded = memo.get(value) if cacheable else None
            if encoded is None:
                encoded = encoder.encode(value)
                if cacheable and len(memo) < MEMO_SIZE:
                    memo[value] = encoded
            for i, j in places:
                vals[i] = encoded[j]
        if not _fast_types(map(type, vals)):
            return policy.row(features, given)
        return vals

    read.memos = [memo for _, _, memo in slots]  # type: ignore[attr-defined]  # for tests
    return read


class RowRunner:
    """One thread's float32 input row, output buffer and bound run of one session.

    Values are packed with ``struct`` (C's float64 -> float32 rounding, as numpy casts);
    values beyond float32's range go through numpy's cast (inf) as batches do, and an int
    beyond float range is refused by name.
    """

    def __init__(
        self,
        sess: ort.InferenceSession,
        placement: Placement,
        names: tuple[str, str],
        features: tuple[str, ...],
        n_outputs: int,
        owner: object,
    ) -> None:
        self.owner = owner  # what this runner was built for (a model state): rebuilt when it changes
        self.features = features
        self.buf = np.zeros((1, len(features)), dtype=np.float32)
        self.out = np.zeros((1, n_outputs) if n_outputs > 1 else (1,), dtype=np.float32)
        self.view = memoryview(self.buf).cast("B")
        self._pack = struct.Struct(f"={len(features)}f").pack_into
        self.run = bound_run(sess, placement, names, self.buf, self.out)

    def __call__(self, vals: Sequence[Any]) -> None:
        """Pack ``vals`` into the row and run; the prediction is then in ``self.out``."""
        try:
            self._pack(self.view, 0, *vals)
        except (OverflowError, struct.error):  # beyond float32's range: numpy's cast (inf) decides, as in batches
            try:
                self.buf[0] = vals
            except (OverflowError, TypeError, ValueError):  # an int beyond float range: name it
                self.buf[0] = [to_float(f, v) for f, v in zip(self.features, vals, strict=True)]
        self.run()

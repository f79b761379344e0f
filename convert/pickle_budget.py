"""What one unpickling may still cost: operations, bytes, expanded walks, hash collisions.

Shared by the unpicklers of one load (joblib nests one per object array), and sized from
the file by :class:`bounds.Limits`. Each bound answers a way a few bytes of pickle become
a lot of work: an operation makes at most one object; a call of an allowed constructor
may copy what it is given (a 1 MB string encoded a thousand times); a graph of shared
references is small to hold but exponential to walk; keys crafted to share a hash make
every insertion scan the others.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .bounds import Limits, brief
from .pickle_guards import refuse

#: tuple keys of one container allowed to share a hash (crafted collisions make each insert scan them all)
_MAX_COLLISIONS = 16
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic, np.dtype, type)
_LEAF_TYPES = frozenset((*_LEAVES[:8], np.float64, np.float32, np.int64))  # the common leaves, by exact type


class Budget:
    """What one file may still cost, shared by the unpicklers of one load (joblib nests them)."""

    def __init__(self, limits: Limits, *, file_size: int, payload_limit: int) -> None:
        self.limits = limits
        self.max_ops = limits.max_ops(file_size)
        self.ops = 0
        self.max_bytes = limits.max_bytes(payload_limit)
        self.bytes = 0
        self.levels: dict[int, tuple[np.ndarray, int]] = {}  # arrays BUILT so far -> object-array nesting
        self.collisions: dict[tuple[int, int], int] = {}  # (container id, key hash) -> tuple keys seen
        self.containers: dict[int, Any] = {}  # keeps the ids in ``collisions`` from being reused

    def op(self) -> None:
        if self.ops > self.max_ops:
            raise refuse(
                f"runs more than {self.max_ops} operations, the budget for a file of this size "
                "(each builds an object; a real model needs a few hundred)"
            )

    def collide(self, container: Any, key_hash: int) -> None:
        """Count a tuple key's hash in its container: crafted collisions make each insert scan them all."""
        self.containers.setdefault(id(container), container)
        slot = (id(container), key_hash)
        seen = self.collisions[slot] = self.collisions.get(slot, 0) + 1
        if seen > _MAX_COLLISIONS:
            raise refuse(f"gives one container more than {_MAX_COLLISIONS} keys with the same hash")

    def charge(self, n: int, source: Any) -> None:
        """Count ``n`` bytes built by ``source`` (a callable, or what built them)."""
        self.bytes += n
        if self.bytes > self.max_bytes:
            what = source if isinstance(source, str) else f"calls of {brief(source)}"
            raise refuse(f"materializes more than {self.max_bytes} bytes through {what}, the budget for this file")

    def expanded(self, root: Any, what: str, *, instances: bool) -> None:
        """Refuse ``root`` if a walk of it would exceed the budget, or nest deeper than the limit.

        Such walks are what consumers do (repr, ``numpy.asarray`` of a nested list, hashing,
        JSON, scikit-learn's recursive helpers): a graph of k lists each holding the next one
        twice costs them 2**k, and a chain nested a million deep overflows them. Each
        container's expanded size (shared references counted each time they are reached)
        and height are computed once, so this check is linear.
        """
        limit, deepest = self.max_ops, self.limits.max_depth
        seen: dict[int, tuple[int, int]] = {}  # container id -> (expanded size, height); (0, 0) while on the path
        todo: list[tuple[Any, Any]] = [(root, None)]  # (object, its children once they are pushed)
        while todo:
            obj, kids = todo.pop()
            if kids is not None:
                n, h = 1, 0
                for c in kids:
                    if type(c) in _LEAF_TYPES:
                        n += 1
                    else:
                        cn, ch = seen.get(id(c), (1, 0))
                        n, h = n + (cn or 1), max(h, ch)
                if n > limit:
                    raise refuse(
                        f"builds {what} that expands to more than {limit} objects when walked (shared references "
                        "counted each time they are reached), the budget for this file"
                    )
                if h + 1 > deepest:
                    raise refuse(f"builds {what} nested more than {deepest} deep, deeper than any model")
                seen[id(obj)] = (n, h + 1)
                continue
            if type(obj) in _LEAF_TYPES or id(obj) in seen:
                continue
            kids = _children(obj, instances)
            seen[id(obj)] = (0, 0)
            todo.append((obj, kids))
            todo.extend((c, None) for c in kids if type(c) not in _LEAF_TYPES and id(c) not in seen)


def _children(obj: Any, instances: bool) -> Any:
    """What a walk of ``obj`` visits: items, keys and values, object-array elements, instance attributes."""
    if isinstance(obj, (list, tuple, set, frozenset)):
        return obj
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, np.ndarray):
        return obj.ravel(order="K") if obj.dtype.hasobject else ()
    if instances and not isinstance(obj, _LEAVES):
        state = getattr(obj, "__dict__", None)
        return list(state.values()) if isinstance(state, dict) else ()
    return ()


def footprint(obj: Any) -> int:
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    try:
        return sys.getsizeof(obj)
    except TypeError:
        return 64


__all__ = ["Budget", "footprint"]

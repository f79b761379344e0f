"""The globals a pickle may name, and what each accepts when the pickle calls it.

An allow-list of *names* is not enough on its own. Allowed numpy callables forge memory
when called with hostile arguments (``numpy.ndarray(shape, dtype=object, buffer=b"...")``
turns file bytes into object pointers; a dtype whose state clears its "holds objects"
flag does the same through ``frombuffer``; an object array whose state gives a longer
shape than its list of items reads past the list). Harmless constructors become costly
with hostile arguments: ``bytearray(10**12)`` allocates a terabyte, ``numpy.str_(x)``
formats a shared-reference graph ``x`` whose repr is 2**depth long, ``slice(slice(...))``
nests a million deep and is freed by C recursion that overflows the stack.

So every allowed global is listed here with the check of its arguments that the
unpickler runs *before* the call (:data:`CALLS`); a global that numpy's and Python's own
pickles only ever name, never call, takes no call at all. The numpy helpers are handed
out as guarded wrappers that accept only what numpy itself writes, and ``numpy.ndarray``
is an inert token. Messages describe hostile values with :func:`bounds.brief`, whose cost
does not depend on the value.
"""

from __future__ import annotations

import _codecs
import collections
import copyreg
import pickle
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.random._pickle as _np_random_pickle

from .bounds import brief, one_line
from .errors import UnsafePickleError

try:  # numpy >= 2 moved its core to numpy._core; pickles name either module
    from numpy._core import multiarray as _np_multiarray
    from numpy._core import numeric as _np_numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _np_multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _np_numeric  # type: ignore[no-redef]

Check = Callable[[tuple, dict], None]

#: items (nested tuples and frozensets counted) a dict key or set member may hold: hashing
#: a tuple walks it without remembering shared members, 2**depth steps for a shared graph
MAX_KEY_ITEMS = 64
_HASH_MODULUS = (1 << 61) - 1  # int hashes are taken modulo this: k and k + it collide


def refuse(what: str) -> UnsafePickleError:
    return UnsafePickleError(f"the pickle {what}; refused before it took effect (a hostile or corrupted file?)")


class _Token:
    """An inert value standing for a global that a pickle may name but must never call."""

    __slots__ = ("qualname",)

    def __init__(self, *, qualname: str) -> None:  # keyword-only: copyreg cannot re-run it on a token
        object.__setattr__(self, "qualname", qualname)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self!r} is read-only")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise refuse(f"calls {self.qualname} directly, which can build an array over raw bytes")

    def __repr__(self) -> str:
        return f"<token {self.qualname}>"


#: ``numpy.ndarray`` as a pickle names it: only the subtype argument of ``_reconstruct``
#: (and joblib's ``subclass`` field). Calling the real class with a buffer forges memory.
NDARRAY = _Token(qualname="numpy.ndarray")


# ---- dtypes and array states ------------------------------------------------------------


def checked_dtype(value: Any, *, what: str = "a dtype") -> np.dtype:
    """A plain (non-structured) dtype whose flags and size are what numpy computes for it.

    Models never need structured dtypes; refusing them removes field offsets (which numpy
    does not bound-check when they come from a pickled state) and object fields hidden
    inside a record.
    """
    if isinstance(value, np.dtype):
        dt = value
    elif (isinstance(value, str) and len(value) <= 64) or (isinstance(value, type) and issubclass(value, np.generic)):
        try:
            dt = np.dtype(value)
        except (TypeError, ValueError) as exc:
            raise refuse(f"gives {what} numpy cannot read ({brief(value)}: {one_line(str(exc))})") from exc
    else:
        raise refuse(f"gives {what} as {brief(value)}; only type strings are accepted (of at most 64 characters)")
    if dt.names is not None or dt.subdtype is not None:
        raise refuse(f"uses a structured or sub-array dtype {brief(dt)}, which no supported model needs")
    try:
        canon = np.dtype(dt.str)
    except (TypeError, ValueError) as exc:
        raise refuse(f"holds an inconsistent dtype {brief(dt)}") from exc
    if canon != dt or canon.itemsize != dt.itemsize or canon.flags != dt.flags or canon.hasobject != dt.hasobject:
        raise refuse(
            f"holds a dtype {dt.str!r} whose state disagrees with numpy's own "
            f"(itemsize {dt.itemsize} vs {canon.itemsize}, flags {dt.flags} vs {canon.flags})"
        )
    return dt


def dtype_state(inst: np.dtype, state: Any) -> tuple:
    """A dtype's pickled state, refused if structured; its flags replaced by numpy's own."""
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)):
        raise refuse(f"sets a dtype state numpy does not write ({brief(state)})")
    if state[2] is not None or state[3] is not None or state[4] is not None:
        raise refuse("sets a structured or sub-array dtype state, which no supported model needs")
    if not isinstance(state[1], str) or state[1] not in "<>|=" or len(state[1]) != 1:
        raise refuse(f"sets a dtype byte order {brief(state[1])}")
    if len(state) == 9 and state[8] is not None and not isinstance(state[8], (dict, tuple)):
        raise refuse(f"sets dtype metadata of type {type(state[8]).__name__}")
    # The flags say whether items are object pointers: numpy takes them from the file as
    # they are, so a cleared flag would let raw bytes become pointers. Keep numpy's own.
    return (*state[:7], inst.flags, *state[8:])


def element_count(shape: Any, what: str) -> int:
    """The number of elements of ``shape``: a tuple of non-negative ints."""
    if not (isinstance(shape, tuple) and len(shape) <= 64 and all(type(s) is int and s >= 0 for s in shape)):
        raise refuse(f"gives {what} the shape {brief(shape)}")
    count = 1
    for s in shape:
        count *= s
    return count


def array_state(state: Any, levels: dict[int, tuple[np.ndarray, int]], *, max_nesting: int) -> int:
    """``ndarray.__setstate__((version, shape, dtype, is_fortran, data))``, checked; returns its nesting.

    numpy trusts the state: an object array whose shape holds more items than its list
    reads past the list (a crash), and a zero-width dtype lets a shape of 10**12 cost
    nothing to state and everything to iterate. So the data must hold exactly the items
    the shape declares. ``levels`` maps arrays built so far to how many object arrays
    nest inside them: numpy frees an object array's items by C recursion, so a chain of
    object arrays a million deep would overflow the stack when freed.
    """
    if not (isinstance(state, tuple) and len(state) in (4, 5)):
        raise refuse(f"sets an array state numpy does not write ({brief(state)})")
    shape, dtype, data = state[-4], checked_dtype(state[-3], what="an array dtype"), state[-1]
    count = element_count(shape, "an array")
    if dtype.hasobject:  # (numpy itself refuses data that is not a list)
        if isinstance(data, list) and len(data) != count:
            raise refuse(f"sets {count} object array items from {brief(data)}")
        items = data if isinstance(data, list) else []
        inner = [levels[id(v)][1] for v in items if isinstance(v, np.ndarray) and id(v) in levels]
        level = 1 + max(inner, default=0)
        if level > max_nesting:
            raise refuse(f"nests object arrays more than {max_nesting} deep")
        return level
    if not isinstance(data, (bytes, bytearray, str, pickle.PickleBuffer)):
        raise refuse(f"sets array data from {brief(data)}")
    size = memoryview(data).nbytes if isinstance(data, pickle.PickleBuffer) else len(data)
    if size != count * dtype.itemsize or count > size:  # the second: zero-width items
        raise refuse(f"sets an array of {count} items of {dtype.itemsize} bytes from {size} bytes")
    return 0


# ---- guarded stand-ins for the numpy and builtin globals pickles call ----------------------


def _make_dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype`` as pickles call it: ``dtype('f8', False, True)``; always a fresh copy."""
    if not (isinstance(obj, str) and len(obj) <= 64):
        raise refuse(f"builds a dtype from {brief(obj)}; numpy pickles give a short type string")
    try:
        dt = np.dtype(obj, bool(align), True)
    except (TypeError, ValueError) as exc:
        raise refuse(f"builds a dtype from {obj!r}, which numpy cannot read ({one_line(str(exc))})") from exc
    return checked_dtype(dt)


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``numpy...multiarray._reconstruct``: numpy always writes ``(ndarray, (0,), b'b')``."""
    if subtype is not NDARRAY:
        raise refuse(f"reconstructs an array of subtype {brief(subtype)}; only numpy.ndarray is allowed")
    if element_count(shape, "an array placeholder") != 0:
        raise refuse(f"reconstructs an array with shape {brief(shape)}; numpy writes an empty placeholder")
    if isinstance(dtype, (bytes, bytearray)):
        dtype = bytes(dtype[:64]).decode("latin-1")
    return _np_multiarray._reconstruct(np.ndarray, shape, checked_dtype(dtype))


def _scalar(dtype: Any, obj: Any = None) -> Any:
    """``numpy...multiarray.scalar``: a numpy scalar from its dtype and raw bytes."""
    dt = checked_dtype(dtype)
    if dt.hasobject:
        raise refuse("builds a numpy scalar of object dtype, which numpy never writes")
    if obj is not None and not isinstance(obj, (bytes, str)):
        raise refuse(f"builds a numpy scalar from {brief(obj)}; numpy writes bytes")
    if obj is not None and len(obj) != dt.itemsize:
        raise refuse(f"builds a {dt.itemsize}-byte numpy scalar from {brief(obj)}")
    return _np_multiarray.scalar(dt) if obj is None else _np_multiarray.scalar(dt, obj)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``numpy...numeric._frombuffer`` (protocol 5 arrays): raw bytes of a plain dtype."""
    dt = checked_dtype(dtype)
    if dt.hasobject:
        raise refuse("builds an object array from raw bytes")
    if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)):
        raise refuse(f"builds an array from {brief(buf)}")
    if order not in ("C", "F", "A", "K"):
        raise refuse(f"builds an array with order {brief(order)}")
    count, size = element_count(shape, "an array"), memoryview(buf).nbytes
    if count * dt.itemsize != size or count > size:  # the second: zero-width items
        raise refuse(f"builds an array of {count} items of {dt.itemsize} bytes from {size} bytes")
    return _np_numeric._frombuffer(buf, dt, shape, order)


def _sized(kind: type) -> Callable[..., Any]:
    """``bytes``/``bytearray`` from bytes (protocol 3-4) or latin-1 text (protocol 2), never from a size.

    ``bytearray(10**10)`` would allocate and zero 10 GB from a 20-byte file.
    """

    def build(source: Any = b"", *args: Any) -> Any:
        if not isinstance(source, (bytes, bytearray, str)):
            raise refuse(f"calls {kind.__name__} with a {type(source).__name__}; pickles give its bytes")
        if args and not (len(args) == 1 and args[0] in ("latin1", "latin-1")):
            raise refuse(f"calls {kind.__name__} with the encoding {brief(args[0])}; pickles give latin-1")
        return kind(source, *args)

    build.__name__ = build.__qualname__ = kind.__name__
    return build


def _collection(kind: type) -> Callable[..., Any]:
    def build(items: Any = ()) -> Any:
        if not isinstance(items, (list, tuple, set, frozenset)):
            raise refuse(f"calls {kind.__name__} with {brief(items)}; pickles give a list")
        check_keys(items)
        return kind(items)

    build.__name__ = build.__qualname__ = kind.__name__
    return build


# ---- keys: what hashing costs -------------------------------------------------------------


def check_key(key: Any) -> None:
    """A dict key or set member whose hash is cheap and not a crafted collision.

    Hashing a tuple hashes every member, again for every shared one, so a few bytes of
    shared references cost 2**depth; ints beyond the hash modulus collide at will
    (``k`` and ``k + 2**61 - 1``), which makes each insertion scan all the others.
    """
    kind = type(key)
    if kind is str or kind is bytes or kind is float or kind is bool or key is None:
        return
    todo, seen = [key], 0
    while todo:
        k = todo.pop()
        seen += 1
        if seen > MAX_KEY_ITEMS:
            raise refuse(f"uses a key of more than {MAX_KEY_ITEMS} nested items, which is costly to hash")
        if isinstance(k, (tuple, frozenset)):
            todo.extend(k)
        elif isinstance(k, (int, np.integer)) and not -_HASH_MODULUS < int(k) < _HASH_MODULUS:
            raise refuse(f"uses the integer key {brief(int(k))}, beyond the range whose hashes cannot collide")


def check_keys(keys: Iterable[Any]) -> None:
    for k in keys:
        check_key(k)


# ---- what each allowed global accepts when called ------------------------------------------


def _inside(args: tuple, kwargs: dict) -> None:
    """The callable is one of the wrappers above, which check their own arguments."""


def _never(qualname: str) -> Check:
    def check(args: tuple, kwargs: dict) -> None:
        raise refuse(f"calls {qualname}, which numpy's and Python's own pickles only name, never call")

    return check


def _only(qualname: str, *kinds: tuple[type, ...]) -> Check:
    """Positional argument ``i`` must be an instance of ``kinds[i]``; no keywords."""

    def check(args: tuple, kwargs: dict) -> None:
        if len(args) > len(kinds) or kwargs:
            raise refuse(f"calls {qualname} with {len(args)} arguments and keywords {brief(list(kwargs))}")
        for value, allowed in zip(args, kinds, strict=False):
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise refuse(f"calls {qualname} with {brief(value)}")

    return check


_INT = (int, np.integer)
_NUMBER = (int, float, np.integer, np.floating)
_SEED = (type(None), int)
_BITGEN_CLASSES = (_np_random_pickle.MT19937, _np_random_pickle.PCG64)
_CTOR = _np_random_pickle.__bit_generator_ctor


def _reconstructor(args: tuple, kwargs: dict) -> None:
    """``copyreg._reconstructor(cls, object, None)``: protocol 0-1 objects of plain classes."""
    if kwargs or len(args) != 3 or not isinstance(args[0], type) or args[1] is not object or args[2] is not None:
        raise refuse(f"calls copyreg._reconstructor with {brief(args)}; only (class, object, None) is accepted")


def _encode(args: tuple, kwargs: dict) -> None:
    """``_codecs.encode(text, 'latin1')``: how protocol 2 writes bytes; other codecs can expand (hex)."""
    if kwargs or len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
        shown = brief(args[1]) if len(args) == 2 else f"{len(args)} arguments"
        raise refuse(f"calls _codecs.encode with {shown}; pickles encode text as latin-1 only")


def _bitgen_name(value: Any) -> bool:
    return (isinstance(value, str) and len(value) <= 32) or any(value is c for c in _BITGEN_CLASSES)


def _random_ctor(qualname: str) -> Check:
    """``__randomstate_ctor(name or bit generator[, __bit_generator_ctor])`` and ``__generator_ctor``.

    numpy calls the constructor it is given with the name, so both are pinned down here.
    """
    names = ("bit_generator_name", "bit_generator_ctor")

    def check(args: tuple, kwargs: dict) -> None:
        if len(args) > 2 or set(kwargs) - set(names[len(args) :]):
            raise refuse(f"calls {qualname} with {brief(args)} and keywords {brief(list(kwargs))}")
        bound = {**dict(zip(names, args, strict=False)), **kwargs}
        first = bound.get(names[0], "MT19937")
        if bound.get(names[1], _CTOR) is not _CTOR or not (_bitgen_name(first) or isinstance(first, _BITGEN_CLASSES)):
            raise refuse(f"calls {qualname} with {brief(first)}; numpy writes a bit generator and its constructor")

    return check


def _bit_generator_ctor(args: tuple, kwargs: dict) -> None:
    values = list(args) + list(kwargs.values())
    if len(values) > 1 or (values and not _bitgen_name(values[0])) or set(kwargs) - {"bit_generator"}:
        raise refuse(f"calls numpy.random's __bit_generator_ctor with {brief(values[0] if values else args)}")


_MULTIARRAY = {"_reconstruct": _reconstruct, "scalar": _scalar}
_NUMERIC = {"_frombuffer": _frombuffer}
_RANDOM = "numpy.random._pickle"
_VALUES_ONLY = ("bool_", "float32", "float64", "int32", "int64", "str_")

#: qualname -> (the object a pickle gets for it, the check run before the pickle calls it)
ALLOWED: dict[str, tuple[Any, Check]] = {
    "builtins.bytes": (_sized(bytes), _inside),
    "builtins.bytearray": (_sized(bytearray), _inside),
    "builtins.set": (_collection(set), _inside),
    "builtins.frozenset": (_collection(frozenset), _inside),
    "numpy.dtype": (_make_dtype, _inside),
    "numpy.ndarray": (NDARRAY, _inside),  # the token refuses every call itself
    **{f"numpy.{c}.multiarray.{k}": (v, _inside) for c in ("core", "_core") for k, v in _MULTIARRAY.items()},
    **{f"numpy.{c}.numeric.{k}": (v, _inside) for c in ("core", "_core") for k, v in _NUMERIC.items()},
    # constructors that only store what they are given, with arguments that cannot nest or expand
    "builtins.complex": (complex, _only("complex", _NUMBER, _NUMBER)),
    "builtins.slice": (slice, _only("slice", (type(None), *_INT), (type(None), *_INT), (type(None), *_INT))),
    "builtins.object": (object, _only("object")),
    "collections.OrderedDict": (collections.OrderedDict, _only("collections.OrderedDict")),
    "copyreg._reconstructor": (copyreg._reconstructor, _reconstructor),
    "_codecs.encode": (_codecs.encode, _encode),
    # named as values (a dtype parameter, an isinstance target); numpy pickles its scalars through
    # multiarray.scalar, so a call such as numpy.str_(x) is never needed (and formats x whole)
    **{f"numpy.{n}": (getattr(np, n), _never(f"numpy.{n}")) for n in _VALUES_ONLY},
    f"{_RANDOM}.__randomstate_ctor": (_np_random_pickle.__randomstate_ctor, _random_ctor("__randomstate_ctor")),
    f"{_RANDOM}.__generator_ctor": (_np_random_pickle.__generator_ctor, _random_ctor("__generator_ctor")),
    f"{_RANDOM}.__bit_generator_ctor": (_np_random_pickle.__bit_generator_ctor, _bit_generator_ctor),
    "numpy.random.mtrand.RandomState": (
        _np_random_pickle.RandomState,
        _only("RandomState", (*_SEED, _np_random_pickle.BitGenerator)),
    ),
    "numpy.random._mt19937.MT19937": (_np_random_pickle.MT19937, _only("MT19937", _SEED)),
    "numpy.random._pcg64.PCG64": (_np_random_pickle.PCG64, _only("PCG64", _SEED)),
}

#: the allowed callables -> their checks (functions and classes hash by identity)
CALLS: dict[Any, Check] = {obj: check for obj, check in ALLOWED.values() if obj is not NDARRAY}

__all__ = [
    "ALLOWED",
    "CALLS",
    "MAX_KEY_ITEMS",
    "NDARRAY",
    "array_state",
    "check_key",
    "check_keys",
    "checked_dtype",
    "dtype_state",
    "element_count",
    "refuse",
]

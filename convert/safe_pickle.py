"""Read pickled (plain or joblib) XGBoost models without running code from the file.

A pickle is a program: every global it names is imported and may be called, with
arguments the file chooses. This unpickler resolves globals through an allow-list and
refuses anything else *before* it is called, naming it. XGBoost's own classes are never
imported: they become inert stand-ins (:class:`Pickled`) that keep the state the pickle
restores, so a pickle written by any xgboost version is read the same way whatever xgboost
is installed (or none).

An allow-list of *names* is not enough on its own: some allowed numpy callables can
forge memory when called with hostile arguments (``numpy.ndarray(shape, dtype=object,
buffer=b"...")`` turns file bytes into object pointers; a dtype whose pickled state clears
its "holds objects" flag does the same through ``frombuffer``; a structured dtype whose
field offsets lie beyond its item size reads past the buffer). So the globals numpy
pickles need are handed out as guarded wrappers that accept only what numpy itself
writes, ``numpy.ndarray`` is an inert token (only ever an argument of ``_reconstruct``),
every dtype and array state is checked before numpy applies it, and the few builtins that
allocate by size take only materialized values. BUILD on a global (patching a class or
function the process shares) is refused.

joblib's format is read natively (its array wrappers and compressed containers), so this
module needs neither joblib nor xgboost. ``trust=True`` lifts the allow-list for a user
who must read a pickle with other globals in it: the file can then run any code.
"""

from __future__ import annotations

import _compat_pickle
import bz2
import gzip
import importlib
import io
import lzma
import pickle
import re
import types
import warnings
import zlib
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from .errors import SourceError, UnsafePickleError

try:  # numpy >= 2 moved its core to numpy._core; pickles name either module
    from numpy._core import multiarray as _np_multiarray
    from numpy._core import numeric as _np_numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _np_multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _np_numeric  # type: ignore[no-redef]


class Pickled:
    """Stand-in for an object of an xgboost (or joblib wrapper) class found in a pickle."""

    qualname: ClassVar[str] = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = kwargs or None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<pickled {self.qualname}>"


def _stand_in(qualname: str) -> type[Pickled]:
    return type(qualname.rsplit(".", 1)[-1], (Pickled,), {"qualname": qualname})


class _Token:
    """An inert value standing for a global that a pickle may name but must never call."""

    __slots__ = ("qualname",)

    def __init__(self, *, qualname: str) -> None:  # keyword-only: copyreg cannot re-run it on a token
        object.__setattr__(self, "qualname", qualname)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self!r} is read-only")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(f"calls {self.qualname} directly, which can build an array over raw bytes")

    def __repr__(self) -> str:
        return f"<token {self.qualname}>"


#: ``numpy.ndarray`` as a pickle names it: only the subtype argument of ``_reconstruct``
#: (and joblib's ``subclass`` field). Calling the real class with a buffer forges memory.
NDARRAY = _Token(qualname="numpy.ndarray")


# xgboost classes: recorded, never imported. Every other xgboost global (a callback such as
# EarlyStopping kept in the model's parameters) and every scikit-learn metric (an
# ``eval_metric=mean_absolute_error`` kept the same way) becomes an inert stand-in too: the
# converter never calls them, and a stand-in runs nothing when a pickle calls it.
_XGBOOST_CLASSES = {
    f"xgboost.{mod}.{cls}"
    for mod, classes in {
        "sklearn": ("XGBModel", "XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor", "XGBRanker"),
        "core": ("Booster",),
        "compat": ("XGBoostLabelEncoder",),
    }.items()
    for cls in classes
}
_JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Python 2 names (``__builtin__.set``, ``copy_reg``...) as pickle's fix_imports maps them."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _refuse(what: str) -> UnsafePickleError:
    return UnsafePickleError(f"the pickle {what}; refused before it took effect (a hostile or corrupted file?)")


# ---- guarded stand-ins for the globals numpy and Python's own pickles need ------------------


def _checked_dtype(value: Any, *, what: str = "a dtype") -> np.dtype:
    """A plain (non-structured) dtype whose flags and size are what numpy computes for it.

    Models never need structured dtypes; refusing them removes field offsets (which numpy
    does not bound-check when they come from a pickled state) and object fields hidden
    inside a record.
    """
    if isinstance(value, np.dtype):
        dt = value
    elif isinstance(value, str) or (isinstance(value, type) and issubclass(value, np.generic)):
        try:
            dt = np.dtype(value)
        except (TypeError, ValueError) as exc:
            raise _refuse(f"gives {what} numpy cannot read ({value!r}: {exc})") from exc
    else:
        raise _refuse(f"gives {what} as a {type(value).__name__} ({value!r:.80}); only type strings are accepted")
    if dt.names is not None or dt.subdtype is not None:
        raise _refuse(f"uses a structured or sub-array dtype {dt!r}, which no supported model needs")
    try:
        canon = np.dtype(dt.str)
    except (TypeError, ValueError) as exc:
        raise _refuse(f"holds an inconsistent dtype {dt!r}") from exc
    if canon != dt or canon.itemsize != dt.itemsize or canon.flags != dt.flags or canon.hasobject != dt.hasobject:
        raise _refuse(
            f"holds a dtype {dt.str!r} whose state disagrees with numpy's own "
            f"(itemsize {dt.itemsize} vs {canon.itemsize}, flags {dt.flags} vs {canon.flags})"
        )
    return dt


def _make_dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype`` as pickles call it: ``dtype('f8', False, True)``; always a fresh copy."""
    if not isinstance(obj, str):
        raise _refuse(f"builds a dtype from a {type(obj).__name__} ({obj!r:.80}); numpy pickles give a type string")
    try:
        dt = np.dtype(obj, bool(align), True)
    except (TypeError, ValueError) as exc:
        raise _refuse(f"builds a dtype from {obj!r}, which numpy cannot read ({exc})") from exc
    return _checked_dtype(dt)


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``numpy...multiarray._reconstruct``: numpy always writes ``(ndarray, (0,), b'b')``."""
    if subtype is not NDARRAY:
        raise _refuse(f"reconstructs an array of subtype {subtype!r}; only numpy.ndarray is allowed")
    if not (isinstance(shape, tuple) and all(type(s) is int for s in shape) and 0 in shape):
        raise _refuse(f"reconstructs an array with shape {shape!r}; numpy writes an empty placeholder")
    if isinstance(dtype, (bytes, bytearray)):
        dtype = bytes(dtype).decode("latin-1")
    return _np_multiarray._reconstruct(np.ndarray, shape, _checked_dtype(dtype))


def _scalar(dtype: Any, obj: Any = None) -> Any:
    """``numpy...multiarray.scalar``: a numpy scalar from its dtype and raw bytes."""
    dt = _checked_dtype(dtype)
    if dt.hasobject:
        raise _refuse("builds a numpy scalar of object dtype, which numpy never writes")
    if obj is not None and not isinstance(obj, (bytes, str)):
        raise _refuse(f"builds a numpy scalar from a {type(obj).__name__}; numpy writes bytes")
    return _np_multiarray.scalar(dt) if obj is None else _np_multiarray.scalar(dt, obj)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``numpy...numeric._frombuffer`` (protocol 5 arrays): raw bytes of a plain dtype."""
    dt = _checked_dtype(dtype)
    if dt.hasobject:
        raise _refuse("builds an object array from raw bytes")
    if not isinstance(buf, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        raise _refuse(f"builds an array from a {type(buf).__name__} buffer")
    if order not in ("C", "F", "A", "K"):
        raise _refuse(f"builds an array with order {order!r}")
    return _np_numeric._frombuffer(buf, dt, shape, order)


def _sized(kind: type) -> Callable[..., Any]:
    """``bytes``/``bytearray`` from bytes (protocol 3-4) or latin-1 text (protocol 2), never from a size.

    ``bytearray(10**10)`` would allocate and zero 10 GB from a 20-byte file.
    """

    def build(source: Any = b"", *args: Any) -> Any:
        if not isinstance(source, (bytes, bytearray, str)):
            raise _refuse(f"calls {kind.__name__} with a {type(source).__name__}; pickles give its bytes")
        return kind(source, *args)

    build.__name__ = build.__qualname__ = kind.__name__
    return build


def _collection(kind: type) -> Callable[..., Any]:
    def build(items: Any = ()) -> Any:
        if not isinstance(items, (list, tuple, set, frozenset)):
            raise _refuse(f"calls {kind.__name__} with a {type(items).__name__}; pickles give a list")
        return kind(items)

    build.__name__ = build.__qualname__ = kind.__name__
    return build


_MULTIARRAY = {"_reconstruct": _reconstruct, "scalar": _scalar}
_NUMERIC = {"_frombuffer": _frombuffer}

#: Globals resolved to guarded wrappers or tokens instead of the real object.
_GUARDED: dict[str, Any] = {
    "builtins.bytes": _sized(bytes),
    "builtins.bytearray": _sized(bytearray),
    "builtins.set": _collection(set),
    "builtins.frozenset": _collection(frozenset),
    "numpy.dtype": _make_dtype,
    "numpy.ndarray": NDARRAY,
    **{f"numpy.{core}.multiarray.{k}": v for core in ("core", "_core") for k, v in _MULTIARRAY.items()},
    **{f"numpy.{core}.numeric.{k}": v for core in ("core", "_core") for k, v in _NUMERIC.items()},
}

#: Globals resolved to the real object: constructors that only store what they are given.
#: Deliberately absent: anything that reads files or runs code (``numpy.load``,
#: ``numpy.fromfile``, ``builtins.getattr``/``eval``/``open``...), and ``builtins.range``
#: (lazy, it lets a few bytes expand into gigabytes through ``set``/``numpy`` calls).
_ALLOWED: dict[str, frozenset[str]] = {
    "builtins": frozenset({"complex", "slice", "object"}),
    "collections": frozenset({"OrderedDict"}),
    "copyreg": frozenset({"_reconstructor"}),
    "_codecs": frozenset({"encode"}),
    "numpy": frozenset({"bool_", "float32", "float64", "int32", "int64", "str_"}),
    "numpy.random._pickle": frozenset({"__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor"}),
    "numpy.random.mtrand": frozenset({"RandomState"}),
    "numpy.random._mt19937": frozenset({"MT19937"}),
    "numpy.random._pcg64": frozenset({"PCG64"}),
}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: scikit-learn modules never imported for a pickle: test and build helpers run code at import
_SKLEARN_SKIP = {"tests", "conftest", "_testing", "_mocking", "estimator_checks", "_build_utils", "externals"}


def _sklearn_estimator(module: str, name: str) -> type | None:
    """A scikit-learn estimator class (pipelines, scalers, imputers...), else None.

    Constructing one only stores its parameters (scikit-learn's own rule, checked for every
    estimator class by tests/test_pickle_security.py) and unpickling only restores its
    ``__dict__``; functions in sklearn modules are not classes and stay refused.
    """
    parts = module.split(".")
    if parts[0] != "sklearn" or not all(_IDENT.match(p) for p in parts) or not _IDENT.match(name):
        return None
    if _SKLEARN_SKIP & set(parts):
        return None
    try:
        from sklearn.base import BaseEstimator

        obj = getattr(importlib.import_module(module), name)
    except Exception:  # ImportError, AttributeError, or whatever a module raises at import
        return None
    if not (isinstance(obj, type) and BaseEstimator in obj.__mro__):
        return None
    home = obj.__module__.split(".")  # where it is defined, not just re-exported
    return obj if home[0] == "sklearn" and not _SKLEARN_SKIP & set(home) else None


def _inert(module: str) -> bool:
    """Modules whose globals are recorded as stand-ins, never imported (see _XGBOOST_CLASSES)."""
    top = module.split(".")
    return top[0] == "xgboost" or top[:2] == ["sklearn", "metrics"]


def _allowed(module: str, name: str) -> Any:
    qualname = f"{module}.{name}"
    if qualname in _GUARDED:
        return _GUARDED[qualname]
    if name in _ALLOWED.get(module, ()):
        return getattr(importlib.import_module(module), name)
    return None


_GLOBALS = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType, _Token)


class SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler lets us hook its opcodes
    dispatch: ClassVar[dict] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BytesIO, *, trust: bool = False) -> None:
        super().__init__(file)
        self.raw_file = file  # joblib writes array bytes between pickle frames
        self.size = len(file.getbuffer())
        self.trust = trust
        self.seen: set[str] = set()
        self.trusted: set[str] = set()  # globals resolved only because trust=True

    def find_class(self, module: str, name: str) -> Any:
        written = f"{module}.{name}"
        module, name = _python3_name(module, name)
        qualname = f"{module}.{name}"
        self.seen.add(qualname)
        if qualname in _XGBOOST_CLASSES or qualname == _JOBLIB_WRAPPER or _inert(module):
            return _stand_in(qualname)
        allowed = _allowed(module, name)
        if allowed is not None:
            return allowed
        estimator = _sklearn_estimator(module, name)
        if estimator is not None:
            return estimator
        if self.trust:
            self.trusted.add(qualname)
            return super().find_class(module, name)
        as_written = f" (written {written!r})" if written != qualname else ""
        raise UnsafePickleError(
            f"the pickle references {qualname!r}{as_written}, which is not on the allow-list of globals a model "
            "needs; it was refused before anything ran. If you wrote this file yourself and trust it, "
            "pass --trust-pickle (trust=True): that runs whatever code the file holds. Better, save the "
            "model with xgboost's Booster.save_model('model.json') and convert that."
        )

    def get_extension(self, code: int) -> None:
        """EXT opcodes: always through find_class (pickle's own cache is shared process-wide)."""
        key = pickle._inverted_registry.get(code)  # type: ignore[attr-defined]
        if not key:
            raise pickle.UnpicklingError(f"unregistered extension code {code}")
        self.append(self.find_class(*key))

    def load_build(self) -> None:
        """BUILD: never on a global; dtype and array states checked; joblib arrays read after it."""
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, _GLOBALS):
            name = getattr(inst, "qualname", None) or getattr(inst, "__qualname__", type(inst).__name__)
            raise _refuse(f"sets the state of the global {name!r}, which would change it for the whole process")
        if isinstance(inst, np.dtype):
            self.stack[-1] = _dtype_state(inst, state)
        elif isinstance(inst, np.ndarray):
            _check_array_state(state)
        super().load_build()
        if isinstance(inst, np.dtype):
            _checked_dtype(inst)
        top = self.stack[-1]
        if isinstance(top, Pickled) and top.qualname == _JOBLIB_WRAPPER:
            self.stack[-1] = _read_joblib_array(self, top.state)

    def load_newobj(self) -> None:
        """NEWOBJ: ``cls.__new__(cls, *args)`` only for a real class (never the ndarray token)."""
        _check_newobj(self.stack[-2])
        super().load_newobj()

    def load_newobj_ex(self) -> None:
        _check_newobj(self.stack[-3])
        super().load_newobj_ex()

    def load_bytearray8(self) -> None:
        """BYTEARRAY8 allocates its length before reading: refuse one longer than the file."""
        (n,) = pickle.unpack("<Q", self.read(8))  # type: ignore[attr-defined]
        if n > self.size:
            raise _refuse(f"declares a bytearray of {n} bytes in a file of {self.size}")
        b = bytearray(n)
        self.readinto(b)
        self.append(b)

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def _check_newobj(cls: Any) -> None:
    if isinstance(cls, _Token):
        cls()  # raises, naming it
    if not isinstance(cls, type):
        raise _refuse(f"creates an object of {cls!r}, which is not a class")


def _dtype_state(inst: np.dtype, state: Any) -> tuple:
    """A dtype's pickled state, refused if structured; its flags replaced by numpy's own."""
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)):
        raise _refuse(f"sets a dtype state numpy does not write ({state!r:.120})")
    if state[2] is not None or state[3] is not None or state[4] is not None:
        raise _refuse("sets a structured or sub-array dtype state, which no supported model needs")
    if not isinstance(state[1], str) or state[1] not in "<>|=" or len(state[1]) != 1:
        raise _refuse(f"sets a dtype byte order {state[1]!r}")
    if len(state) == 9 and state[8] is not None and not isinstance(state[8], (dict, tuple)):
        raise _refuse(f"sets dtype metadata of type {type(state[8]).__name__}")
    # The flags say whether items are object pointers: numpy takes them from the file as
    # they are, so a cleared flag would let raw bytes become pointers. Keep numpy's own.
    return (*state[:7], inst.flags, *state[8:])


def _check_array_state(state: Any) -> None:
    """``ndarray.__setstate__((version, shape, dtype, is_fortran, data))``: a plain dtype only."""
    if not (isinstance(state, tuple) and len(state) in (4, 5)):
        raise _refuse(f"sets an array state numpy does not write ({type(state).__name__} of length {len(state)})")
    _checked_dtype(state[-3], what="an array dtype")
    if not isinstance(state[-1], (list, bytes, bytearray, str, pickle.PickleBuffer)):
        raise _refuse(f"sets array data from a {type(state[-1]).__name__}")


def _read_joblib_array(unpickler: SafeUnpickler, wrapper: Any) -> np.ndarray:
    if not isinstance(wrapper, dict):
        raise SourceError(f"a joblib array wrapper holds a {type(wrapper).__name__}, not its description")
    dtype = _checked_dtype(wrapper.get("dtype"), what="a joblib array dtype")
    shape = wrapper.get("shape")
    if not (isinstance(shape, tuple) and all(type(s) is int and s >= 0 for s in shape)):
        raise _refuse(f"gives a joblib array the shape {shape!r}")
    f = unpickler.raw_file
    if dtype.hasobject:
        inner = SafeUnpickler(f, trust=unpickler.trust)
        arr = inner.load()
        unpickler.seen |= inner.seen
        unpickler.trusted |= inner.trusted
        if not isinstance(arr, np.ndarray):
            raise _refuse(f"stores a {type(arr).__name__} where joblib writes an object array")
        return arr
    if wrapper.get("numpy_array_alignment_bytes") is not None:
        (padding,) = f.read(1)
        f.read(padding)
    count = 1
    for s in shape:
        count *= s
    if count * dtype.itemsize > unpickler.size:
        raise SourceError("the joblib file ends inside an array: it is truncated")
    raw = f.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise SourceError("the joblib file ends inside an array: it is truncated")
    arr = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))  # native order, as joblib gives it
    if wrapper.get("order") == "F":
        return arr.reshape(shape[::-1]).transpose()
    return arr.reshape(shape)


# joblib's compressed containers, by magic prefix
_DECOMPRESSORS = {
    b"\x78": zlib.decompress,
    b"\x1f\x8b": gzip.decompress,
    b"BZ": bz2.decompress,
    b"\xfd7zXZ": lzma.decompress,
    b"]\x00\x00": lzma.decompress,
}


def decompress(data: bytes) -> bytes:
    """Undo joblib's compression (zlib, gzip, bz2, xz, lzma); lz4 needs the lz4 package."""
    if data.startswith(b"\x04\x22\x4d\x18"):
        raise SourceError("this joblib file is lz4-compressed; re-save it with compress=0 or zlib")
    for magic, fn in _DECOMPRESSORS.items():
        if data.startswith(magic):
            try:
                return fn(data)
            except Exception as exc:  # each library has its own error type
                raise SourceError(f"cannot decompress the file ({type(exc).__name__}: {exc}): truncated?") from exc
    return data


def load(data: bytes, *, trust: bool = False, what: str = "the file") -> tuple[Any, set[str]]:
    """Unpickle ``data`` (plain pickle or joblib) -> (object, globals it named)."""
    payload = decompress(data)
    if payload[:1] != b"\x80":  # protocol >= 2; every joblib and modern pickle starts so
        raise SourceError(
            f"{what}: unknown file type (starts with {data[:8]!r}); expected a pickle/joblib file "
            "or an xgboost .json/.ubj model"
        )
    unpickler = SafeUnpickler(io.BytesIO(payload), trust=trust)
    try:
        obj = unpickler.load()
    except SourceError:
        raise
    except (
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        RecursionError,
        OverflowError,
    ) as exc:
        raise SourceError(
            f"cannot unpickle the file ({type(exc).__name__}: {exc}): truncated or not a pickle?"
        ) from exc
    finally:
        if unpickler.trusted:  # said even when loading failed: the code has run by now
            warnings.warn(
                f"{what}: trust_pickle let the pickle import and call {sorted(unpickler.trusted)}, outside the "
                "allow-list; whatever code those run has run",
                RuntimeWarning,
                stacklevel=3,
            )
    return obj, unpickler.seen


__all__ = ["NDARRAY", "Pickled", "SafeUnpickler", "decompress", "load"]

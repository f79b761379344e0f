"""Read pickled (plain or joblib) XGBoost models without running code from the file.

A pickle is a program: every global it names is imported and may be called. This
unpickler resolves globals through an allow-list and refuses anything else *before*
it is called, naming it. XGBoost's own classes are never imported: they become inert
stand-ins (:class:`Pickled`) that keep the state the pickle restores, so a pickle written
by any xgboost version is read the same way whatever xgboost is installed (or none).

joblib's format is read natively (its array wrappers and compressed containers), so
this module needs neither joblib nor xgboost. ``trust=True`` lifts the allow-list for a
user who must read a pickle with other globals in it; it still never imports xgboost.
"""

from __future__ import annotations

import bz2
import gzip
import importlib
import io
import lzma
import pickle
import zlib
from typing import Any, ClassVar

import numpy as np

from .errors import SourceError, UnsafePickleError


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


# xgboost classes: recorded, never imported. Any xgboost global that is not a class we
# know (e.g. a callback or an eval metric function) is refused like any other global.
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

# Globals that real models need, resolved to the real object. numpy moved its core to
# numpy._core in 2.0; pickles name either, and both resolve on numpy >= 2.
_ALLOWED = {
    "builtins": {"set", "frozenset", "bytearray", "slice", "complex", "range", "object"},
    "collections": {"OrderedDict"},
    "copyreg": {"_reconstructor"},
    "_codecs": {"encode"},
    "numpy": {"dtype", "ndarray", "bool_", "float32", "float64", "int32", "int64", "str_"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
    "numpy.random._pickle": {"__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor"},
    "numpy.random.mtrand": {"RandomState"},
    "numpy.random._mt19937": {"MT19937"},
    "numpy.random._pcg64": {"PCG64"},
}


def _sklearn_estimator(module: str, name: str) -> type | None:
    """A scikit-learn estimator class (pipelines, scalers, imputers...), else None.

    Constructing one only stores parameters and unpickling only restores ``__dict__``;
    functions in sklearn modules are not classes and stay refused.
    """
    if not (module == "sklearn" or module.startswith("sklearn.")):
        return None
    try:
        from sklearn.base import BaseEstimator

        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return obj if isinstance(obj, type) and issubclass(obj, BaseEstimator) else None


class SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler lets us hook BUILD
    dispatch: ClassVar[dict] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BufferedIOBase, *, trust: bool = False) -> None:
        super().__init__(file)
        self.raw_file = file  # joblib writes array bytes between pickle frames
        self.trust = trust
        self.seen: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        qualname = f"{module}.{name}"
        self.seen.add(qualname)
        if qualname in _XGBOOST_CLASSES or qualname == _JOBLIB_WRAPPER:
            return _stand_in(qualname)
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        estimator = _sklearn_estimator(module, name)
        if estimator is not None:
            return estimator
        if self.trust:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"the pickle references {qualname!r}, which is not on the allow-list of globals a model "
            "needs; it was refused before anything ran. If you wrote this file yourself and trust it, "
            "pass --trust-pickle (trust=True); better, save the model with xgboost's "
            "Booster.save_model('model.json') and convert that."
        )

    def load_build(self) -> None:
        """After BUILD, a joblib array wrapper is followed by the raw array: read it (as joblib does)."""
        super().load_build()
        top = self.stack[-1]
        if isinstance(top, Pickled) and top.qualname == _JOBLIB_WRAPPER:
            self.stack[-1] = _read_joblib_array(self, top.state)

    dispatch[pickle.BUILD[0]] = load_build


def _read_joblib_array(unpickler: SafeUnpickler, wrapper: dict) -> np.ndarray:
    dtype = np.dtype(wrapper["dtype"])
    shape = tuple(int(s) for s in wrapper["shape"])
    f = unpickler.raw_file
    if dtype.hasobject:
        inner = SafeUnpickler(f, trust=unpickler.trust)
        arr = inner.load()
        unpickler.seen |= inner.seen
        return np.asarray(arr)
    if wrapper.get("numpy_array_alignment_bytes") is not None:
        (padding,) = f.read(1)
        f.read(padding)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    raw = f.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
        raise SourceError("the joblib file ends inside an array: it is truncated")
    arr = np.frombuffer(raw, dtype=dtype).copy()
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
    except UnsafePickleError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise SourceError(
            f"cannot unpickle the file ({type(exc).__name__}: {exc}): truncated or not a pickle?"
        ) from exc
    return obj, unpickler.seen

"""Read pickled (plain or joblib) XGBoost models without running code from the file.

A pickle is a program: every global it names is imported and may be called, with
arguments the file chooses. This unpickler resolves globals through an allow-list and
refuses anything else *before* it is called, naming it. XGBoost's own classes are never
imported: they become inert stand-ins (:class:`Pickled`) that keep the state the pickle
restores, so a pickle written by any xgboost version is read the same way whatever xgboost
is installed (or none). The allowed numpy and builtin globals, and what each accepts when
called, are in :mod:`pickle_guards`.

A pickle is also a program that can be made to run long or large from a few bytes, so
the unpickler runs on a budget (:class:`bounds.Limits`, proportional to the file size):
operations, bytes materialized by calls, the tree size of what a ``__setstate__`` or the
caller will walk, and the cost of hashing keys. The compressed containers joblib writes
are decompressed as they are read, under a cap (:mod:`payload`).

joblib's format is read natively (its array wrappers and compressed containers), so this
module needs neither joblib nor xgboost. ``trust=True`` lifts the allow-list for a user
who must read a pickle with other globals in it: the file can then run any code.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import pickle
import re
import types
import warnings
from typing import Any, ClassVar

import numpy as np

from . import pickle_guards as guards
from .bounds import Limits, brief, one_line
from .errors import SourceError, UnsafePickleError
from .payload import Payload
from .pickle_budget import Budget, footprint
from .pickle_guards import NDARRAY, refuse


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
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: scikit-learn modules never imported for a pickle: test and build helpers run code at import
_SKLEARN_SKIP = {"tests", "conftest", "_testing", "_mocking", "estimator_checks", "_build_utils", "externals"}


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Python 2 names (``__builtin__.set``, ``copy_reg``...) as pickle's fix_imports maps them."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


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


_GLOBALS = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType, guards._Token)


class SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler lets us hook its opcodes
    dispatch: ClassVar[dict] = {}

    def __init__(self, file: Payload, *, budget: Budget, trust: bool = False) -> None:
        super().__init__(file)
        self.raw_file = file  # joblib writes array bytes between pickle frames
        self.budget = budget
        self.trust = trust
        self.seen: set[str] = set()
        self.trusted: set[str] = set()  # globals resolved only because trust=True
        self.estimators: set[type] = set()  # scikit-learn classes handed out: their constructors only store

    def load(self) -> Any:
        """The standard loop (``pickle._Unpickler.load``), counting every operation against the budget."""
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)  # type: ignore[attr-defined]
        self.read = self._unframer.read
        self.readinto = self._unframer.readinto
        self.readline = self._unframer.readline
        self.metastack = []
        self.stack: list[Any] = []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch, budget = self.read, self.dispatch, self.budget
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError
                budget.ops += 1
                if budget.ops > budget.max_ops:
                    budget.op()  # raises, with the message
                dispatch[key[0]](self)
        except pickle._Stop as stop:  # type: ignore[attr-defined]
            return stop.value

    def find_class(self, module: str, name: str) -> Any:
        written = f"{module}.{name}"
        module, name = _python3_name(module, name)
        qualname = f"{module}.{name}"
        self.seen.add(qualname)
        if qualname in _XGBOOST_CLASSES or qualname == _JOBLIB_WRAPPER or _inert(module):
            return _stand_in(qualname)
        if qualname in guards.ALLOWED:
            return guards.ALLOWED[qualname][0]
        estimator = _sklearn_estimator(module, name)
        if estimator is not None:
            self.estimators.add(estimator)
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

    # ---- calls: every one checked against the allow-list's rule for that callable ----------

    def _call(self, func: Any, args: Any, kwargs: Any = None, *, new: bool = False) -> Any:
        if not isinstance(args, tuple) or (kwargs is not None and not isinstance(kwargs, dict)):
            raise refuse(f"calls {brief(func)} with arguments {brief(args)}, not a tuple")
        kwargs = kwargs or {}
        if isinstance(func, guards._Token):
            func()  # raises, naming it
        try:
            check = guards.CALLS.get(func)
        except TypeError:  # unhashable: nothing the allow-list hands out
            check = None
        if check is not None:
            check(args, kwargs)
        elif not (isinstance(func, type) and (issubclass(func, Pickled) or func in self.estimators)) and not self.trust:
            # stand-ins and scikit-learn constructors only store their arguments; under trust, anything goes
            raise refuse(f"calls {brief(func)}, which the allow-list does not let a pickle call")
        if new:
            if not isinstance(func, type):
                raise refuse(f"creates an object of {brief(func)}, which is not a class")
            result = func.__new__(func, *args, **kwargs)
        else:
            result = func(*args, **kwargs)
        self.budget.charge(footprint(result), func)
        return result

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def _instantiate(self, klass: Any, args: list) -> None:
        """INST and OBJ: ``klass(*args)``, or ``klass.__new__(klass)`` without arguments."""
        if args or not isinstance(klass, type) or hasattr(klass, "__getinitargs__"):
            self.append(self._call(klass, tuple(args)))
        else:
            self.append(self._call(klass, (), new=True))

    def load_newobj(self) -> None:
        """NEWOBJ: ``cls.__new__(cls, *args)`` only for a real class (never the ndarray token)."""
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args, new=True)

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args, kwargs, new=True)

    # ---- state: BUILD ---------------------------------------------------------------------

    def load_build(self) -> None:
        """BUILD: never on a global; dtype and array states checked; joblib arrays read after it."""
        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, _GLOBALS):
            name = getattr(inst, "qualname", None) or getattr(inst, "__qualname__", type(inst).__name__)
            raise refuse(f"sets the state of the global {name!r}, which would change it for the whole process")
        level = None
        if isinstance(inst, np.dtype):
            self.stack[-1] = guards.dtype_state(inst, state)
        elif isinstance(inst, np.ndarray):
            if id(inst) in self.budget.levels:
                raise refuse("sets the state of an array twice, which numpy never does")
            level = guards.array_state(state, self.budget.levels, max_nesting=self.budget.limits.array_nesting)
        elif not isinstance(inst, Pickled):  # a __setstate__ may walk what it is given
            self.budget.expanded(state, "an object state", instances=False)
        super().load_build()
        if level is not None:
            self.budget.levels[id(inst)] = (inst, level)
            self.budget.charge(inst.nbytes, "an array state")
        if isinstance(inst, np.dtype):
            guards.checked_dtype(inst)
        top = self.stack[-1]
        if isinstance(top, Pickled) and top.qualname == _JOBLIB_WRAPPER:
            self.stack[-1] = _read_joblib_array(self, top.state)

    # ---- containers: keys are hashed, so their cost is bounded ------------------------------

    def _check_keys(self, container: Any, keys: Any) -> None:
        for key in keys:
            guards.check_key(key)
            if isinstance(key, (tuple, frozenset)):
                self.budget.collide(container, hash(key))

    def load_setitem(self) -> None:
        if not isinstance(self.stack[-3], dict):
            raise refuse(f"sets an item of {brief(self.stack[-3])}; pickles set items of dicts only")
        self._check_keys(self.stack[-3], (self.stack[-2],))
        super().load_setitem()

    def load_setitems(self) -> None:
        items = self.stack
        target = self.metastack[-1][-1] if self.metastack and self.metastack[-1] else None
        if not isinstance(target, dict):
            raise refuse(f"sets items of {brief(target)}; pickles set items of dicts only")
        self._check_keys(target, items[0::2])
        super().load_setitems()

    def load_dict(self) -> None:
        self._check_keys(self.stack, self.stack[0::2])
        super().load_dict()

    def load_additems(self) -> None:
        target = self.metastack[-1][-1] if self.metastack and self.metastack[-1] else None
        if not isinstance(target, (set, frozenset)):
            raise refuse(f"adds items to {brief(target)}; pickles add items to sets only")
        self._check_keys(target, self.stack)
        super().load_additems()

    def load_frozenset(self) -> None:
        self._check_keys(self.stack, self.stack)
        super().load_frozenset()

    def load_bytearray8(self) -> None:
        """BYTEARRAY8 allocates its length before reading: refuse one longer than what is left.

        Outside a frame (where a large one, such as a booster's model bytes, always is) the
        bytes are read straight into the bytearray: the standard path reads them into a
        bytes object first and copies that, holding the largest item twice.
        """
        (n,) = pickle.unpack("<Q", self.read(8))  # type: ignore[attr-defined]
        left_in_frame = _unread(self._unframer.current_frame)
        self.raw_file.check(n, "a bytearray", extra=left_in_frame)
        b = bytearray(n)
        if left_in_frame:
            self.readinto(b)
        else:
            self._unframer.current_frame = None
            if self.raw_file.readinto(b) != n:
                raise pickle.UnpicklingError("pickle exhausted inside a bytearray")
        self.append(b)


# the overrides above replace the standard handlers
SafeUnpickler.dispatch = {
    code: getattr(SafeUnpickler, handler.__name__, handler) for code, handler in pickle._Unpickler.dispatch.items()
}


def _unread(frame: Any) -> int:
    """Bytes left in the unpickler's current frame (a BytesIO), which the file no longer counts."""
    if not frame:
        return 0
    here = frame.tell()
    end = frame.seek(0, 2)
    frame.seek(here)
    return end - here


def _read_joblib_array(unpickler: SafeUnpickler, wrapper: Any) -> np.ndarray:
    if not isinstance(wrapper, dict):
        raise SourceError(f"a joblib array wrapper holds {brief(wrapper)}, not its description")
    dtype = guards.checked_dtype(wrapper.get("dtype"), what="a joblib array dtype")
    count = guards.element_count(wrapper.get("shape"), "a joblib array")
    if wrapper.get("subclass", NDARRAY) is not NDARRAY:
        raise refuse(f"gives a joblib array the subclass {brief(wrapper.get('subclass'))}")
    f = unpickler.raw_file
    if dtype.hasobject:
        inner = SafeUnpickler(f, budget=unpickler.budget, trust=unpickler.trust)
        inner.estimators = unpickler.estimators
        arr = inner.load()
        unpickler.seen |= inner.seen
        unpickler.trusted |= inner.trusted
        if not isinstance(arr, np.ndarray) or arr.size != count:
            raise refuse(f"stores {brief(arr)} where joblib writes an object array of {count} items")
        return arr
    if wrapper.get("numpy_array_alignment_bytes") is not None:
        (padding,) = f.read(1)
        f.read(padding)
    nbytes = count * dtype.itemsize
    if count > nbytes:
        raise refuse(f"gives a joblib array {count} items of zero bytes")
    f.check(nbytes, "an array")
    unpickler.budget.charge(nbytes, "a joblib array")
    raw = bytearray(nbytes)  # writable, as joblib returns it, without a second copy
    if f.readinto(raw) != nbytes:
        raise SourceError("the joblib file ends inside an array: it is truncated")
    arr = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)  # native order, as joblib
    shape = wrapper["shape"]
    if wrapper.get("order") == "F":
        return arr.reshape(shape[::-1]).transpose()
    return arr.reshape(shape)


def load(
    data: bytes, *, trust: bool = False, what: str = "the file", limits: Limits | None = None
) -> tuple[Any, set[str]]:
    """Unpickle ``data`` (plain pickle or joblib) -> (object, globals it named).

    ``limits`` (default: :meth:`Limits.from_env`) bounds what the file may cost to read.
    """
    limits = limits or Limits.from_env()
    payload = Payload(data, limits=limits, what=what)
    head = payload.peek(1)
    if head != b"\x80":  # protocol >= 2; every joblib and modern pickle starts so
        raise SourceError(
            f"{what}: unknown file type (starts with {bytes(data[:8])!r}); expected a pickle/joblib file "
            "or an xgboost .json/.ubj model"
        )
    budget = Budget(limits, file_size=len(data), payload_limit=payload.limit)
    unpickler = SafeUnpickler(payload, budget=budget, trust=trust)
    try:
        obj = unpickler.load()
        budget.expanded(obj, "an object", instances=True)
    except SourceError:
        raise
    except MemoryError:
        raise SourceError(f"{what}: ran out of memory while unpickling: a hostile or corrupted file?") from None
    except RecursionError:
        raise SourceError(f"{what}: nests deeper than any model does: a hostile or corrupted file?") from None
    except Exception as exc:  # numpy, scikit-learn and the pickle machinery each raise their own types
        raise SourceError(
            f"cannot unpickle {what} ({type(exc).__name__}: {one_line(_text(exc))}): truncated or not a pickle?"
        ) from None
    finally:
        if unpickler.trusted:  # said even when loading failed: the code has run by now
            warnings.warn(
                f"{what}: trust_pickle let the pickle import and call {sorted(unpickler.trusted)}, outside the "
                "allow-list; whatever code those run has run",
                RuntimeWarning,
                stacklevel=3,
            )
    return obj, unpickler.seen


def _text(exc: BaseException) -> str:
    """An exception's message without formatting its arguments whole (a KeyError repr()s its key)."""
    if isinstance(exc, KeyError) and exc.args:
        return f"key {brief(exc.args[0])}"
    return str(exc)[:1000]


__all__ = ["NDARRAY", "Pickled", "SafeUnpickler", "load"]

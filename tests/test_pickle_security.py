"""Hostile pickles are refused before anything in them runs, and legitimate ones still load.

Every payload here is live: the same bytes given to the standard ``pickle``/``joblib``
loaders create a marker file (checked in each test, so a payload that silently stopped
working would fail the test instead of passing vacuously). Through the converter the
marker must never appear, and the error must name the global that was refused.

Payloads that attack memory rather than run code (numpy arrays over forged object
pointers, dtypes with cleared flags or out-of-bounds fields) would crash the interpreter
if they got through, so they are loaded in a child process.
"""

from __future__ import annotations

import ast
import copyreg
import importlib
import inspect
import io
import json
import os
import pickle
import pkgutil
import struct
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import xgboost as xgb
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from m7_convert import SourceError, UnsafePickleError, convert, load_source, safe_pickle
from m7_runtime.cli import main as cli_main
from zoo import data, y_binary


class Reduce:
    """Pickles as ``func(*args)``: what an attacker's ``__reduce__`` writes."""

    def __init__(self, func: Callable[..., Any], *args: Any, state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


@pytest.fixture(scope="module")
def clf() -> xgb.XGBClassifier:
    X = data(200)
    return xgb.XGBClassifier(n_estimators=3, max_depth=2, random_state=0, n_jobs=1).fit(X, y_binary(X))


# ---- payloads that run code on load ---------------------------------------------------------

PAYLOADS: dict[str, tuple[Callable[[Path], Any], tuple[str, ...]]] = {
    # name: (payload that creates the marker, the global(s) the refusal may name)
    "os.system": (lambda m: Reduce(os.system, f"touch {m}"), ("posix.system", "os.system")),
    "eval": (lambda m: Reduce(eval, f"open({str(m)!r}, 'w').close()"), ("builtins.eval",)),
    "exec": (lambda m: Reduce(exec, f"open({str(m)!r}, 'w').close()"), ("builtins.exec",)),
    "subprocess.Popen": (lambda m: Reduce(subprocess.Popen, ["touch", str(m)]), ("subprocess.Popen",)),
}


def _containers(clf: xgb.XGBClassifier) -> dict[str, Callable[[Any], Any]]:
    """Where a payload hides: alone, in a dict beside a model, in a model's state, in a Pipeline, in an array."""

    def in_model(p: Any) -> Any:
        m = pickle.loads(pickle.dumps(clf))
        m.__dict__["evil"] = p
        return m

    def in_pipeline(p: Any) -> Any:
        scaler = StandardScaler().fit(data(50, nan=0.0))
        scaler.mean_ = p
        return Pipeline([("scale", scaler), ("xgb", clf)])

    return {
        "plain": lambda p: p,
        "dict": lambda p: {"model": clf, "meta": {"notes": [1, 2, p]}},
        "model_state": in_model,
        "pipeline_step": in_pipeline,
        "object_array": lambda p: {"model": clf, "names": np.array(["a", p], dtype=object)},
    }


FORMATS: dict[str, Callable[[Any], bytes]] = {
    "pickle2": lambda o: pickle.dumps(o, protocol=2),
    "pickle4": lambda o: pickle.dumps(o, protocol=4),
    "pickle5": lambda o: pickle.dumps(o, protocol=5),
    "joblib": lambda o: _joblib_bytes(o, 0),
    "joblib_zlib": lambda o: _joblib_bytes(o, 3),
    "joblib_xz": lambda o: _joblib_bytes(o, ("xz", 3)),
}


def _joblib_bytes(obj: Any, compress: Any) -> bytes:
    bio = io.BytesIO()
    joblib.dump(obj, bio, compress=compress)
    return bio.getvalue()


def _standard_load(blob: bytes) -> Any:
    """What Market7 does today: joblib.load (which also reads plain pickles)."""
    obj = joblib.load(io.BytesIO(blob))
    for p in _walk(obj):
        if isinstance(p, subprocess.Popen):
            p.wait()
    return obj


def _walk(obj: Any):
    yield obj
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _walk(v)
    elif isinstance(obj, (list, tuple)) or (isinstance(obj, np.ndarray) and obj.dtype == object):
        for v in obj:
            yield from _walk(v)


def _assert_refused(blob: bytes, tmp_path: Path, marker: Path, names: tuple[str, ...]) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(blob)
    with pytest.raises(UnsafePickleError) as err:
        load_source(path)
    assert any(repr(n) in str(err.value) for n in names), str(err.value)
    assert "refused before anything ran" in str(err.value)
    assert not marker.exists(), "the payload ran"
    with pytest.raises(UnsafePickleError):  # the converter's front door, same result
        convert(path, out_dir=tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_code_running_payloads_are_refused(payload: str, fmt: str, tmp_path: Path):
    make, names = PAYLOADS[payload]
    marker, live = tmp_path / "pwned", tmp_path / "live"
    _assert_refused(FORMATS[fmt](make(marker)), tmp_path, marker, names)
    _standard_load(FORMATS[fmt](make(live)))
    assert live.exists(), "the payload is not live: this test would prove nothing"


@pytest.mark.parametrize("fmt", ["pickle2", "pickle5", "joblib", "joblib_zlib"])
@pytest.mark.parametrize("where", ["dict", "model_state", "pipeline_step", "object_array"])
def test_nested_payloads_are_refused(where: str, fmt: str, clf, tmp_path: Path):
    make, names = PAYLOADS["os.system"]
    wrap = _containers(clf)[where]
    marker, live = tmp_path / "pwned", tmp_path / "live"
    _assert_refused(FORMATS[fmt](wrap(make(marker))), tmp_path, marker, names)
    _standard_load(FORMATS[fmt](wrap(make(live))))
    assert live.exists()


def test_callable_smuggled_through_a_sklearn_parameter_is_refused(clf, tmp_path: Path):
    """FunctionTransformer(func=os.system): sklearn classes load, but the callable is a global."""
    marker = tmp_path / "pwned"
    pipe = Pipeline([("f", FunctionTransformer(func=os.system, kw_args={})), ("xgb", clf)])
    path = tmp_path / "pipe.pkl"
    joblib.dump(pipe, path)
    with pytest.raises(UnsafePickleError, match=r"'posix\.system'"):
        convert(path, out_dir=tmp_path / "out")
    assert not marker.exists()


def _op_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _op_str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


HANDWRITTEN: dict[str, Callable[[str], tuple[bytes, str]]] = {
    # GLOBAL + REDUCE, the classic
    "global_reduce": lambda cmd: (b"\x80\x02" + _op_global("os", "system") + _op_str(cmd) + b"\x85R.", "os.system"),
    # Python 2 module name, mapped by pickle's fix_imports
    "py2_builtin": lambda cmd: (
        b"\x80\x02" + _op_global("__builtin__", "eval") + _op_str(f"__import__('os').system({cmd!r})") + b"\x85R.",
        "__builtin__.eval",
    ),
    # INST: class looked up and called in one opcode
    "inst": lambda cmd: (b"\x80\x02(" + _op_str(cmd) + b"ios\nsystem\n.", "os.system"),
    # OBJ: MARK, class, args, OBJ
    "obj": lambda cmd: (b"\x80\x02(" + _op_global("os", "system") + _op_str(cmd) + b"o.", "os.system"),
    # STACK_GLOBAL (protocol 4) with a dotted name
    "stack_global_dotted": lambda cmd: (
        b"\x80\x04" + _op_str("os") + _op_str("path.os.system") + b"\x93" + _op_str(cmd) + b"\x85R.",
        "os.path.os.system",
    ),
    # an allowed constructor (copyreg._reconstructor) wrapping a refused one
    "reconstructor": lambda cmd: (
        b"\x80\x02"
        + _op_global("copyreg", "_reconstructor")
        + _op_global("subprocess", "Popen")
        + _op_global("builtins", "object")
        + b"N\x87R.",
        "subprocess.Popen",
    ),
}


@pytest.mark.parametrize("case", HANDWRITTEN)
def test_handwritten_opcodes_are_refused(case: str, tmp_path: Path):
    marker = tmp_path / "pwned"
    blob, name = HANDWRITTEN[case](f"touch {marker}")
    path = tmp_path / "evil.pkl"
    path.write_bytes(blob)
    with pytest.raises(UnsafePickleError, match=repr(name).replace(".", r"\.")):
        load_source(path)
    assert not marker.exists()
    if case != "reconstructor":  # (the reconstructor payload needs object.__new__(Popen) to run)
        live = tmp_path / "live"
        pickle.loads(HANDWRITTEN[case](f"touch {live}")[0])
        assert live.exists()


def test_extension_registry_cannot_bypass_the_allow_list(tmp_path: Path):
    """EXT codes resolve through copyreg's process-wide cache; a cached os.system must not leak in."""
    code = 0x7F3A
    copyreg.add_extension("posix", "system", code)
    try:
        assert pickle.loads(pickle.dumps(os.system, protocol=2)) is os.system  # primes the shared cache
        blob = b"\x80\x02\x83" + struct.pack("<H", code) + _op_str(f"touch {tmp_path / 'pwned'}") + b"\x85R."
        with pytest.raises(UnsafePickleError, match=r"'posix\.system'"):
            safe_pickle.load(blob)
        assert not (tmp_path / "pwned").exists()
    finally:
        copyreg.remove_extension("posix", "system", code)
        copyreg.clear_extension_cache()


REFUSED_GLOBALS = [
    ("numpy", "load"),
    ("numpy", "fromfile"),
    ("numpy", "save"),
    ("numpy.lib.npyio", "load"),
    ("numpy", "frompyfunc"),
    ("numpy.testing", "assert_"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("builtins", "range"),
    ("builtins", "type"),
    ("importlib", "import_module"),
    ("pickle", "loads"),
    ("_pickle", "loads"),
    ("joblib", "load"),
    ("joblib.numpy_pickle", "load"),
    ("shutil", "rmtree"),
    ("sklearn.base", "clone"),  # a function, not an estimator class
    ("sklearn.datasets", "fetch_openml"),
    ("sklearn.utils._mocking", "CheckingClassifier"),  # an estimator, but in a test helper module
    ("sklearn.utils._testing", "TempMemmap"),
    ("sklearn", "__builtins__"),
    ("numpy.core.multiarray", "_reconstruct.__globals__"),
]


@pytest.mark.parametrize(("module", "name"), REFUSED_GLOBALS, ids=[f"{m}.{n}" for m, n in REFUSED_GLOBALS])
def test_dangerous_or_unneeded_globals_are_refused_by_name(module: str, name: str):
    for blob in (
        b"\x80\x02" + _op_global(module, name) + b".",
        b"\x80\x04" + _op_str(module) + _op_str(name) + b"\x93.",
    ):
        with pytest.raises(UnsafePickleError, match=f"'{module}.{name}'".replace(".", r"\.")):
            safe_pickle.load(blob)


@pytest.mark.parametrize(
    ("module", "name"),
    [("xgboost.core", "_load_lib"), ("xgboost.callback", "EarlyStopping"), ("sklearn.metrics", "mean_absolute_error")],
)
def test_xgboost_and_metric_globals_are_inert_stand_ins(module: str, name: str, tmp_path: Path):
    """Never imported nor run: calling one (as a pickle would) only records its arguments."""
    blob = b"\x80\x02" + _op_global(module, name) + _op_str(f"touch {tmp_path / 'x'}") + b"\x85R."
    obj, seen = safe_pickle.load(blob)
    assert isinstance(obj, safe_pickle.Pickled) and obj.qualname == f"{module}.{name}"
    assert obj.args == (f"touch {tmp_path / 'x'}",) and f"{module}.{name}" in seen


def test_a_model_trained_with_callbacks_and_a_metric_function_converts(tmp_path: Path):
    from sklearn.metrics import mean_absolute_error

    X = data(300)
    y = y_binary(X)
    m = xgb.XGBClassifier(
        n_estimators=30, max_depth=2, callbacks=[xgb.callback.EarlyStopping(rounds=2)], eval_metric=mean_absolute_error
    )
    m.fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])], verbose=False)
    joblib.dump(m, tmp_path / "cb.pkl")
    result = convert(tmp_path / "cb.pkl", out_dir=tmp_path / "out")
    assert result.manifest.parity.passed
    seen = load_source(tmp_path / "cb.pkl").pickle_globals
    assert "xgboost.callback.EarlyStopping" in seen and "sklearn.metrics._regression.mean_absolute_error" in seen


# ---- payloads that attack memory (run in a child: a regression would crash, not fail) -------


class _Dtype:
    """A dtype as pickle writes it, with a chosen state."""

    def __init__(self, spec: str, state: tuple) -> None:
        self.spec, self.state = spec, state

    def __reduce__(self):
        return (np.dtype, (self.spec, False, True), self.state)


_NO_OBJECT_FLAG = _Dtype("O8", (3, "|", None, None, None, -1, -1, 0))  # "holds pointers" cleared
_FAR_FIELD = _Dtype("V8", (3, "|", None, ("a",), {"a": (np.dtype("f8"), 10**6)}, 8, 1, 16))
_OBJECT_FIELD = _Dtype("V8", (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))
_BAD_UNICODE = _Dtype("U1", (3, "<", None, None, None, 3, 4, 8))  # 3-byte unicode items
_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
_numeric = np._core.numeric if hasattr(np, "_core") else np.core.numeric
_FORGED = b"\x41" * 8  # an "object pointer" 0x4141414141414141


def _raw(*parts: bytes) -> bytes:
    return b"".join(parts)


MEMORY_ATTACKS: dict[str, tuple[bytes, str]] = {
    # numpy.ndarray(shape, dtype=object, buffer=...) turns bytes into object pointers
    "ndarray_with_object_buffer": (
        pickle.dumps(Reduce(np.ndarray, (1,), np.dtype("O"), _FORGED), protocol=2),
        "calls numpy.ndarray directly",
    ),
    "ndarray_newobj": (
        _raw(
            b"\x80\x02", _op_global("numpy", "ndarray"), pickle.dumps(((1,), np.dtype("O"), _FORGED), 2)[2:-1], b"\x81."
        ),
        "calls numpy.ndarray directly",
    ),
    # a dtype whose pickled flags say "no objects", then raw bytes through frombuffer
    "object_dtype_flags_cleared_frombuffer": (
        pickle.dumps(Reduce(_numeric._frombuffer, _FORGED, _NO_OBJECT_FLAG, (1,), "C"), protocol=2),
        "object array from raw bytes",
    ),
    # the same dtype in an ndarray state with raw bytes
    "object_dtype_flags_cleared_setstate": (
        pickle.dumps(
            Reduce(_multiarray._reconstruct, np.ndarray, (0,), b"b", state=(1, (1,), _NO_OBJECT_FLAG, False, _FORGED)),
            protocol=2,
        ),
        "object pickle not returning list",
    ),
    # a record field 1 MB past an 8-byte item: reads far outside the buffer
    "field_offset_out_of_bounds": (
        pickle.dumps(Reduce(_numeric._frombuffer, _FORGED, _FAR_FIELD, (1,), "C"), protocol=2),
        "structured or sub-array dtype",
    ),
    "object_field_in_a_record": (
        pickle.dumps(Reduce(_numeric._frombuffer, _FORGED, _OBJECT_FIELD, (1,), "C"), protocol=2),
        "structured or sub-array dtype",
    ),
    "unicode_itemsize_not_a_multiple_of_4": (
        pickle.dumps(Reduce(_numeric._frombuffer, b"A" * 9, _BAD_UNICODE, (3,), "C"), protocol=2),
        "disagrees with numpy's own",
    ),
    "structured_dtype_from_a_list": (
        pickle.dumps(Reduce(_numeric._frombuffer, _FORGED, [("a", "O")], (1,), "C"), protocol=2),
        "only type strings are accepted",
    ),
    "object_scalar_from_bytes": (
        pickle.dumps(Reduce(_multiarray.scalar, np.dtype("O"), _FORGED), protocol=2),
        "scalar of object dtype",
    ),
    # BUILD on a global: patches a function every later unpickling shares
    "build_on_a_global_function": (
        _raw(b"\x80\x02", _op_global("copyreg", "_reconstructor"), b"N}", _op_str("__defaults__"), b")s\x86b."),
        "sets the state of the global",
    ),
    "build_on_numpy_ndarray": (
        _raw(b"\x80\x02", _op_global("numpy", "ndarray"), b"}b."),
        "sets the state of the global",
    ),
    # a few bytes that would allocate gigabytes
    "bytearray_of_a_size": (pickle.dumps(Reduce(bytearray, 10**12), protocol=2), "calls bytearray with a int"),
    "bytearray8_longer_than_the_file": (
        _raw(b"\x80\x05\x96", struct.pack("<Q", 2**40), b"."),
        "declares a bytearray of 1099511627776 bytes",
    ),
    "set_of_a_range": (pickle.dumps(Reduce(set, range(10**12)), protocol=3), "'builtins.range'"),
    "huge_reconstruct_shape": (
        pickle.dumps(Reduce(_multiarray._reconstruct, np.ndarray, (10**12,), b"b"), protocol=2),
        "empty placeholder",
    ),
}

_CHILD = textwrap.dedent(
    """
    import json, sys
    from m7_convert import safe_pickle
    from m7_convert.errors import SourceError
    for line in sys.stdin:
        name, path = line.rstrip("\\n").split("\\t")
        print(json.dumps({"case": name, "started": True}), flush=True)
        try:
            obj, _ = safe_pickle.load(open(path, "rb").read())
            result = {"case": name, "loaded": repr(obj)[:200]}
        except SourceError as exc:
            result = {"case": name, "error": type(exc).__name__, "message": str(exc)}
        print(json.dumps(result), flush=True)
    """
)


@pytest.fixture(scope="module")
def memory_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("memory")
    lines = []
    for name, (blob, _) in MEMORY_ATTACKS.items():
        (folder / name).write_bytes(blob)
        lines.append(f"{name}\t{folder / name}\n")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], input="".join(lines), capture_output=True, text=True, timeout=120
    )
    results: dict[str, dict] = {}
    for line in out.stdout.splitlines():
        rec = json.loads(line)
        results[rec["case"]] = rec if "started" not in rec else {"crashed": out.returncode, "stderr": out.stderr[-500:]}
    return results


@pytest.mark.parametrize("case", MEMORY_ATTACKS)
def test_memory_forging_pickles_are_refused_without_crashing(case: str, memory_results: dict[str, dict]):
    result = memory_results.get(case)
    assert result is not None, f"the child never reached {case}"
    assert "crashed" not in result, f"the interpreter died on {case}: {result}"
    assert "loaded" not in result, f"{case} loaded: {result['loaded']}"
    assert MEMORY_ATTACKS[case][1] in result["message"], result["message"]


def test_a_forged_dtype_state_cannot_change_numpy_for_the_process():
    """copy=False asks numpy for its shared object dtype; the flags in the state are numpy's own anyway."""
    blob = pickle.dumps(Reduce(np.dtype, "O8", False, False, state=(3, "|", None, None, None, -1, -1, 0)), protocol=2)
    got, _ = safe_pickle.load(blob)
    assert got is not np.dtype("O") and got.hasobject and got.flags == np.dtype("O").flags
    assert np.dtype("O").hasobject and np.dtype("O").flags == np.dtype("O8", False, True).flags


# ---- legitimate pickles still load, and trust mode is what it says ---------------------------


def _legit_objects() -> dict[str, Any]:
    import pandas as pd
    from sklearn.impute import SimpleImputer

    X = pd.DataFrame(data(80), columns=[f"c{i}" for i in range(6)])
    y = y_binary(X.to_numpy())
    return {
        "classifier_from_dataframe": xgb.XGBClassifier(n_estimators=2, max_depth=2).fit(X, y),
        "pipeline": Pipeline(
            [("imp", SimpleImputer()), ("sc", StandardScaler()), ("x", xgb.XGBRegressor(n_estimators=2))]
        ).fit(X, y),
        "values": {
            "f": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
            "o": np.array(["x", 1, None], dtype=object),
            "u": np.array(["ab", "c"]),
            "dt": np.array(["2020-01-01"], dtype="M8[ns]"),
            "big_endian": np.arange(3, dtype=">f8"),
            "s": {1, 2},
            "fs": frozenset({3}),
            "b": bytearray(b"ab"),
            "empty_bytes": b"",
            "f32": np.float32(1.5),
            "rs": np.random.RandomState(1),
            "c": complex(1, 2),
            "sl": slice(1, 2),
            "empty": np.zeros((0, 3)),
        },
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tolist() == b.tolist() and a.strides == b.strides
    if isinstance(a, np.random.RandomState):
        return str(a.get_state()) == str(b.get_state())
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if hasattr(a, "get_params"):
        return type(a) is type(b) or isinstance(b, safe_pickle.Pickled)
    return a == b


@pytest.mark.parametrize("fmt", FORMATS)
def test_legitimate_pickles_load_in_every_format(fmt: str):
    for name, obj in _legit_objects().items():
        blob = FORMATS[fmt](obj)
        got, seen = safe_pickle.load(blob)
        assert _same(joblib.load(io.BytesIO(blob)), got), (name, fmt)  # what the standard loaders make of it
        assert all(not s.startswith(("posix", "os.", "subprocess")) for s in seen)


def test_trust_mode_loads_extra_globals_and_really_runs_code(clf, tmp_path: Path, capsys):
    """--trust-pickle: a model carrying a harmless foreign global converts; it is also a code-execution switch."""
    import datetime

    m = pickle.loads(pickle.dumps(clf))
    m.__dict__["trained_on"] = datetime.date(2024, 1, 1)
    path = tmp_path / "dated.pkl"
    joblib.dump(m, path)
    with pytest.raises(UnsafePickleError, match=r"'datetime\.date'"):
        load_source(path)
    assert cli_main(["convert", str(path), "--out-dir", str(tmp_path / "refused")]) == 1
    assert "'datetime.date'" in capsys.readouterr().err
    with pytest.warns(RuntimeWarning, match=r"let the pickle import and call \['datetime\.date'\]"):
        assert cli_main(["convert", str(path), "--out-dir", str(tmp_path / "out"), "--trust-pickle"]) == 0
    assert "WARNING: --trust-pickle" in capsys.readouterr().err
    assert (tmp_path / "out" / "dated.onnx").exists()
    with pytest.warns(RuntimeWarning):
        assert "datetime.date" in load_source(path, trust_pickle=True).pickle_globals

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pkl"
    joblib.dump({"model": clf, "x": Reduce(os.system, f"touch {marker}")}, evil)
    with pytest.raises(SourceError), pytest.warns(RuntimeWarning, match="posix.system"):
        load_source(evil, trust_pickle=True)  # loads (running the payload), then is not a model
    assert marker.exists(), "trust mode is documented to run the file's code"


def test_convert_help_flags_the_danger(capsys):
    with pytest.raises(SystemExit):
        cli_main(["convert", "--help"])
    assert "DANGEROUS" in capsys.readouterr().out


# ---- the scikit-learn rule: estimator classes only store what they are given ----------------

#: Estimator methods that run on unpickling and do more than store their arguments, each
#: reviewed: they validate, warn, or build sub-estimators and interpolators from sklearn's
#: own classes, and none reaches a file, a process or an import named by the pickle.
REVIEWED = {
    "sklearn.base.BaseEstimator.__setstate__": "checks the pickled sklearn version, then updates __dict__",
    "sklearn.isotonic.IsotonicRegression.__setstate__": "rebuilds its interpolation function from its arrays",
    "sklearn.svm._base.BaseLibSVM.__init__": "checks self._impl is a known libsvm kind",
    "sklearn.tree._classes.DecisionTreeRegressor.__init__": "maps a deprecated criterion name, with a warning",
    "sklearn.ensemble._forest.ExtraTreesRegressor.__init__": "passes a fresh ExtraTreeRegressor() to super()",
    "sklearn.ensemble._forest.RandomForestRegressor.__init__": "passes a fresh DecisionTreeRegressor() to super()",
    "sklearn.linear_model._passive_aggressive.PassiveAggressiveClassifier.__new__": "deprecation warning",
    "sklearn.linear_model._passive_aggressive.PassiveAggressiveRegressor.__new__": "deprecation warning",
}


def _only_stores(fn: Callable) -> bool:
    """``self.x = x`` lines (and a docstring / super().__init__ call): nothing else."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    except (OSError, TypeError):
        return True  # a C slot wrapper (object.__init__)
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and "super()" in ast.unparse(stmt.value):
            continue
        if (
            isinstance(stmt, ast.Assign)
            and all(isinstance(t, ast.Attribute) and ast.unparse(t.value) == "self" for t in stmt.targets)
            and isinstance(stmt.value, (ast.Name, ast.Constant, ast.Attribute))
        ):
            continue
        if isinstance(stmt, ast.Pass):
            continue
        return False
    return True


@pytest.mark.slow
def test_every_loadable_sklearn_estimator_only_stores_its_state():
    """The allow-list admits any BaseEstimator class outside sklearn's test helpers: check what they run."""
    import sklearn

    unreviewed = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for info in pkgutil.walk_packages(sklearn.__path__, "sklearn."):
            if safe_pickle._SKLEARN_SKIP & set(info.name.split(".")):
                continue
            try:
                module = importlib.import_module(info.name)
            except ImportError:
                continue
            for name, obj in vars(module).items():
                if safe_pickle._sklearn_estimator(info.name, name) is None:
                    continue
                for meth in ("__init__", "__new__", "__setstate__"):
                    owner = next((k for k in obj.__mro__ if meth in vars(k)), object)
                    if owner is object:
                        continue
                    qual = f"{owner.__module__}.{owner.__qualname__}.{meth}"
                    fn = vars(owner)[meth]
                    if qual not in REVIEWED and (meth != "__init__" or not _only_stores(fn)):
                        unreviewed.append(qual)
    assert not sorted(set(unreviewed)), f"review these and add them to REVIEWED: {sorted(set(unreviewed))}"

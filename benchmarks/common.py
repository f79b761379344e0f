"""What every section shares: the six models, their inputs, and the baselines a user would otherwise pick.

Baselines are built the way a user would build them, with the thread count made explicit:

* the **pickle**: ``joblib.load`` + the map's call site (``predict_proba([vector])[0][1]``,
  ``predict([vector])[0]`` for the spend models), as Market7 runs today;
* ``Booster.inplace_predict``: xgboost's fastest prediction call, ``nthread`` set;
* **stock onnxmltools**: ``convert_xgboost`` of a copy of the booster with the feature
  names removed (onnxmltools only accepts ``f0..fN``, #624), ``target_opset=15``, run by
  onnxruntime with ``intra_op_num_threads`` set;
* **TL2cgen**: the booster compiled to C by gcc (treelite + tl2cgen), cached by model hash;
* our **tree** and **tensor** flavors through ``m7_runtime`` (tensor only where the artifact
  ships it).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
ONNX = ROOT / "onnx"

#: the six Market7 models: artifact name -> (drop-in function name, drop-in keyword args)
SIX: dict[str, tuple[str, dict[str, Any]]] = {
    "xgb_recovery_model": ("predict_recovery_odds", {}),
    "xgb_confidence_model": ("predict_confidence_score", {}),
    "xgb_spend_model": ("predict_spend_volume", {}),
    "xgb_dca_spend_model": ("predict_spend_volume", {"use_dca_model": True}),
    "xgb_model": ("predict_legacy", {}),
    "safu_exit_model": ("predict_safu_exit", {}),
}
#: the model the issue's targets are stated on
HEADLINE = "xgb_recovery_model"
BTC_STATUS_KEYS = ("btc_status_bullish", "btc_status_bearish", "btc_status_neutral", "btc_status_nan")


def cpu_threads() -> int:
    """Cores this process may use, capped by ``OMP_NUM_THREADS`` when that is set.

    xgboost and TL2cgen run on OpenMP, which refuses more threads than OMP_NUM_THREADS (a
    Dask worker environment sets it to 1, for one); every path then gets that many, so the
    comparison stays at the same thread count.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        cores = min(cores, int(omp))
    return cores


@functools.cache
def make_models() -> ModuleType:
    """``models/make_models.py`` is a script, not a package: import it by path (for its data generator)."""
    spec = importlib.util.spec_from_file_location("make_models", MODELS / "make_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_models", module)
    spec.loader.exec_module(module)
    return module


def snapshot_rows(n: int, *, seed: int) -> list[dict[str, Any]]:
    """``n`` Market7 position snapshots as the dicts a bot passes (Python floats/ints, NaN gaps).

    An absent ``btc_status`` (None/NaN in the table) is left out of the dict: the map's spend
    call site does ``key.endswith(features.get("btc_status", "nan"))``, which raises on None.
    """
    df = make_models().generate_snapshots(n, seed=seed)
    rows = df.to_dict("records")
    for r in rows:
        if not isinstance(r.get("btc_status"), str):
            r.pop("btc_status", None)
    return rows


def feature_matrix(features: tuple[str, ...] | list[str], n: int, *, seed: int) -> np.ndarray:
    """A float32 C-contiguous ``(n, len(features))`` batch of snapshots in the model's column order."""
    mm = make_models()
    table = mm.feature_table(mm.generate_snapshots(n, seed=seed))
    return np.ascontiguousarray(table[list(features)].to_numpy(dtype=np.float32))


def artifact_features(name: str, onnx_dir: Path = ONNX) -> tuple[str, ...]:
    import m7_runtime

    return m7_runtime.load(onnx_dir / f"{name}.manifest.json").feature_names


# ---- the pickle, as Market7 calls it ------------------------------------------------------------
@functools.cache
def load_pickle(name: str) -> Any:
    import joblib

    return joblib.load(MODELS / f"{name}.pkl")


def pickle_call_site(name: str) -> Callable[[Mapping[str, Any]], float]:
    """The model map's call site for ``name`` (dict in, float out) on the loaded pickle, one thread.

    Transcribed from the map (see tests/market7_callsites.py for the checked version);
    missing-feature checks are included because the call site does them on every call.
    """
    model = load_pickle(name)
    model.set_params(n_jobs=1)
    names = list(model.feature_names_in_)
    required = set(names)
    if name in ("xgb_spend_model", "xgb_dca_spend_model"):
        base = names[:15]

        def spend(features: Mapping[str, Any]) -> float:
            vector = [features[f] if f in features else 0.0 for f in base]  # noqa: SIM401 (the map's code)
            status = features.get("btc_status", "nan")
            vector += [1.0 if k.endswith(status) else 0.0 for k in BTC_STATUS_KEYS]
            return max(0.0, float(model.predict([vector])[0]))

        return spend
    if name == "safu_exit_model":

        def safu(features: Mapping[str, Any]) -> float:
            return float(model.predict_proba([[features.get(f, 0.0) for f in names]])[0][1])

        return safu

    def reject(features: Mapping[str, Any]) -> float:
        if required - set(features.keys()):
            return float("nan")
        return float(model.predict_proba([[features[f] for f in names]])[0][1])

    return reject


def booster(name: str, *, nthread: int) -> Any:
    """A copy of the pickle's booster set to ``nthread`` threads."""
    b = load_pickle(name).get_booster().copy()
    b.set_param({"nthread": nthread})
    return b


# ---- stock onnxmltools ----------------------------------------------------------------------------
@functools.cache
def stock_onnx_bytes(name: str) -> bytes:
    """What a user gets from stock onnxmltools for one of the six pickles."""
    return stock_onnx_from_booster(load_pickle(name).get_booster())


def stock_onnx_from_booster(b: Any) -> bytes:
    """``convert_xgboost`` on a copy of ``b`` with the feature names removed (f0..fN, #624), opset 15."""
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    b = b.copy()
    b.feature_names = None
    b.feature_types = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = convert_xgboost(b, initial_types=[("input", FloatTensorType([None, b.num_features()]))], target_opset=15)
    return onx.SerializeToString()


def ort_session(data: bytes, *, threads: int) -> Any:
    """A CPU onnxruntime session with ``threads`` intra-op threads and otherwise default options."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class StockOnnx:
    """Stock onnxmltools' graph in a session; ``predict`` returns what the pickle's caller reads."""

    session: Any
    classifier: bool

    @classmethod
    def build(cls, name: str, *, threads: int) -> StockOnnx:
        return cls.from_bytes(stock_onnx_bytes(name), threads=threads)

    @classmethod
    def from_bytes(cls, data: bytes, *, threads: int) -> StockOnnx:
        sess = ort_session(data, threads=threads)
        return cls(sess, len(sess.get_outputs()) > 1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        outs = self.session.run(None, {"input": x})
        return outs[1][:, 1] if self.classifier else outs[0].reshape(-1)


# ---- TL2cgen ----------------------------------------------------------------------------------------
def tl2cgen_available() -> str | None:
    """None when TL2cgen can run here, else why not (the section then skips it and says so)."""
    import shutil

    for mod in ("tl2cgen", "treelite"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install 'market7-onnx[bench]')"
    if shutil.which("gcc") is None:
        return "no C compiler (gcc) on PATH"
    return None


def tl2cgen_library(booster_obj: Any, cache: Path, *, key: str) -> Path:
    """Compile ``booster_obj`` to a shared library with gcc once; later runs reuse it (keyed by model bytes)."""
    import tl2cgen
    import treelite

    raw = bytes(booster_obj.save_raw("json"))
    digest = hashlib.sha256(raw + tl2cgen.__version__.encode()).hexdigest()[:16]
    lib = cache / "tl2cgen" / f"{key}-{digest}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        model = treelite.frontend.from_xgboost(booster_obj)
        tmp = lib.with_suffix(".tmp.so")
        tl2cgen.export_lib(model, toolchain="gcc", libpath=str(tmp), params={"parallel_comp": max(2, cpu_threads())})
        tmp.replace(lib)
    return lib


@dataclass(frozen=True)
class Tl2cgen:
    """A compiled predictor; ``predict`` includes building the DMatrix, as a user's call would."""

    predictor: Any

    @classmethod
    def build(cls, lib: Path, *, threads: int) -> Tl2cgen:
        import tl2cgen

        return cls(tl2cgen.Predictor(str(lib), nthread=threads))

    def predict(self, x: np.ndarray) -> np.ndarray:
        import tl2cgen

        return self.predictor.predict(tl2cgen.DMatrix(x, dtype="float32")).reshape(len(x), -1)[:, 0]


# ---- our flavors ------------------------------------------------------------------------------------
def artifact_flavors(name: str, onnx_dir: Path = ONNX) -> tuple[str, ...]:
    """The flavors a bundled artifact ships (the tensor flavor is measured only where it exists)."""
    import json

    raw = json.loads((onnx_dir / f"{name}.manifest.json").read_text())
    return tuple(raw.get("flavors", {}))


def silence_library_logs() -> None:
    """xgboost and treelite print version notes on load; they would interleave with our progress lines."""
    import logging

    for name in ("treelite", "tl2cgen"):
        logging.getLogger(name).setLevel(logging.ERROR)

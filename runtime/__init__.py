"""m7_runtime: run verified Market7 ONNX artifacts with numpy and onnxruntime only.

    import m7_runtime
    model = m7_runtime.load("onnx/xgb_recovery_model.manifest.json")
    model.predict_one({"step": 2, "rsi": 31.5, ...})

The drop-in functions a bot swaps in for its xgboost utilities are in ``m7_runtime.market7``.
"""

from __future__ import annotations

from .errors import M7Error
from .model import Model, load, load_dir
from .policy import InputPolicy


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata on first use.

    Not at import: ``importlib.metadata`` pulls in email, zipfile, csv... (~60 ms and ~3 MB
    of a bot's cold start, benchmarks/NOTES.md, "Cold start").
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("market7-onnx")
    except PackageNotFoundError:  # running from a source tree without installing
        value = "0+unknown"
    globals()["__version__"] = value
    return value


__all__ = ["InputPolicy", "M7Error", "Model", "__version__", "load", "load_dir"]

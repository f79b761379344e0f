"""m7_runtime: run verified Market7 ONNX artifacts with numpy and onnxruntime only.

    import m7_runtime
    model = m7_runtime.load("onnx/xgb_recovery_model.manifest.json")
    model.predict_one({"step": 2, "rsi": 31.5, ...})

The drop-in functions a bot swaps in for its xgboost utilities are in ``m7_runtime.market7``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import M7Error
from .model import Model, load, load_dir
from .policy import InputPolicy

try:
    __version__ = version("market7-onnx")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["InputPolicy", "M7Error", "Model", "__version__", "load", "load_dir"]

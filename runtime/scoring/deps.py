"""The optional dependencies of batch scoring, imported on first use.

pyarrow and tqdm (the ``batch`` extra) and dask (the ``dask`` extra) are imported inside the
functions that use them, so ``import m7_runtime`` and ``m7onnx --help`` load neither.
"""

from __future__ import annotations

import importlib
from typing import Any

from m7_runtime.errors import M7Error


def require(module: str, extra: str = "batch") -> Any:
    """Import an optional dependency, or say which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise M7Error(
            f"batch scoring needs {module.split('.')[0]}: pip install 'market7-onnx[{extra}]' ({exc})"
        ) from exc


def pyarrow() -> Any:
    return require("pyarrow")

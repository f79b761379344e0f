"""m7_convert: pickled or saved XGBoost models -> verified ONNX artifacts + manifest.

Stages, one module each: ``load`` (file -> Source) -> ``booster_json`` -> ``ir`` (typed forest) -> ``emit_*``
(one ONNX flavor each) -> ``verify`` (parity with xgboost) -> ``write`` (artifacts and
manifest). ``driver.convert`` runs them; ``reference`` evaluates the IR in numpy.
"""

from __future__ import annotations

from .booster_json import from_booster_json
from .driver import Conversion, convert
from .errors import ConvertError, ParityError, SourceError, UnsafePickleError, UnsupportedModelError
from .ir import Forest, Tree
from .load import Source, load_source
from .recheck import recheck

__all__ = [
    "Conversion",
    "ConvertError",
    "Forest",
    "ParityError",
    "Source",
    "SourceError",
    "Tree",
    "UnsafePickleError",
    "UnsupportedModelError",
    "convert",
    "from_booster_json",
    "load_source",
    "recheck",
]

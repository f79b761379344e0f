"""Stage 1, load: any supported file -> :class:`Source` (booster JSON + how it predicts).

Accepted: pickles (plain or joblib, compressed or not) of ``XGBClassifier``,
``XGBRegressor``, ``XGBRF*``, a raw ``Booster``, or a scikit-learn ``Pipeline`` ending in
one of them; and xgboost's native ``.json`` / ``.ubj`` model files. The file type is
sniffed from its bytes, not its name. The booster itself is always read from the JSON
document xgboost embeds, so the installed xgboost version does not matter here.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import safe_pickle, ubjson
from .errors import SourceError, UnsupportedModelError
from .safe_pickle import Pickled

_CLASSIFIERS = {"XGBClassifier", "XGBRFClassifier"}
_REGRESSORS = {"XGBRegressor", "XGBRFRegressor", "XGBModel"}
_RANKERS = {"XGBRanker"}  # predict() is the margin of a rank:* objective
_WRAPPER_CLASS = {"classifier": "XGBClassifier", "ranker": "XGBRanker"}  # a saved model's _estimator_type


@dataclass(frozen=True, eq=False)
class Source:
    """A loaded model: its booster document and the prediction semantics of its wrapper."""

    path: Path
    sha256: str
    format: str  # "pickle" | "json" | "ubj"
    model_class: str  # e.g. "xgboost.sklearn.XGBClassifier", "sklearn.pipeline.Pipeline"
    estimator: str  # "classifier" | "regressor" | "ranker" | "booster"
    document: dict[str, Any]  # xgboost's model JSON: {"learner": ..., "version": ...}
    missing: float = math.nan
    iteration_range: tuple[int, int] | None = None  # rounds [begin, end) the wrapper predicts with
    feature_names: tuple[str, ...] | None = None  # names the model carries, if any
    preprocessor: Any = None  # fitted scikit-learn steps before the booster (a Pipeline prefix)
    pickle_globals: frozenset[str] = field(default_factory=frozenset)

    @property
    def xgboost_version(self) -> str:
        version = self.document.get("version", [])
        return ".".join(str(int(v)) for v in version) if len(version) else "unknown"

    @property
    def best_iteration(self) -> int | None:
        return None if self.iteration_range is None else self.iteration_range[1] - 1


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_json(data: bytes) -> bool:
    """JSON text and UBJSON both open with ``{``; UBJSON follows it with a type marker."""
    return data[:1] == b"{" and data[1:2] in (b'"', b" ", b"\n", b"\r", b"\t", b"}")


def _decode_document(data: bytes, what: str) -> dict[str, Any]:
    """JSON or UBJSON bytes -> the model document (unwrapping a pickle snapshot's "Model")."""
    data = bytes(data)
    try:
        if _is_json(data):
            doc = json.loads(data)
        elif data[:1] == b"{":
            doc = ubjson.loads(data)
        elif data[:4] == b"binf" or data[:1] == b"\x00":
            raise SourceError(
                f"{what} is in xgboost's old binary format, which only the xgboost that wrote it can read; "
                "load it there and save_model('model.json'), then convert the JSON"
            )
        else:
            raise SourceError(f"{what} is neither JSON nor UBJSON (starts with {data[:8]!r})")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{what} is not valid JSON ({exc}): truncated?") from exc
    except RecursionError:
        raise SourceError(f"{what} nests containers deeper than any model does: corrupted or hostile") from None
    if isinstance(doc, dict) and "Model" in doc:  # memory snapshot: {"Config": ..., "Model": ...}
        doc = doc["Model"]
    if not isinstance(doc, dict) or "learner" not in doc:
        raise SourceError(f"{what} is not an xgboost model document (no 'learner')")
    return doc


def _sklearn_attrs(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the sklearn wrapper stores in a saved model: ``attributes.scikit_learn``."""
    raw = doc["learner"].get("attributes", {}).get("scikit_learn")
    try:
        return json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}


def _best_rounds(doc: Mapping[str, Any], booster_state: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """The sklearn wrappers predict with rounds [0, best_iteration + 1) when it is set."""
    best = doc["learner"].get("attributes", {}).get("best_iteration")
    if best is None and booster_state:
        best = booster_state.get("best_iteration")  # xgboost 1.x kept it on the Python object
    return None if best is None else (0, int(best) + 1)


def _names(values: Any) -> tuple[str, ...] | None:
    if values is None or len(values) == 0:
        return None
    return tuple(str(v) for v in values)


def _from_booster(booster: Pickled, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    state = booster.state if isinstance(booster.state, dict) else {}
    handle = state.get("handle")
    if handle is None:
        raise SourceError(f"{what} holds an empty Booster (was the model fitted?)")
    if not isinstance(handle, (bytes, bytearray, memoryview)):  # bytes(10**10) would allocate 10 GB
        raise SourceError(f"{what} holds a Booster whose model is a {type(handle).__name__}, not its bytes")
    return _decode_document(bytes(handle), f"the booster inside {what}"), state


def _source_from_object(obj: Any, base: dict[str, Any], what: str) -> Source:
    preprocessor = None
    outer_names: tuple[str, ...] | None = None
    model_class = _qualname(obj)
    if hasattr(obj, "steps") and type(obj).__name__ == "Pipeline":
        steps = list(obj.steps)
        if not steps or not isinstance(steps[-1][1], Pickled):
            last = steps[-1][1] if steps else None
            raise UnsupportedModelError(
                f"{what}: the Pipeline must end in an XGBoost model, it ends in {_qualname(last)}"
            )
        prefix = [(n, s) for n, s in steps[:-1] if s not in (None, "passthrough")]
        if prefix:
            preprocessor = type(obj)(prefix)
        outer_names = _names(getattr(obj, "feature_names_in_", None))
        obj = steps[-1][1]
        model_class = f"{model_class}[{' -> '.join(_qualname(s) for _, s in steps)}]"
    if not isinstance(obj, Pickled):
        raise SourceError(f"{what} holds a {_qualname(obj)}, not an XGBoost model")
    short = obj.qualname.rsplit(".", 1)[-1]
    if short == "Booster":
        doc, _ = _from_booster(obj, what)
        return Source(**base, model_class=model_class, estimator="booster", document=doc,
                      feature_names=_names(doc["learner"].get("feature_names")))  # fmt: skip
    if short not in _CLASSIFIERS | _REGRESSORS | _RANKERS:
        raise UnsupportedModelError(
            f"{what} holds an {obj.qualname}; supported: Booster, {sorted(_CLASSIFIERS | _REGRESSORS | _RANKERS)}"
        )
    state = obj.state if isinstance(obj.state, dict) else {}
    if not isinstance(state.get("_Booster"), Pickled):
        raise SourceError(f"{what} holds an unfitted {short} (no booster inside)")
    doc, booster_state = _from_booster(state["_Booster"], what)
    missing = state.get("missing", math.nan)
    inner_names = _names(doc["learner"].get("feature_names")) or _names(state.get("feature_names_in_"))
    return Source(
        **base,
        model_class=model_class,
        estimator="classifier" if short in _CLASSIFIERS else "ranker" if short in _RANKERS else "regressor",
        document=doc,
        missing=math.nan if missing is None else float(missing),
        iteration_range=_best_rounds(doc, booster_state),
        feature_names=outer_names if preprocessor is not None else (outer_names or inner_names),
        preprocessor=preprocessor,
    )


def _qualname(obj: Any) -> str:
    if isinstance(obj, Pickled):
        return obj.qualname
    return f"{type(obj).__module__}.{type(obj).__name__}"


def load_source(path: str | Path, *, trust_pickle: bool = False, missing: float | None = None) -> Source:
    """Read a model file. ``missing`` overrides the missing value (native files do not store it)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not data:
        raise SourceError(f"{path} is empty")
    what = path.name
    base: dict[str, Any] = {"path": path, "sha256": sha256_bytes(data)}
    if data[:1] == b"{" or data[:4] == b"binf":
        doc = _decode_document(data, what)
        fmt = "json" if _is_json(data) else "ubj"
        wrapper = _sklearn_attrs(doc).get("_estimator_type")
        source = Source(
            **base,
            format=fmt,
            model_class=f"xgboost.sklearn.{_WRAPPER_CLASS.get(wrapper, 'XGBRegressor')}"
            if wrapper
            else "xgboost.core.Booster",
            estimator=wrapper or "booster",
            document=doc,
            iteration_range=_best_rounds(doc, None) if wrapper else None,
            feature_names=_names(doc["learner"].get("feature_names")),
        )
    else:
        obj, seen = safe_pickle.load(data, trust=trust_pickle, what=what)
        source = _source_from_object(obj, {**base, "format": "pickle", "pickle_globals": frozenset(seen)}, what)
    if missing is not None:
        source = replace(source, missing=float(missing))
    return source

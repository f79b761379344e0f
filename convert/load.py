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

import numpy as np

from . import document, safe_pickle, ubjson
from .bounds import Limits, brief, one_line
from .errors import SourceError, UnsupportedModelError
from .safe_pickle import Pickled

_CLASSIFIERS = {"XGBClassifier", "XGBRFClassifier"}
_REGRESSORS = {"XGBRegressor", "XGBRFRegressor", "XGBModel"}
_RANKERS = {"XGBRanker"}  # predict() is the margin of a rank:* objective
_WRAPPER_CLASS = {"classifier": "XGBClassifier", "ranker": "XGBRanker"}  # a saved model's _estimator_type


@dataclass(frozen=True, eq=False)
class Source:
    """A loaded model: its booster document and the prediction semantics of its wrapper."""

    path: Path | None  # None for a model converted from memory
    sha256: str
    format: str  # "pickle" | "json" | "ubj" | "object" (from memory)
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


def _decode_document(data: bytes | bytearray, what: str, limits: Limits) -> document.Document:
    """JSON or UBJSON bytes -> the checked model document (unwrapping a pickle snapshot's "Model")."""
    try:
        if _is_json(data):
            doc = json.loads(data)
        elif data[:1] == b"{":
            try:
                doc = ubjson.loads(data, max_values=limits.max_values(len(data)))
            except SourceError as exc:
                raise SourceError(f"{what}: {exc}") from None
        elif data[:4] == b"binf" or data[:1] == b"\x00":
            raise SourceError(
                f"{what} is in xgboost's old binary format, which only the xgboost that wrote it can read; "
                "load it there and save_model('model.json'), then convert the JSON"
            )
        else:
            raise SourceError(f"{what} is neither JSON nor UBJSON (starts with {data[:8]!r})")
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        raise SourceError(f"{what} is not valid JSON ({one_line(str(exc))}): truncated?") from None
    except RecursionError:
        raise SourceError(f"{what} nests containers deeper than any model does: corrupted or hostile") from None
    if isinstance(doc, dict) and "Model" in doc:  # memory snapshot: {"Config": ..., "Model": ...}
        doc = doc["Model"]
    if not isinstance(doc, dict) or "learner" not in doc:
        raise SourceError(f"{what} is not an xgboost model document (no 'learner')")
    return document.checked(doc, what=what)


def _estimator_type(doc: Mapping[str, Any], what: str) -> str | None:
    """What the sklearn wrapper stored in a saved model (``attributes.scikit_learn``): its kind."""
    raw = doc["learner"]["attributes"].get("scikit_learn")
    try:
        attrs = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        return None
    kind = attrs.get("_estimator_type") if isinstance(attrs, dict) else None
    if kind is not None and kind not in ("classifier", "regressor", "ranker"):
        raise SourceError(f"{what}: learner.attributes.scikit_learn gives _estimator_type {brief(kind)}")
    return kind


def _best_rounds(doc: Mapping[str, Any], booster_state: Mapping[str, Any] | None, what: str) -> tuple[int, int] | None:
    """The sklearn wrappers predict with rounds [0, best_iteration + 1) when it is set."""
    best = doc["learner"]["attributes"].get("best_iteration")  # a checked count, when present
    field = "learner.attributes.best_iteration"
    if best is None and booster_state:
        best = booster_state.get("best_iteration")  # xgboost 1.x kept it on the Python object
        field = "the Booster's best_iteration"
    return None if best is None else (0, document.count(best, field, what=what) + 1)


def _names(values: Any, field: str, what: str) -> tuple[str, ...] | None:
    """Feature names from a document or a wrapper's state: a flat sequence of strings."""
    if values is None:
        return None
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = values.tolist()
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise SourceError(f"{what}: {field} is {brief(values)}, not a list of feature names")
    return tuple(values) or None


def _missing(state: Mapping[str, Any], what: str) -> float:
    value = state.get("missing", math.nan)
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SourceError(f"{what}: the model's missing value is {brief(value)}, not a number")
    return float(value)


def _from_booster(booster: Pickled, what: str, limits: Limits) -> tuple[dict[str, Any], dict[str, Any]]:
    state = booster.state if isinstance(booster.state, dict) else {}
    handle = state.get("handle")
    if handle is None:
        raise SourceError(f"{what} holds an empty Booster (was the model fitted?)")
    if not isinstance(handle, (bytes, bytearray)):  # bytes(10**10) would allocate 10 GB
        raise SourceError(f"{what} holds a Booster whose model is a {type(handle).__name__}, not its bytes")
    return _decode_document(handle, f"the booster inside {what}", limits), state


def _pipeline_steps(obj: Any, what: str) -> list[tuple[str, Any]]:
    steps = obj.steps
    if not isinstance(steps, (list, tuple)) or not all(
        isinstance(s, (list, tuple)) and len(s) == 2 and isinstance(s[0], str) for s in steps
    ):
        raise SourceError(f"{what}: the Pipeline's steps are {brief(steps)}, not (name, estimator) pairs")
    return [(name, step) for name, step in steps]


def _input_width(preprocessor: Any, names: tuple[str, ...] | None, doc: Mapping[str, Any], what: str) -> None:
    """The pipeline's input width: the converter builds a column per input feature."""
    n = getattr(preprocessor, "n_features_in_", None)
    booster = int(doc["learner"]["learner_model_param"]["num_feature"])
    limit = max(len(names or ()), booster) + document.SPARE_FEATURES
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= limit:
        raise SourceError(f"{what}: the Pipeline's n_features_in_ is {brief(n)}, not a count of at most {limit}")
    if names is not None and len(names) != n:
        raise SourceError(f"{what}: the Pipeline names {len(names)} features but its n_features_in_ is {n}")


def _source_from_object(obj: Any, base: dict[str, Any], what: str, limits: Limits) -> Source:
    preprocessor = None
    outer_names: tuple[str, ...] | None = None
    model_class = _qualname(obj)
    if hasattr(obj, "steps") and type(obj).__name__ == "Pipeline":
        steps = _pipeline_steps(obj, what)
        if not steps or not isinstance(steps[-1][1], Pickled):
            last = steps[-1][1] if steps else None
            raise UnsupportedModelError(
                f"{what}: the Pipeline must end in an XGBoost model, it ends in {_qualname(last)}"
            )
        prefix = [(n, s) for n, s in steps[:-1] if not (s is None or (isinstance(s, str) and s == "passthrough"))]
        if prefix:
            try:
                preprocessor = type(obj)(prefix)
            except Exception as exc:  # scikit-learn validates the steps in its own ways
                raise SourceError(f"{what}: its Pipeline steps are malformed ({one_line(str(exc))})") from None
        outer_names = _names(getattr(obj, "feature_names_in_", None), "the Pipeline's feature_names_in_", what)
        obj = steps[-1][1]
        model_class = f"{model_class}[{' -> '.join(_qualname(s) for _, s in steps)}]"
    if not isinstance(obj, Pickled):
        raise SourceError(f"{what} holds a {_qualname(obj)}, not an XGBoost model")
    short = obj.qualname.rsplit(".", 1)[-1]
    if short == "Booster":
        doc, _ = _from_booster(obj, what, limits)
        names = _names(doc["learner"].get("feature_names"), "learner.feature_names", what)
        return Source(**base, model_class=model_class, estimator="booster", document=doc, feature_names=names)
    if short not in _CLASSIFIERS | _REGRESSORS | _RANKERS:
        raise UnsupportedModelError(
            f"{what} holds an {obj.qualname}; supported: Booster, {sorted(_CLASSIFIERS | _REGRESSORS | _RANKERS)}"
        )
    state = obj.state if isinstance(obj.state, dict) else {}
    if not isinstance(state.get("_Booster"), Pickled):
        raise SourceError(f"{what} holds an unfitted {short} (no booster inside)")
    doc, booster_state = _from_booster(state["_Booster"], what, limits)
    inner_names = _names(doc["learner"].get("feature_names"), "learner.feature_names", what) or _names(
        state.get("feature_names_in_"), f"the {short}'s feature_names_in_", what
    )
    if preprocessor is not None:
        _input_width(preprocessor, outer_names, doc, what)
    return Source(
        **base,
        model_class=model_class,
        estimator="classifier" if short in _CLASSIFIERS else "ranker" if short in _RANKERS else "regressor",
        document=doc,
        missing=_missing(state, what),
        iteration_range=_best_rounds(doc, booster_state, what),
        feature_names=outer_names if preprocessor is not None else (outer_names or inner_names),
        preprocessor=preprocessor,
    )


def _qualname(obj: Any) -> str:
    if isinstance(obj, Pickled):
        return obj.qualname
    return f"{type(obj).__module__}.{type(obj).__name__}"


def load_source(
    path: str | Path, *, trust_pickle: bool = False, missing: float | None = None, limits: Limits | None = None
) -> Source:
    """Read a model file. ``missing`` overrides the missing value (native files do not store it).

    ``limits`` bounds what reading the file may cost (default: :meth:`Limits.from_env`).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return source_from_bytes(data, path=path, what=path.name, trust_pickle=trust_pickle, missing=missing, limits=limits)


def source_from_object(
    obj: Any, *, trust_pickle: bool = False, missing: float | None = None, limits: Limits | None = None
) -> Source:
    """An in-memory model (an xgboost ``Booster``, an xgboost sklearn estimator, a ``Pipeline`` ending in one).

    It is pickled here and read back through the same allow-list and extraction as a file, so
    a model converts the same from memory as from its pickle. ``format`` is "object" and there
    is no path (``m7onnx verify`` then needs ``--source``).
    """
    import pickle

    try:
        data = pickle.dumps(obj, protocol=4)
    except Exception as exc:  # whatever the object's own __reduce__ raises
        raise SourceError(f"cannot serialise the in-memory {type(obj).__name__}: {exc}") from exc
    what = f"the in-memory {type(obj).__name__}"
    source = source_from_bytes(data, path=None, what=what, trust_pickle=trust_pickle, missing=missing, limits=limits)
    return replace(source, format="object")


def source_from_bytes(
    data: bytes,
    *,
    path: Path | None,
    what: str,
    trust_pickle: bool = False,
    missing: float | None = None,
    limits: Limits | None = None,
) -> Source:
    """A model from its bytes: xgboost JSON/UBJSON, or a pickle (plain or joblib, compressed or not)."""
    limits = limits or Limits.from_env()
    if not data:
        raise SourceError(f"{what} is empty")
    base: dict[str, Any] = {"path": path, "sha256": sha256_bytes(data)}
    if data[:1] == b"{" or data[:4] == b"binf":
        doc = _decode_document(data, what, limits)
        fmt = "json" if _is_json(data) else "ubj"
        wrapper = _estimator_type(doc, what)
        source = Source(
            **base,
            format=fmt,
            model_class=f"xgboost.sklearn.{_WRAPPER_CLASS.get(wrapper, 'XGBRegressor')}"
            if wrapper
            else "xgboost.core.Booster",
            estimator=wrapper or "booster",
            document=doc,
            iteration_range=_best_rounds(doc, None, what) if wrapper else None,
            feature_names=_names(doc["learner"].get("feature_names"), "learner.feature_names", what),
        )
    else:
        obj, seen = safe_pickle.load(data, trust=trust_pickle, what=what, limits=limits)
        base = {**base, "format": "pickle", "pickle_globals": frozenset(seen)}
        source = _source_from_object(obj, base, what, limits)
    if missing is not None:
        source = replace(source, missing=float(missing))
    return source

"""Drop-in replacements for Market7's model utilities: swap the import, keep the call sites.

    # before
    from dca.utils.recovery_odds_utils import predict_recovery_odds
    # after
    from m7_runtime.market7 import predict_recovery_odds

    rec_odds = predict_recovery_odds(inds) or 0.0

Each function reproduces its call site in the model map: it returns a float, or ``None``
after logging the map's warning or error; it never raises. The input policy (reject,
zero-fill, the ``btc_status`` one-hot, the clamp at 0) comes from each artifact's
manifest. Models load once per process and folder, on first use, from ``model_dir``, else
``$M7_MODEL_DIR``, else the ``model_dir`` of the JSON config file at ``$M7_CONFIG`` (default
``~/.config/market7-onnx/config.json``), else the artifacts bundled with this package
(:mod:`m7_runtime.locate`). A change of ``$M7_MODEL_DIR`` or ``$M7_CONFIG`` is followed at
the next call; after changing ``$XDG_CONFIG_HOME``, ``$HOME`` or ``$M7_RELOAD_SECONDS``, call
:func:`clear_cache` (replaced artifacts are picked up by live reload, or after it too).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import reload
from .errors import M7Error
from .locate import bundled_dir, model_dir  # noqa: F401 (bundled_dir: re-exported with the lookup)
from .model import Model, load

log = logging.getLogger("m7_runtime.market7")

RECOVERY = "xgb_recovery_model"
CONFIDENCE = "xgb_confidence_model"
SPEND = "xgb_spend_model"
DCA_SPEND = "xgb_dca_spend_model"
SAFU = "safu_exit_model"
LEGACY = "xgb_model"

_lock = threading.Lock()
_models: dict[tuple[str, str], Model] = {}
#: the models the drop-in functions use
DROP_IN_MODELS = (RECOVERY, CONFIDENCE, SPEND, DCA_SPEND, SAFU, LEGACY)
#: the environment variables get_model() keys its fast cache on: the two that choose the folder.
#: $XDG_CONFIG_HOME and $HOME only locate the default config file, and $M7_RELOAD_SECONDS is
#: read when a model first loads: a change to those is seen after clear_cache().
_ENV = ("M7_MODEL_DIR", "M7_CONFIG")
_by_env: dict[tuple[Any, ...], Model] = {}


def _env_values() -> tuple[str | None, ...]:
    """The current values of ``_ENV``."""
    return tuple(map(os.environ.get, _ENV))


_resolve_folder = model_dir  # for functions whose ``model_dir`` argument shadows it


def get_model(name: str, directory: str | os.PathLike[str] | None = None) -> Model:
    """The named model from the resolved folder, loaded once per process (raises on failure).

    Resolving the folder costs file-system calls (the config file's stat, ``resolve()``):
    ~40 µs, eight times a prediction. So the model is also remembered under the argument and
    the values of ``$M7_MODEL_DIR`` and ``$M7_CONFIG``: a change to either resolves again,
    while the config file is read once per environment, and a change of ``$XDG_CONFIG_HOME``
    or ``$HOME`` (which only locate the default config file) or of ``$M7_RELOAD_SECONDS``
    (read when a model loads) is seen after ``clear_cache()``. Reading the environment
    through ``os.environ`` costs about 10k instructions a call for the two variables (an
    unset one raises and catches a KeyError inside); passing ``directory`` skips it.
    Relative folders are resolved on every call (they depend on the cwd).
    """
    fast_key = (name, directory) if directory else (name, None, *_env_values())
    model = _by_env.get(fast_key)
    if model is not None:
        return model
    folder = model_dir(directory)
    key = (str(folder.resolve()), name)
    model = _models.get(key)
    if model is None:
        with _lock:
            model = _models.get(key)
            if model is None:
                model = _models[key] = load(
                    folder / f"{name}.manifest.json",
                    provider="cpu",
                    reload_seconds=reload.env_seconds(os.environ.get("M7_RELOAD_SECONDS")),
                )
    if folder.is_absolute():
        _by_env[fast_key] = model
    return model


def clear_cache() -> None:
    """Forget loaded models (for tests, or after replacing artifacts on disk without live reload)."""
    with _lock:
        for model in _models.values():
            model.close()
        _models.clear()
        _by_env.clear()


def preload(
    model_dir: str | os.PathLike[str] | None = None, *, names: tuple[str, ...] = DROP_IN_MODELS
) -> dict[str, Model]:
    """Load, verify and run once every model the drop-ins use; raise one M7Error listing every problem.

    Call it when the bot starts. The drop-ins never raise (the map's callers do
    ``predict_recovery_odds(inds) or 0.0``), so without it a wrong model folder or a broken
    artifact means every prediction logs and returns None, and the bot trades on 0.0 odds
    forever. With it, the bot stops at start-up with one message naming each missing or bad
    artifact. The models stay loaded for the drop-ins (same folder resolution as theirs).
    """
    folder = _resolve_folder(model_dir)
    models: dict[str, Model] = {}
    problems = []
    for name in names:
        try:
            model = get_model(name, model_dir)
            model.predict(np.zeros((1, len(model.feature_names)), dtype=np.float32))  # sessions load, graphs run
            models[name] = model
        except Exception as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise M7Error(
            f"{len(problems)} of the {len(names)} models the drop-ins use cannot be used (model folder {folder}):\n  "
            + "\n  ".join(problems)
        )
    return models


def _predict(
    name: str,
    what: str,
    features: Any,
    directory: str | os.PathLike[str] | None,
    missing_message: str | None,
) -> float | None:
    """The map's call-site skeleton: load, validate, predict; log and return None on failure."""
    try:
        model = get_model(name, directory)
    except Exception as e:
        log.error(f"Failed to load {what} model: {e}")
        return None
    if features.__class__ is not dict and not isinstance(features, Mapping):
        row = _as_mapping(features)
        if row is None:
            log.error(f"{_failed(what)}: features must be a mapping, got {type(features).__name__}")
            return None
        features = row
    try:
        return float(model.predict_one(features))
    except Exception as e:
        # The map checks for missing features before predicting; predict_one refuses a row
        # without them, so that (rarer) check runs here, after the refusal, and says the same.
        error: Exception = e
        try:  # a hostile or broken mapping (keys() raising) must not escape either
            if missing_message is not None and model.policy.on_missing == "reject":
                missing_features = set(model.policy.required(model.feature_names)) - set(features.keys())
                if missing_features:
                    log.warning(missing_message.format(missing_features=missing_features))
                    return None
        except Exception as inner:
            error = inner
        log.error(f"{_failed(what)}: {error}")
        return None


def _failed(what: str) -> str:
    return f"{what[0].upper()}{what[1:]} prediction failed"


def _as_mapping(obj: Any) -> dict[Any, Any] | None:
    """A mapping-like row the map's call sites also accept (``features.keys()``, ``features[f]``).

    A pandas Series from ``df.iterrows()`` is the usual one: the original utilities predict
    on it, so the drop-ins do too. Anything without ``keys()`` (list, str, None...) -> None.
    """
    keys = getattr(obj, "keys", None)
    if not callable(keys) or isinstance(obj, (str, bytes)):
        return None
    try:
        return {k: obj[k] for k in keys()}
    except Exception:
        return None


def predict_recovery_odds(features: Any, *, model_dir: str | os.PathLike[str] | None = None) -> float | None:
    """P(the DCA position recovers), or None (missing feature, bad input, no model)."""
    return _predict(
        RECOVERY, "recovery", features, model_dir, "Missing features for recovery prediction: {missing_features}"
    )


def predict_confidence_score(features: Any, *, model_dir: str | os.PathLike[str] | None = None) -> float | None:
    """P(a confident DCA decision), or None."""
    return _predict(CONFIDENCE, "confidence", features, model_dir, "Missing confidence features: {missing_features}")


def predict_spend_volume(
    features: Any, *, use_dca_model: bool = False, model_dir: str | os.PathLike[str] | None = None
) -> float | None:
    """Spend amount (>= 0.0) from ``xgb_spend_model`` (or ``xgb_dca_spend_model``), or None.

    Missing base features count as 0.0; ``btc_status`` is one-hot encoded as the map's
    caller does (see README, "btc_status edge cases").
    """
    return _predict(DCA_SPEND if use_dca_model else SPEND, "spend", features, model_dir, None)


def predict_safu_exit(indicators: Any, *, model_dir: str | os.PathLike[str] | None = None) -> float | None:
    """P(SAFU exit) over the model's own feature names, missing ones as 0.0, or None."""
    return _predict(SAFU, "SAFU", indicators, model_dir, None)


def predict_legacy(features: Any, *, model_dir: str | os.PathLike[str] | None = None) -> float | None:
    """The legacy ``xgb_model`` (features_used.json): P(class 1), or None."""
    return _predict(LEGACY, "legacy", features, model_dir, "Missing features for legacy prediction: {missing_features}")

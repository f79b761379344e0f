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
``~/.config/market7-onnx/config.json``), else the artifacts bundled with this package.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import reload
from .errors import M7Error
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
#: the environment variables model_dir() and get_model() read; get_model() keys its fast cache on their values
_ENV = ("M7_MODEL_DIR", "M7_CONFIG", "XDG_CONFIG_HOME", "HOME", "M7_RELOAD_SECONDS")
_by_env: dict[tuple[Any, ...], Model] = {}


def _encoded_env_keys() -> list[Any] | None:
    encode = getattr(os.environ, "encodekey", None)
    return [encode(k) for k in _ENV] if callable(encode) else None


_ENV_ENCODED = _encoded_env_keys()


def _env_values() -> tuple[Any, ...]:
    """The current values of ``_ENV``, cheaply.

    ``os.environ.get`` of an unset variable raises and catches a KeyError inside (~6k
    instructions, a quarter of a prediction); the dict underneath ``os.environ`` answers
    in ~100. Falls back to ``os.environ.get`` where that dict is not there.
    """
    data = getattr(os.environ, "_data", None)
    if data.__class__ is dict and _ENV_ENCODED is not None:
        return tuple(map(data.get, _ENV_ENCODED))
    return tuple(os.environ.get(k) for k in _ENV)


def _config_file() -> Path:
    explicit = os.environ.get("M7_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "market7-onnx" / "config.json"


def model_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder models load from: argument, $M7_MODEL_DIR, config file, bundled artifacts."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("M7_MODEL_DIR")
    if env:
        return Path(env)
    config = _config_file()
    if config.is_file():
        try:
            configured = json.loads(config.read_text(encoding="utf-8")).get("model_dir")
        except (OSError, ValueError, AttributeError) as exc:
            log.warning(f"Ignoring unreadable config file {config}: {exc}")
        else:
            if configured:
                return (config.parent / configured).resolve()
    return bundled_dir()


_resolve_folder = model_dir  # for functions whose ``model_dir`` argument shadows it


def bundled_dir() -> Path:
    """The artifacts shipped with the package: ``m7_runtime/models`` in a wheel, ``onnx/`` in a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "models"
    return installed if installed.is_dir() else here.parent / "onnx"


def get_model(name: str, directory: str | os.PathLike[str] | None = None) -> Model:
    """The named model from the resolved folder, loaded once per process (raises on failure).

    Resolving the folder costs file-system calls (the config file's stat, ``resolve()``):
    ~40 µs, eight times a prediction. So the model is also remembered under the argument and
    the values of the environment variables the resolution reads; a changed variable
    resolves again, while the config file is read once per environment (``clear_cache()``
    re-reads it). Relative folders are resolved on every call (they depend on the cwd).
    """
    fast_key = (name, directory, *_env_values())
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

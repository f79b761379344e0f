"""Where models are: the model folder, its config file, and a model argument as a manifest path.

One lookup for everything that finds models by name: the drop-ins (:mod:`m7_runtime.market7`),
``m7onnx info/predict/score`` and batch scoring. The folder is, in order:

1. the ``model_dir`` argument (``--model-dir``),
2. ``$M7_MODEL_DIR``,
3. the ``model_dir`` key of the JSON file at ``$M7_CONFIG`` (default
   ``$XDG_CONFIG_HOME/market7-onnx/config.json``, else ``~/.config/market7-onnx/config.json``),
   relative to that file,
4. the artifacts bundled with the package.

Generic: nothing here knows a Market7 model name.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .artifact import MANIFEST_SUFFIX
from .errors import M7Error

log = logging.getLogger("m7_runtime.locate")

#: the environment variables :func:`model_dir` reads, in the order it reads them
ENV_VARS = ("M7_MODEL_DIR", "M7_CONFIG", "XDG_CONFIG_HOME", "HOME")


def config_file() -> Path:
    """The config file's path (it need not exist): ``$M7_CONFIG``, else the XDG location."""
    explicit = os.environ.get("M7_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "market7-onnx" / "config.json"


def _configured_dir(config: Path) -> Path | None:
    """The config file's ``model_dir``, or None when there is no file or no key.

    An unreadable file (a permission, a syntax error, not an object) is a warning, not an
    error: a bot keeps starting with the next source in the order.
    """
    try:
        if not config.is_file():
            return None
        configured = json.loads(config.read_text(encoding="utf-8")).get("model_dir")
    except (OSError, ValueError, AttributeError) as exc:
        log.warning(f"Ignoring unreadable config file {config}: {exc}")
        return None
    return (config.parent / configured).resolve() if configured else None


def model_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder models load from: argument, $M7_MODEL_DIR, config file, bundled artifacts."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("M7_MODEL_DIR")
    if env:
        return Path(env)
    return _configured_dir(config_file()) or bundled_dir()


def bundled_dir() -> Path:
    """The artifacts shipped with the package: ``m7_runtime/models`` in a wheel, ``onnx/`` in a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "models"
    return installed if installed.is_dir() else here.parent / "onnx"


def names_in(folder: Path) -> list[str]:
    """The model names in a folder (one per ``NAME.manifest.json``), sorted."""
    return sorted(p.name[: -len(MANIFEST_SUFFIX)] for p in folder.glob(f"*{MANIFEST_SUFFIX}"))


def looks_like_path(text: str) -> bool:
    """A MODEL argument naming a file (rather than a model in the folder)."""
    return text.endswith((MANIFEST_SUFFIX, ".onnx")) or "/" in text or os.sep in text


def resolve_model(arg: str | os.PathLike[str], *, folder: str | os.PathLike[str] | None = None) -> Path:
    """A MODEL argument as a manifest path: a path as given, or a name in ``model_dir(folder)``."""
    text = os.fspath(arg)
    if looks_like_path(text):
        path = Path(text)
        if not path.exists():
            raise M7Error(f"unknown model {text!r}: no such file")
        return path
    where = model_dir(folder)
    path = where / f"{text}{MANIFEST_SUFFIX}"
    if not path.is_file():
        raise M7Error(
            f"unknown model {text!r}: no {path.name} in {where} (models there: {names_in(where) or 'none'}); "
            "give a manifest path, or the folder with --model-dir or $M7_MODEL_DIR"
        )
    return path

"""The manifest: the contract between an ONNX artifact and whoever runs it.

Written by the converter, read here. Reading checks the schema version before anything
else, and every ONNX file is read once, hashed and compared with the manifest before a
session is created from those same bytes (so what was checked is what runs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import M7Error
from .policy import InputPolicy

try:  # Python's own SHA-256: hashlib's loads OpenSSL's libcrypto, ~3.7 MB of every bot's RSS
    from _sha2 import sha256 as _sha256  # Python >= 3.12
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # Python <= 3.11
    except ImportError:
        from hashlib import sha256 as _sha256

SCHEMA_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
FLAVOR_SUFFIX = {"tree": ".onnx", "tensor": ".tensor.onnx"}
TASKS = ("binary", "multiclass", "regression")


def manifest_path_for(path: Path) -> Path:
    """``NAME.manifest.json`` for a manifest path or either flavor's ``.onnx`` beside it."""
    name = path.name
    if name.endswith(MANIFEST_SUFFIX):
        return path
    for suffix in sorted(FLAVOR_SUFFIX.values(), key=len, reverse=True):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + MANIFEST_SUFFIX)
    raise M7Error(f"{path} is neither a NAME.manifest.json nor a NAME.onnx / NAME.tensor.onnx")


@dataclass(frozen=True)
class FlavorEntry:
    file: str
    sha256: str
    opsets: Mapping[str, int]


@dataclass(frozen=True, eq=False)
class Manifest:
    path: Path
    raw: Mapping[str, Any]
    name: str
    task: str
    features: tuple[str, ...]
    n_outputs: int
    flavors: Mapping[str, FlavorEntry]
    policy: InputPolicy
    split_ranges: Mapping[str, Mapping[str, float]]

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        path = manifest_path_for(Path(path))
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise M7Error(f"manifest {path} does not exist; convert the model first (m7onnx convert)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise M7Error(f"cannot read manifest {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise M7Error(f"manifest {path} is not a JSON object")
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise M7Error(
                f"manifest {path} has schema_version {version!r}; this m7_runtime reads version {SCHEMA_VERSION}. "
                "Convert the model again with the matching converter, or upgrade market7-onnx."
            )
        try:
            flavors = {
                k: FlavorEntry(str(v["file"]), str(v["sha256"]), dict(v.get("opsets", {})))
                for k, v in raw["flavors"].items()
            }
            task = str(raw["task"])
            features = tuple(str(f) for f in raw["features"])
            n_outputs = int(raw["output"]["n_outputs"])
            name = str(raw["name"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise M7Error(f"manifest {path} lacks or mangles a required field ({exc!r}); re-convert the model") from exc
        unknown = set(flavors) - set(FLAVOR_SUFFIX)
        if unknown or not flavors:
            raise M7Error(f"manifest {path} lists flavors {sorted(flavors)}; known: {sorted(FLAVOR_SUFFIX)}")
        if task not in TASKS:
            raise M7Error(f"manifest {path} has task {task!r}; known: {TASKS}")
        if len(set(features)) != len(features) or not features:
            raise M7Error(f"manifest {path} has an empty or duplicated feature list")
        return cls(
            path=path,
            raw=raw,
            name=name,
            task=task,
            features=features,
            n_outputs=n_outputs,
            flavors=flavors,
            policy=InputPolicy.from_json(raw.get("input_policy")),
            split_ranges=dict(raw.get("split_ranges", {})),
        )

    def artifact_bytes(self, flavor: str) -> bytes:
        """The flavor's ONNX bytes, after checking they hash to what the manifest says."""
        if flavor not in self.flavors:
            raise M7Error(f"{self.name}: no {flavor!r} flavor in {self.path.name}; it has {sorted(self.flavors)}")
        entry = self.flavors[flavor]
        file = self.path.parent / entry.file
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise M7Error(f"{self.name}: cannot read {file} named by {self.path.name}: {exc.strerror or exc}") from exc
        digest = _sha256(data).hexdigest()
        if digest != entry.sha256:
            raise M7Error(
                f"{file} does not match its manifest: sha256 {digest} but {self.path.name} says {entry.sha256}. "
                "The file was changed or replaced; re-convert or restore it."
            )
        return data

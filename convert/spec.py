"""The declarative model spec (``models/spec.toml``): which file, which features, which policy.

A source converts without a spec (features from the model, policy "reject"); with one,
its entry names the artifact, fixes the feature order and carries the caller policy into
the manifest. By default the converter looks for ``spec.toml`` beside the source file.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m7_runtime.manifest import TASKS
from m7_runtime.policy import InputPolicy

from .errors import ConvertError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPEC_FILE = "spec.toml"
_KEYS = {
    "source",
    "task",
    "description",
    "features",
    "features_from",
    "on_missing",
    "clamp_min",
    "clamp_max",
    "one_hot",
    "upstream",
}
_POLICY_KEYS = {"on_missing", "clamp_min", "clamp_max", "one_hot", "upstream"}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: Path
    task: str | None = None
    description: str = ""
    features: tuple[str, ...] | None = None  # fixed list, or None: from the model or features_file
    features_file: Path | None = None  # a JSON list of names, read when this entry is used
    policy: InputPolicy = field(default_factory=InputPolicy)
    spec_file: Path | None = None

    def listed_features(self) -> tuple[str, ...] | None:
        if self.features is not None or self.features_file is None:
            return self.features
        try:
            return tuple(str(f) for f in json.loads(self.features_file.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConvertError(f"{self.spec_file}: cannot read features_from {self.features_file}: {exc}") from exc

    def resolve_features(self, carried: tuple[str, ...] | None, n_features: int) -> tuple[str, ...]:
        """The feature order to export, checked against what the model itself carries."""
        listed = self.listed_features()
        if listed is None:
            if carried is None:
                raise ConvertError(
                    f"{self.name}: the spec takes feature names from the model, but {self.source.name} carries none "
                    "(fit on a DataFrame, or list the features in the spec)"
                )
            return carried
        if len(listed) != n_features:
            raise ConvertError(f"{self.name}: the spec lists {len(listed)} features, the model has {n_features}")
        if carried is not None and tuple(carried) != listed and not _default_names(carried):
            diff = [
                f"{i}: spec {s!r} vs model {m!r}"
                for i, (s, m) in enumerate(zip(listed, carried, strict=True))
                if s != m
            ]
            raise ConvertError(f"{self.name}: the spec's feature order differs from the model's: {'; '.join(diff[:5])}")
        return listed


def _default_names(names: tuple[str, ...]) -> bool:
    return all(n == f"f{i}" for i, n in enumerate(names))


def _entry(name: str, d: dict[str, Any], spec_file: Path) -> ModelSpec:
    unknown = set(d) - _KEYS
    if unknown:
        raise ConvertError(
            f"{spec_file}: [models.{name}] has unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}"
        )
    if "source" not in d:
        raise ConvertError(f"{spec_file}: [models.{name}] needs a 'source' file")
    if d.get("task") is not None and d["task"] not in TASKS:
        raise ConvertError(f"{spec_file}: [models.{name}] task {d['task']!r} is not one of {TASKS}")
    if "features" in d and "features_from" in d:
        raise ConvertError(f"{spec_file}: [models.{name}] gives both 'features' and 'features_from'")
    features = tuple(str(f) for f in d["features"]) if "features" in d else None
    from_file = d.get("features_from", "model")
    return ModelSpec(
        name=name,
        source=(spec_file.parent / d["source"]).resolve(),
        task=d.get("task"),
        description=str(d.get("description", "")),
        features=features,
        features_file=None if from_file == "model" else spec_file.parent / from_file,
        policy=InputPolicy.from_json({k: v for k, v in d.items() if k in _POLICY_KEYS}),
        spec_file=spec_file.resolve(),
    )


def load_spec(path: str | Path) -> dict[str, ModelSpec]:
    """All entries of a spec file, by artifact name."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConvertError(f"cannot read spec {path}: {exc}") from exc
    models = doc.get("models")
    if not isinstance(models, dict):
        raise ConvertError(f"spec {path} has no [models.NAME] tables")
    return {name: _entry(name, d, path) for name, d in models.items()}


def spec_for(source: Path, spec_path: Path | None = None) -> ModelSpec | None:
    """The entry whose ``source`` is this file: from ``spec_path``, else ``spec.toml`` beside it."""
    path = spec_path or source.parent / SPEC_FILE
    if not path.exists():
        if spec_path is not None:
            raise ConvertError(f"spec file {spec_path} does not exist")
        return None
    target = source.resolve()
    matches = [s for s in load_spec(path).values() if s.source == target]
    if not matches and spec_path is not None:
        raise ConvertError(f"spec {spec_path} has no entry with source = {source.name!r}")
    return matches[0] if matches else None

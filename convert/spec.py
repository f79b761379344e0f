"""The declarative model spec (``models/spec.toml``), and where a conversion takes its caller policy from.

A spec entry names the artifact, fixes the feature order and carries the caller policy into
the manifest. A policy must never be lost silently (a spend model without its clamp and
one-hot is a bot returning ``None`` forever), so :func:`resolve` looks in a fixed order and
says which source it used (:class:`~m7_runtime.manifest_parts.PolicyOrigin`):

1. ``spec``: the ``--spec`` file (or ``spec.toml`` beside the source), its entry matched by
   model name (``--name`` or the file's stem) or by the file name of its ``source``;
2. ``existing``: the artifact of the same name already in the output folder (re-conversion
   after a retrain inherits its features, task and policy);
3. ``bundled``: the artifact of that name shipped with the runtime (the six Market7 models
   keep their policy wherever their pickle lives);
4. ``default``: features from the model, a missing feature rejects the row, no clamp.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from m7_runtime.artifact import MANIFEST_SUFFIX, TASKS, Manifest
from m7_runtime.errors import M7Error
from m7_runtime.manifest_parts import PolicyOrigin
from m7_runtime.market7 import bundled_dir
from m7_runtime.policy import InputPolicy

from .errors import ConvertError
from .write import relpath

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
    "reference",
}
_POLICY_KEYS = {"on_missing", "clamp_min", "clamp_max", "one_hot", "upstream"}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: Path | None = None  # the model file the entry is for (matched by file name), if given
    task: str | None = None
    description: str = ""
    features: tuple[str, ...] | None = None  # fixed list, or None: from the model or features_file
    features_file: Path | None = None  # a JSON list of names, read when this entry is used
    policy: InputPolicy = field(default_factory=InputPolicy)
    spec_file: Path | None = None
    reference: Path | None = None  # reference data for the monitoring profile (m7_convert.profiles)
    origin: PolicyOrigin = field(default_factory=lambda: PolicyOrigin("spec"))  # where this run found it
    #: what the manifest records: where the policy was defined. An inherited policy keeps the origin its
    #: artifact recorded, so converting the same source into the same folder again gives the same bytes.
    recorded: PolicyOrigin | None = None

    @property
    def recorded_origin(self) -> PolicyOrigin:
        return self.recorded or self.origin

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
                    f"{self.name}: the spec takes feature names from the model, but the model carries none "
                    "(fit on a DataFrame, or list the features in the spec)"
                )
            return carried
        if self.origin.kind != "spec" and (
            len(listed) != n_features
            or (carried is not None and tuple(carried) != listed and not _default_names(carried))
        ):
            model = list(carried) if carried is not None else f"{n_features} unnamed features"
            raise ConvertError(
                f"{self.name}: the model's features differ from those of the {self.origin.describe()}; "
                f"model: {model}; {self.origin.kind}: {list(listed)}. Give the features and policy with --spec FILE "
                "(see models/spec.toml), or convert under another --name"
            )
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
    if d.get("task") is not None and d["task"] not in TASKS:
        raise ConvertError(f"{spec_file}: [models.{name}] task {d['task']!r} is not one of {TASKS}")
    if "features" in d and "features_from" in d:
        raise ConvertError(f"{spec_file}: [models.{name}] gives both 'features' and 'features_from'")
    features = tuple(str(f) for f in d["features"]) if "features" in d else None
    from_file = d.get("features_from", "model")
    return ModelSpec(
        name=name,
        source=(spec_file.parent / d["source"]).resolve() if "source" in d else None,
        task=d.get("task"),
        description=str(d.get("description", "")),
        features=features,
        features_file=None if from_file == "model" else spec_file.parent / from_file,
        policy=InputPolicy.from_json(
            {k: v for k, v in d.items() if k in _POLICY_KEYS}, where=f"{spec_file} [models.{name}]", prefix=""
        ),
        spec_file=spec_file.resolve(),
        reference=(spec_file.parent / str(d["reference"])).resolve() if "reference" in d else None,
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


def _from_spec_file(source: Path | None, name: str, spec_path: Path | None, out_dir: Path | None) -> ModelSpec | None:
    """The entry for this model in ``spec_path`` (or ``spec.toml`` beside the source file, if there is one)."""
    if spec_path is None and source is None:
        return None
    path = spec_path or source.parent / SPEC_FILE  # type: ignore[union-attr]
    if not path.exists():
        if spec_path is not None:
            raise ConvertError(f"spec file {spec_path} does not exist")
        return None
    entries = load_spec(path)
    match = entries.get(name) or next(
        (s for s in entries.values() if source and s.source is not None and s.source.name == source.name), None
    )
    if match is None and spec_path is not None:
        raise ConvertError(
            f"spec {spec_path} has no entry [models.{name}]"
            + (f" and none with source = {source.name!r}" if source else "")
            + "; "
            f"its entries: {sorted(entries)}"
        )
    if match is None:
        return None
    where = f"{relpath(path, out_dir) if out_dir else path} [models.{match.name}]"
    return replace(match, origin=PolicyOrigin("spec", where))


def _from_artifact(manifest_path: Path, source: Path | None, kind: str, detail: str) -> ModelSpec | None:
    """A spec equivalent to an artifact's manifest: its name, features, task, description and policy."""
    if not manifest_path.is_file():
        return None
    try:
        m = Manifest.read(manifest_path)
    except M7Error as exc:
        raise ConvertError(
            f"cannot inherit the caller policy of the {kind} artifact {manifest_path}: {exc}. "
            "Give it with --spec FILE, or remove the broken artifact"
        ) from None
    return ModelSpec(
        name=m.name,
        source=source,
        task=m.task,
        description=m.description,
        features=m.features,
        policy=m.policy,
        origin=PolicyOrigin(kind, detail),  # type: ignore[arg-type]
        recorded=m.policy_origin if kind == "existing" else None,
    )


def resolve(
    source: Path | None, *, name: str | None = None, spec_path: Path | None = None, out_dir: Path | None = None
) -> tuple[ModelSpec | None, PolicyOrigin]:
    """The spec this conversion follows and where it came from, in the order of the module docstring.

    ``source`` is the model file (None for an in-memory model, which then needs ``name``).
    """
    model_name = name or source.name.split(".")[0]  # type: ignore[union-attr]
    spec = _from_spec_file(source, model_name, spec_path, out_dir)
    manifest = f"{model_name}{MANIFEST_SUFFIX}"
    if spec is None and out_dir is not None:
        spec = _from_artifact(out_dir / manifest, source, "existing", f"{manifest} already in the output folder")
    if spec is None:
        spec = _from_artifact(bundled_dir() / manifest, source, "bundled", f"{manifest} bundled with m7_runtime")
    if spec is None:
        return None, PolicyOrigin("default", "features from the model; a missing feature rejects the row; no clamp")
    return spec, spec.origin

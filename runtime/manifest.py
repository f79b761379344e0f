"""The manifest: the contract between an ONNX artifact and whoever runs it.

Written by the converter, read here. Reading checks the schema version before anything
else, and every ONNX file is read once, hashed and compared with the manifest before a
session is created from those same bytes (so what was checked is what runs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
TASKS = ("binary", "multiclass", "multilabel", "regression")
#: ONNX metadata_props key under which the converter stores the artifact's contract
CONTRACT_KEY = "m7.contract"


def contract(
    *, features: Sequence[str], task: str, n_outputs: int, input_name: str, output_name: str, policy: InputPolicy
) -> dict[str, Any]:
    """What the runtime reads from a manifest to feed and interpret the graph.

    The converter writes it into each ONNX file's metadata, so it is covered by the sha256 the
    manifest records: a manifest whose features were reordered, whose policy or task was
    edited, or that was paired with another model's ONNX disagrees with its own artifact.
    """
    return {
        "features": list(features),
        "task": task,
        "n_outputs": int(n_outputs),
        "input": input_name,
        "output": output_name,
        "input_policy": policy.to_json(),
    }


def contract_json(c: Mapping[str, Any]) -> str:
    return json.dumps(c, sort_keys=True, separators=(",", ":"), allow_nan=False)


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
    input_name: str = "features"
    output_name: str = "prediction"

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
            if not isinstance(raw["features"], list) or not all(isinstance(f, str) for f in raw["features"]):
                raise TypeError("'features' must be a list of names")
            features = tuple(raw["features"])
            n_outputs = int(raw["output"]["n_outputs"])
            name = str(raw["name"])
            input_name = str(raw.get("input", {}).get("name", "features"))
            output_name = str(raw["output"].get("name", "prediction"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise M7Error(f"manifest {path} lacks or mangles a required field ({exc!r}); re-convert the model") from exc
        for flavor, entry in flavors.items():
            if Path(entry.file).name != entry.file or entry.file in ("", ".", ".."):
                raise M7Error(
                    f"manifest {path} names {entry.file!r} for its {flavor} flavor; an artifact must be a file "
                    "beside its manifest"
                )
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
            input_name=input_name,
            output_name=output_name,
        )

    @property
    def contract(self) -> dict[str, Any]:
        return contract(
            features=self.features,
            task=self.task,
            n_outputs=self.n_outputs,
            input_name=self.input_name,
            output_name=self.output_name,
            policy=self.policy,
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
        self._check_agrees(file, data)
        return data

    def _check_agrees(self, file: Path, data: bytes) -> None:
        """The hashed ONNX and this manifest describe the same model: input width, then the contract."""
        from . import onnx_meta

        width = onnx_meta.input_width(data)
        if width is not None and width != len(self.features):
            raise M7Error(
                f"{file.name} takes {width} input features but {self.path.name} lists {len(self.features)}; "
                "the pair does not belong together"
            )
        meta = onnx_meta.metadata(data)
        if meta is None:
            raise M7Error(f"{file} is not a readable ONNX model (its protobuf does not parse)")
        stamped = meta.get(CONTRACT_KEY)
        if stamped is None:
            raise M7Error(
                f"{file.name} carries no {CONTRACT_KEY!r} metadata, so it cannot be checked against "
                f"{self.path.name}: it was not written by this converter (or an older one); re-convert the model"
            )
        try:
            built_for = json.loads(stamped)
        except json.JSONDecodeError as exc:
            raise M7Error(f"{file.name}: its {CONTRACT_KEY!r} metadata is not JSON ({exc})") from exc
        mine = json.loads(contract_json(self.contract))
        if built_for != mine:
            raise M7Error(f"{self.path.name} disagrees with {file.name}, which was built for {_diff(built_for, mine)}")


def _diff(built_for: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """Name what differs between the contract stamped in the ONNX and the manifest's."""
    if not isinstance(built_for, Mapping):
        return f"an unknown contract {built_for!r:.100}"
    parts = []
    for key in sorted(set(built_for) | set(manifest)):
        a, b = built_for.get(key), manifest.get(key)
        if a == b:
            continue
        if key == "features" and isinstance(a, list) and isinstance(b, list):
            if sorted(a) == sorted(b):
                i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
                parts.append(
                    f"features in another order (position {i}: the ONNX expects {a[i]!r}, the manifest says {b[i]!r})"
                )
            else:
                parts.append(
                    f"other features (the ONNX lacks {sorted(set(b) - set(a))}, the manifest lacks "
                    f"{sorted(set(a) - set(b))})"
                )
        elif isinstance(a, Mapping) and isinstance(b, Mapping):
            parts.extend(
                f"{key}.{k} {a.get(k)!r} (the manifest says {b.get(k)!r})"
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            )
        else:
            parts.append(f"{key} {a!r} (the manifest says {b!r})")
    return "; ".join(parts)

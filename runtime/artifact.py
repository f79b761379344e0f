"""The artifact schema: one typed manifest, written by the converter, read by everything else.

A manifest is the contract that carries a model from a retrain in CI to a bot that reloads
it: which features in which order, what the output means, which files hold the graphs and
their hashes, the caller policy and where it came from, the parity the converter measured,
and (for monitoring) the reference distribution of the inputs and the output. Every part
is a frozen dataclass; :meth:`Manifest.from_json` validates every field (a wrong type or an
absurd value is an :class:`M7Error` naming the dotted field) and :meth:`Manifest.to_json`
writes exactly what ``from_json`` reads back.

Schema 2 adds the policy's origin, the reference profile and a contract that covers every
field that changes what the runtime does (see :meth:`Manifest.contract`); schema 1
manifests (the first converter's) still load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import M7Error
from .fields import Fields, as_float, enc_float, short_repr
from .manifest_parts import (
    FlavorEntry,
    OutputSpec,
    PolicyOrigin,
    SourceInfo,
    SplitRange,
    categories_from_json,
    converter_from_json,
    flavor_from_json,
    flavor_to_json,
    origin_from_json,
    origin_to_json,
    output_from_json,
    output_to_json,
    source_from_json,
    source_to_json,
    split_range_from_json,
    split_ranges_to_json,
)
from .parity import Parity, parity_from_json, parity_to_json
from .policy import InputPolicy
from .profile import ReferenceProfile, profile_from_json, profile_to_json

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST_SUFFIX = ".manifest.json"
#: flavor -> file suffix. "tree": ai.onnx.ml tree ensemble (CPU). "tensor": standard operators only,
#: runnable by onnxruntime's CUDA provider. "tensor_cpu": an optional CPU-only tensor graph that the
#: runtime prefers over "tensor" for large CPU batches.
FLAVOR_SUFFIX = {"tree": ".onnx", "tensor": ".tensor.onnx", "tensor_cpu": ".tensor-cpu.onnx"}
#: "multilabel": a classifier of several binary labels, P(label j) each (``output.targets`` names them)
TASKS = ("binary", "multiclass", "multilabel", "regression")
#: ONNX metadata_props key under which the converter stores the artifact's contract
CONTRACT_KEY = "m7.contract"
#: manifests are a few KB to a few hundred KB; a bigger file is not one of ours
MAX_MANIFEST_BYTES = 64 << 20


@dataclass(frozen=True)
class Manifest:
    """One artifact's manifest. ``path`` (where it was read from) is not part of its value."""

    name: str
    task: str
    features: tuple[str, ...]
    flavors: Mapping[str, FlavorEntry]
    source: SourceInfo
    parity: Parity
    description: str = ""
    output: OutputSpec = field(default_factory=OutputSpec)
    input_name: str = "features"
    missing: float | None = None  # the model's missing-value sentinel; None: NaN only
    skipped_flavors: Mapping[str, str] = field(default_factory=dict)
    policy: InputPolicy = field(default_factory=InputPolicy)
    policy_origin: PolicyOrigin | None = None  # None in schema 1 manifests
    split_ranges: Mapping[str, SplitRange] = field(default_factory=dict)
    #: per categorical feature, its training categories in code order (code i is categories[i]); for users
    #: turning values into the codes the model takes (README, "Categorical features")
    categories: Mapping[str, tuple[str | float, ...]] = field(default_factory=dict)
    converter: Mapping[str, str | None] = field(default_factory=dict)
    reference: ReferenceProfile | None = None
    schema_version: int = SCHEMA_VERSION
    path: Path | None = field(default=None, compare=False)

    # ---- derived ---------------------------------------------------------------
    @property
    def n_outputs(self) -> int:
        return self.output.n_outputs

    @property
    def output_name(self) -> str:
        return self.output.name

    def contract(self) -> dict[str, Any]:
        """What the runtime reads from the manifest to feed, run and interpret the graphs.

        The converter stamps it into every ONNX file (:data:`CONTRACT_KEY`), so the sha256 the
        manifest records covers it, and the runtime refuses a manifest that disagrees with its
        own artifact (features reordered, policy edited, files swapped). Schema 2 covers
        every field that changes behaviour; schema 1 covered the first six.
        """
        c: dict[str, Any] = {
            "features": list(self.features),
            "task": self.task,
            "n_outputs": self.output.n_outputs,
            "input": self.input_name,
            "output": self.output.name,
            "input_policy": self.policy.to_json(),
        }
        if self.output.targets is not None:  # batch scoring names its output columns after them
            c["targets"] = list(self.output.targets)
        if self.schema_version >= 2:
            c["split_ranges"] = split_ranges_to_json(self.split_ranges)
            c["reference"] = None if self.reference is None else profile_to_json(self.reference)
            c["flavors"] = {k: v.facts() for k, v in sorted(self.flavors.items())}
        return c

    @cached_property
    def contract_text(self) -> str:
        """:meth:`contract` as stamped (:func:`contract_json`), computed once per manifest: every flavor's
        file is checked against it at load, and with a reference profile it is tens of KB of JSON."""
        return contract_json(self.contract())

    # ---- JSON ------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema_version": self.schema_version,
            "name": self.name,
            "description": self.description,
            "task": self.task,
            "output": output_to_json(self.output),
            "input": {"name": self.input_name, "dtype": "float32", "shape": ["N", len(self.features)]},
            "features": list(self.features),
            **({"categories": {k: list(v) for k, v in self.categories.items()}} if self.categories else {}),
            "missing_value": "NaN" if self.missing is None else enc_float(self.missing),
            "flavors": {k: flavor_to_json(v) for k, v in self.flavors.items()},
        }
        if self.skipped_flavors:
            doc["skipped_flavors"] = dict(self.skipped_flavors)
        doc["source"] = source_to_json(self.source)
        doc["input_policy"] = self.policy.to_json()
        if self.policy_origin is not None:
            doc["policy_origin"] = origin_to_json(self.policy_origin)
        doc["split_ranges"] = split_ranges_to_json(self.split_ranges)
        doc["parity"] = parity_to_json(self.parity)
        doc["converter"] = dict(self.converter)
        if self.reference is not None:
            doc["reference"] = profile_to_json(self.reference)
        return doc

    def dumps(self) -> str:
        """The manifest file's text: stable key order and formatting, so equal manifests are equal bytes."""
        return json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, doc: Any, *, where: str = "manifest", path: Path | None = None) -> Manifest:
        f = Fields(doc, where)
        version = f.raw("schema_version", None)
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise M7Error(
                f"{where} has schema_version {version!r}; this m7_runtime reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}. Convert the model again with the matching "
                "converter, or upgrade market7-onnx."
            )
        name = f.str("name", max_len=255)
        if not name or Path(name).name != name or name in (".", ".."):
            raise f.error("name", f"must be a plain file-name stem, got {name!r}")
        task = f.choice("task", TASKS)
        features = f.strs("features")
        if not features or len(set(features)) != len(features):
            raise f.error("features", "must be a non-empty list of distinct names")
        output = output_from_json(f.obj("output"))
        inp = f.obj("input")
        input_name = inp.str("name", "features")
        if inp.raw("dtype", "float32") != "float32":
            raise inp.error("dtype", "must be 'float32'")
        shape = inp.raw("shape", ["N", len(features)])  # derived from the features: the ONNX's own width is checked
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or isinstance(shape[1], bool)
            or not isinstance(shape[1], int)
        ):
            raise inp.error("shape", f"must be ['N', number of features], got {short_repr(shape)}")
        inp.done()
        missing = f.raw("missing_value", "NaN")
        if missing in ("NaN", None):
            missing = None
        else:
            try:
                missing = as_float(missing)
            except (TypeError, ValueError, OverflowError):
                raise f.error("missing_value", f"must be 'NaN' or a finite number, got {missing!r:.60}") from None
        flavors = f.mapping("flavors", flavor_from_json, max_len=len(FLAVOR_SUFFIX))
        unknown = set(flavors) - set(FLAVOR_SUFFIX)
        if unknown or not flavors:
            raise f.error("flavors", f"lists {sorted(flavors)}; known flavors: {sorted(FLAVOR_SUFFIX)}")
        origin = f.obj("policy_origin", None) if version >= 2 else None
        manifest = cls(
            name=name,
            task=task,
            features=features,
            flavors=flavors,
            source=source_from_json(f.obj("source")),
            parity=parity_from_json(f.obj("parity")),
            description=f.str("description", ""),
            output=output,
            input_name=input_name,
            missing=missing,
            skipped_flavors=f.str_mapping("skipped_flavors", {}),
            policy=InputPolicy.from_json(f.raw("input_policy", None), where=where),
            policy_origin=None if origin is None else origin_from_json(origin),
            split_ranges=f.mapping("split_ranges", split_range_from_json, {}),
            categories=categories_from_json(f.obj("categories", None), features),
            converter=converter_from_json(f, "converter"),
            reference=None
            if version < 2 or not f.has("reference")
            else profile_from_json(f.obj("reference"), features),
            schema_version=version,
            path=path,
        )
        f.done(ignore=("created_utc",) if version == 1 else ())
        return manifest

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        """Read and validate the manifest at ``path`` (or the one beside an artifact's ONNX file)."""
        return _read_manifest(path)

    @classmethod
    def loads(cls, text: str | bytes, *, where: str = "manifest", path: Path | None = None) -> Manifest:
        try:
            doc = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise M7Error(f"cannot read {where}: {exc}") from exc
        except RecursionError:
            raise M7Error(f"cannot read {where}: its JSON nests deeper than any manifest does") from None
        return cls.from_json(doc, where=where, path=path)


def contract_json(c: Mapping[str, Any]) -> str:
    """The canonical text of a contract, as stamped into ONNX metadata."""
    return json.dumps(c, sort_keys=True, separators=(",", ":"), allow_nan=False)


def manifest_path_for(path: Path) -> Path:
    """``NAME.manifest.json`` for a manifest path or any flavor's ``.onnx`` beside it."""
    name = path.name
    if name.endswith(MANIFEST_SUFFIX):
        return path
    for suffix in sorted(FLAVOR_SUFFIX.values(), key=len, reverse=True):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)] + MANIFEST_SUFFIX)
    raise M7Error(
        f"{path} is neither a NAME.manifest.json nor one of its ONNX files ({', '.join(FLAVOR_SUFFIX.values())})"
    )


def _read_manifest(path: str | Path) -> Manifest:
    """Read and validate the manifest at ``path`` (or the one beside an artifact's ONNX file)."""
    path = manifest_path_for(Path(path))
    try:
        with path.open("rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise M7Error(f"manifest {path} does not exist; convert the model first (m7onnx convert)") from None
    except OSError as exc:
        raise M7Error(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_MANIFEST_BYTES:
        raise M7Error(f"manifest {path} is larger than {MAX_MANIFEST_BYTES >> 20} MiB; it is not a manifest")
    return Manifest.loads(data, where=f"manifest {path}", path=path)

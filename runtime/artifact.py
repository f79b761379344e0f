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
from pathlib import Path
from typing import Any, Literal

from .errors import M7Error
from .fields import Fields, as_float, as_int, as_str, enc_float, short_repr
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
PolicyKind = Literal["spec", "existing", "bundled", "default"]
POLICY_KINDS: tuple[PolicyKind, ...] = ("spec", "existing", "bundled", "default")


@dataclass(frozen=True)
class OutputSpec:
    """What one prediction is: ``n_outputs`` values per row (``targets`` names them when there are several)."""

    name: str = "prediction"
    meaning: str = "value"
    n_outputs: int = 1
    targets: tuple[str, ...] | None = None

    @property
    def shape(self) -> list[Any]:
        return ["N"] if self.n_outputs == 1 else ["N", self.n_outputs]


@dataclass(frozen=True)
class FlavorEntry:
    """One ONNX file of the artifact, and the facts the runtime needs to run it well."""

    file: str
    sha256: str
    bytes: int
    opsets: Mapping[str, int]
    strategy: str | None = None  # tensor flavors: how the forest was laid out (m7_convert.emit_tensor)
    bytes_per_row: int | None = None  # tensor flavors: intermediate bytes per input row (memory bound)
    cpu_min_rows: int | None = None  # tensor flavors: from this many rows the CPU runs it instead of "tree"
    rows_per_run: int | None = None  # tensor flavors: rows per onnxruntime run (measured), else from bytes_per_row
    min_onnxruntime: str | None = None  # the oldest onnxruntime that runs this graph, when newer than the floor

    def facts(self) -> dict[str, Any]:
        """The runtime facts (everything but the file's identity), as stamped into the contract."""
        return {k: v for k in _FACTS if (v := getattr(self, k)) is not None}


_FACTS = ("strategy", "bytes_per_row", "cpu_min_rows", "rows_per_run", "min_onnxruntime")


@dataclass(frozen=True)
class SourceInfo:
    """The model the artifact was converted from (for ``verify`` and for people)."""

    sha256: str
    format: str  # "pickle" | "json" | "ubj" | "object" (converted from memory)
    model_class: str
    estimator: str  # "classifier" | "regressor" | "booster" | ...
    objective: str
    link: str
    booster: str = "gbtree"
    file: str | None = None
    path: str | None = None  # relative to the manifest's folder
    xgboost_version: str = "unknown"
    n_trees: int = 0
    n_trees_in_file: int | None = None
    rounds_used: tuple[int, int] | None = None
    best_iteration: int | None = None
    num_parallel_tree: int | None = None
    n_classes: int | None = None
    max_depth: int = 0
    n_leaves: int = 0
    base_score: tuple[float, ...] | None = None
    base_margin: tuple[float, ...] = ()
    preprocessing: bool = False


@dataclass(frozen=True)
class PolicyOrigin:
    """Where the converter took the caller policy from, in its resolution order (README, "Policy")."""

    kind: PolicyKind
    detail: str = ""

    def describe(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


@dataclass(frozen=True)
class SplitRange:
    min: float
    max: float
    n_thresholds: int


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
            c["split_ranges"] = _split_ranges_json(self.split_ranges)
            c["reference"] = None if self.reference is None else profile_to_json(self.reference)
            c["flavors"] = {k: v.facts() for k, v in sorted(self.flavors.items())}
        return c

    # ---- JSON ------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out = self.output
        doc: dict[str, Any] = {
            "schema_version": self.schema_version,
            "name": self.name,
            "description": self.description,
            "task": self.task,
            "output": {
                "name": out.name,
                "meaning": out.meaning,
                "n_outputs": out.n_outputs,
                "shape": out.shape,
                "dtype": "float32",
                **({"targets": list(out.targets)} if out.targets is not None else {}),
            },
            "input": {"name": self.input_name, "dtype": "float32", "shape": ["N", len(self.features)]},
            "features": list(self.features),
            **({"categories": {k: list(v) for k, v in self.categories.items()}} if self.categories else {}),
            "missing_value": "NaN" if self.missing is None else enc_float(self.missing),
            "flavors": {k: _flavor_json(v) for k, v in self.flavors.items()},
        }
        if self.skipped_flavors:
            doc["skipped_flavors"] = dict(self.skipped_flavors)
        doc["source"] = _source_json(self.source)
        doc["input_policy"] = self.policy.to_json()
        if self.policy_origin is not None:
            doc["policy_origin"] = {"kind": self.policy_origin.kind, "detail": self.policy_origin.detail}
        doc["split_ranges"] = _split_ranges_json(self.split_ranges)
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
        output = _output(f.obj("output"))
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
        flavors = f.mapping("flavors", _flavor, max_len=len(FLAVOR_SUFFIX))
        unknown = set(flavors) - set(FLAVOR_SUFFIX)
        if unknown or not flavors:
            raise f.error("flavors", f"lists {sorted(flavors)}; known flavors: {sorted(FLAVOR_SUFFIX)}")
        origin = f.obj("policy_origin", None) if version >= 2 else None
        manifest = cls(
            name=name,
            task=task,
            features=features,
            flavors=flavors,
            source=_source(f.obj("source")),
            parity=parity_from_json(f.obj("parity")),
            description=f.str("description", ""),
            output=output,
            input_name=input_name,
            missing=missing,
            skipped_flavors=f.str_mapping("skipped_flavors", {}),
            policy=InputPolicy.from_json(f.raw("input_policy", None), where=where),
            policy_origin=None if origin is None else _origin(origin),
            split_ranges=f.mapping("split_ranges", _split_range, {}),
            categories=_categories(f.obj("categories", None), features),
            converter=_converter(f, "converter"),
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


# ---- parts: from JSON ------------------------------------------------------------


def _output(f: Fields) -> OutputSpec:
    n = f.int("n_outputs", lo=1, hi=1 << 20)
    spec = OutputSpec(
        name=f.str("name", "prediction"),
        meaning=f.str("meaning", "value"),
        n_outputs=n,
        targets=f.strs("targets", None, max_len=1 << 20),
    )
    shape = f.raw("shape", spec.shape)  # derived from n_outputs, which the contract checks against the ONNX
    if not isinstance(shape, list) or not 1 <= len(shape) <= 2:
        raise f.error("shape", f"must be ['N'] or ['N', k], got {short_repr(shape)}")
    if f.raw("dtype", "float32") != "float32":
        raise f.error("dtype", "must be 'float32'")
    if spec.targets is not None and len(spec.targets) != n:
        raise f.error("targets", f"names {len(spec.targets)} targets for {n} outputs")
    f.done()
    return spec


def _category(v: Any) -> str | float:
    if isinstance(v, str):
        return as_str(v)
    value = as_float(v)
    return int(value) if isinstance(v, int) else value


def _categories(f: Fields | None, features: tuple[str, ...]) -> dict[str, tuple[str | float, ...]]:
    """``categories``: feature -> its category names or numbers, in code order."""
    if f is None:
        return {}
    out = {}
    named = f.keys()
    for key in named:
        if key not in features:
            raise f.error(key, "is not one of the features")
        out[key] = f.list(key, _category, "category names or finite numbers")
    f.done()
    return out


def _flavor(f: Fields) -> FlavorEntry:
    file = f.str("file", max_len=255)
    if Path(file).name != file or file in ("", ".", ".."):
        raise f.error("file", f"names {file!r}; an artifact must be a file beside its manifest")
    sha = f.str("sha256")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise f.error("sha256", f"must be 64 lowercase hex digits, got {sha!r:.80}")
    opsets = f.raw("opsets", {})
    try:
        opsets = {str(k): as_int(v, 1, 1000) for k, v in dict(opsets).items()}
    except (TypeError, ValueError):
        raise f.error("opsets", f"must map domains to opset versions, got {opsets!r:.80}") from None
    entry = FlavorEntry(
        file=file,
        sha256=sha,
        bytes=f.int("bytes", 0),
        opsets=opsets,
        strategy=f.str("strategy", None, max_len=64),
        bytes_per_row=f.int("bytes_per_row", None, lo=1),
        cpu_min_rows=f.int("cpu_min_rows", None, lo=1),
        rows_per_run=f.int("rows_per_run", None, lo=1, hi=1 << 31),
        min_onnxruntime=f.str("min_onnxruntime", None, max_len=32),
    )
    f.done()
    return entry


def _source(f: Fields) -> SourceInfo:
    rounds = f.list("rounds_used", as_int, "integers", None, max_len=2)
    if rounds is not None and len(rounds) != 2:
        raise f.error("rounds_used", "must be [begin, end]")
    info = SourceInfo(
        sha256=f.str("sha256", max_len=128),
        format=f.str("format", max_len=32),
        model_class=f.str("model_class", max_len=4096),
        estimator=f.str("estimator", max_len=64),
        objective=f.str("objective", max_len=128),
        link=f.str("link", max_len=64),
        booster=f.str("booster", "gbtree", max_len=64),
        file=f.str("file", None, max_len=4096),
        path=f.str("path", None, max_len=4096),
        xgboost_version=f.str("xgboost_version", "unknown", max_len=64),
        n_trees=f.int("n_trees", 0),
        n_trees_in_file=f.int("n_trees_in_file", None),
        rounds_used=rounds,
        best_iteration=f.int("best_iteration", None),
        num_parallel_tree=f.int("num_parallel_tree", None),
        n_classes=f.int("n_classes", None),
        max_depth=f.int("max_depth", 0, hi=1 << 16),
        n_leaves=f.int("n_leaves", 0),
        base_score=f.floats("base_score", None, finite=False),
        base_margin=f.floats("base_margin", (), finite=False),
        preprocessing=f.bool("preprocessing", False),
    )
    f.done()
    return info


def _origin(f: Fields) -> PolicyOrigin:
    origin = PolicyOrigin(kind=f.choice("kind", POLICY_KINDS), detail=f.str("detail", ""))
    f.done()
    return origin


def _split_range(f: Fields) -> SplitRange:
    r = SplitRange(
        min=f.float("min", finite=False), max=f.float("max", finite=False), n_thresholds=f.int("n_thresholds", 1)
    )
    f.done()
    if not r.min <= r.max:
        raise f.error("max", f"is below min ({r.max} < {r.min})")
    return r


def _converter(f: Fields, key: str) -> dict[str, str | None]:
    value = f.raw(key, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()
    ):
        raise f.error(key, "must be an object of library name -> version string")
    return dict(value)


# ---- parts: to JSON --------------------------------------------------------------


def _flavor_json(e: FlavorEntry) -> dict[str, Any]:
    return {"file": e.file, "sha256": e.sha256, "bytes": e.bytes, "opsets": dict(e.opsets), **e.facts()}


def _source_json(s: SourceInfo) -> dict[str, Any]:
    return {
        "file": s.file,
        "path": s.path,
        "sha256": s.sha256,
        "format": s.format,
        "model_class": s.model_class,
        "estimator": s.estimator,
        "xgboost_version": s.xgboost_version,
        "objective": s.objective,
        "link": s.link,
        "booster": s.booster,
        "n_trees": s.n_trees,
        "n_trees_in_file": s.n_trees_in_file,
        "rounds_used": None if s.rounds_used is None else list(s.rounds_used),
        "best_iteration": s.best_iteration,
        "num_parallel_tree": s.num_parallel_tree,
        "n_classes": s.n_classes,
        "max_depth": s.max_depth,
        "n_leaves": s.n_leaves,
        "base_score": None if s.base_score is None else [enc_float(v) for v in s.base_score],
        "base_margin": [enc_float(v) for v in s.base_margin],
        "preprocessing": s.preprocessing,
    }


def _split_ranges_json(ranges: Mapping[str, SplitRange]) -> dict[str, Any]:
    return {
        k: {"min": enc_float(r.min), "max": enc_float(r.max), "n_thresholds": r.n_thresholds} for k, r in ranges.items()
    }


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

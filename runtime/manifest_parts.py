"""The manifest's parts (output, flavor entries, source, policy origin, split ranges), each with its JSON codec.

:mod:`m7_runtime.artifact` assembles them into the :class:`~m7_runtime.artifact.Manifest`
(as :mod:`~m7_runtime.parity` and :mod:`~m7_runtime.profile` hold the parity record and the
reference profile). Readers take a :class:`~m7_runtime.fields.Fields` and turn every
wrong-typed or absurd value into an M7Error naming the dotted field; writers give exactly
what the readers read back (the schema round-trip test holds them to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .fields import Fields, as_float, as_int, as_str, enc_float, short_repr

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
    note: str | None = None  # for people (``m7onnx info``), not a runtime fact: e.g. why a layout was not used

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


# ---- from JSON -------------------------------------------------------------------


def output_from_json(f: Fields) -> OutputSpec:
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


def categories_from_json(f: Fields | None, features: tuple[str, ...]) -> dict[str, tuple[str | float, ...]]:
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


def flavor_from_json(f: Fields) -> FlavorEntry:
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
        note=f.str("note", None, max_len=1000),
    )
    f.done()
    return entry


def source_from_json(f: Fields) -> SourceInfo:
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


def origin_from_json(f: Fields) -> PolicyOrigin:
    origin = PolicyOrigin(kind=f.choice("kind", POLICY_KINDS), detail=f.str("detail", ""))
    f.done()
    return origin


def split_range_from_json(f: Fields) -> SplitRange:
    r = SplitRange(
        min=f.float("min", finite=False), max=f.float("max", finite=False), n_thresholds=f.int("n_thresholds", 1)
    )
    f.done()
    if not r.min <= r.max:
        raise f.error("max", f"is below min ({r.max} < {r.min})")
    return r


def converter_from_json(f: Fields, key: str) -> dict[str, str | None]:
    value = f.raw(key, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in value.items()
    ):
        raise f.error(key, "must be an object of library name -> version string")
    return dict(value)


# ---- to JSON ---------------------------------------------------------------------


def output_to_json(out: OutputSpec) -> dict[str, Any]:
    return {
        "name": out.name,
        "meaning": out.meaning,
        "n_outputs": out.n_outputs,
        "shape": out.shape,
        "dtype": "float32",
        **({"targets": list(out.targets)} if out.targets is not None else {}),
    }


def origin_to_json(o: PolicyOrigin) -> dict[str, Any]:
    return {"kind": o.kind, "detail": o.detail}


def flavor_to_json(e: FlavorEntry) -> dict[str, Any]:
    doc = {"file": e.file, "sha256": e.sha256, "bytes": e.bytes, "opsets": dict(e.opsets), **e.facts()}
    return doc if e.note is None else {**doc, "note": e.note}


def source_to_json(s: SourceInfo) -> dict[str, Any]:
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


def split_ranges_to_json(ranges: Mapping[str, SplitRange]) -> dict[str, Any]:
    return {
        k: {"min": enc_float(r.min), "max": enc_float(r.max), "n_thresholds": r.n_thresholds} for k, r in ranges.items()
    }

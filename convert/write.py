"""Stage 5, write: the artifacts and their manifest, atomically, only after verification.

Each file is written to a temporary name in the output folder and renamed into place, ONNX
files first and the manifest last, so a reader never sees a manifest whose files are
missing or half-written.
"""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import onnx

from m7_runtime import __version__
from m7_runtime.artifact import CONTRACT_KEY, FLAVOR_SUFFIX, MANIFEST_SUFFIX, Manifest
from m7_runtime.manifest_parts import FlavorEntry, SourceInfo

from .errors import ConvertError
from .ir import Forest
from .load import Source


def _version(dist: str) -> str | None:
    for name in (dist, f"{dist}-cpu"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def library_versions() -> dict[str, str | None]:
    return {
        "market7-onnx": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime"),
        "xgboost": _version("xgboost"),
        "scikit-learn": _version("scikit-learn"),
    }


def relpath(target: Path, start: Path) -> str:
    try:
        return os.path.relpath(target.resolve(), start.resolve())
    except ValueError:  # another drive on Windows
        return str(target.resolve())


def source_info(source: Source, forest: Forest, *, task: str, out_dir: Path) -> SourceInfo:
    """What the manifest records about the source model (``m7onnx verify`` re-reads it from ``path``)."""
    return SourceInfo(
        sha256=source.sha256,
        format=source.format,
        model_class=source.model_class,
        estimator=source.estimator,
        objective=forest.objective.name,
        link=forest.objective.link,
        booster=forest.booster,
        file=None if source.path is None else source.path.name,
        path=None if source.path is None else relpath(source.path, out_dir),
        xgboost_version=source.xgboost_version,
        n_trees=len(forest.trees),
        n_trees_in_file=forest.provenance.n_trees_total,
        rounds_used=forest.provenance.rounds_used,
        best_iteration=source.best_iteration,
        num_parallel_tree=forest.provenance.num_parallel_tree,
        n_classes=forest.n_groups if task == "multiclass" else (2 if task == "binary" else None),
        max_depth=forest.max_depth(),
        n_leaves=forest.n_leaves(),
        base_score=forest.provenance.base_score,
        base_margin=tuple(float(v) for v in forest.base_margin),
        preprocessing=source.preprocessor is not None,
    )


def flavor_entries(
    name: str, blobs: Mapping[str, bytes | None], opsets: Mapping[str, Mapping[str, int]], facts: Mapping[str, dict]
) -> dict[str, FlavorEntry]:
    """The manifest's flavor records. ``None`` bytes give a placeholder entry (hash not yet known):
    the contract, which is stamped into the files before they are hashed, reads only the facts."""
    return {
        flavor: FlavorEntry(
            file=name + FLAVOR_SUFFIX[flavor],
            sha256=hashlib.sha256(data).hexdigest() if data is not None else "0" * 64,
            bytes=len(data) if data is not None else 0,
            opsets=dict(opsets[flavor]),
            **facts.get(flavor, {}),
        )
        for flavor, data in blobs.items()
    }


def stamp_contract(model: onnx.ModelProto, contract_text: str) -> onnx.ModelProto:
    """Write the artifact's contract (:attr:`m7_runtime.artifact.Manifest.contract_text`) into the ONNX metadata.

    The manifest's sha256 then covers it, and the runtime refuses a manifest that disagrees
    with the ONNX it names (features reordered, policy or task edited, files swapped). The
    text is the manifest's own, so the runtime's load compares it as text, without parsing.
    """
    for entry in list(model.metadata_props):
        if entry.key == CONTRACT_KEY:
            model.metadata_props.remove(entry)
    model.metadata_props.add(key=CONTRACT_KEY, value=contract_text)
    return model


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_artifacts(out_dir: Path, flavors: Mapping[str, bytes], manifest: Manifest) -> list[Path]:
    """The ONNX files, then the manifest (its bytes are ``manifest.dumps()``: equal manifests, equal files)."""
    name = manifest.name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir, os.W_OK):
            raise PermissionError(13, "Permission denied")
        written = []
        for flavor, data in flavors.items():
            path = out_dir / (name + FLAVOR_SUFFIX[flavor])
            _atomic_write(path, data)
            written.append(path)
        path = out_dir / (name + MANIFEST_SUFFIX)
        _atomic_write(path, manifest.dumps().encode())
        written.append(path)
    except OSError as exc:
        raise ConvertError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from exc
    return written

"""Stage 5, write: the artifacts and their manifest, atomically, only after verification.

Each file is written to a temporary name in the output folder and renamed into place, ONNX
files first and the manifest last, so a reader never sees a manifest whose files are
missing or half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from m7_runtime import __version__
from m7_runtime.manifest import CONTRACT_KEY, FLAVOR_SUFFIX, MANIFEST_SUFFIX, SCHEMA_VERSION, contract_json
from m7_runtime.policy import InputPolicy

from . import graph
from .errors import ConvertError
from .ir import Forest
from .load import Source
from .verify import REL_TOL, TOLERANCE_TEXT


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


def _relpath(target: Path, start: Path) -> str:
    try:
        return os.path.relpath(target.resolve(), start.resolve())
    except ValueError:  # another drive on Windows
        return str(target.resolve())


def build_manifest(
    *,
    name: str,
    task: str,
    description: str,
    source: Source,
    forest: Forest,
    features: tuple[str, ...],
    policy: InputPolicy,
    flavors: dict[str, bytes],
    opsets: dict[str, dict[str, int]],
    parity: dict[str, Any],
    out_dir: Path,
    flavor_facts: dict[str, dict[str, Any]] | None = None,
    skipped_flavors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest (DESIGN.md, "Artifacts").

    ``flavor_facts`` adds flavor-specific entries to that flavor's record (the tensor
    flavor's strategy and memory per row, which the runtime's chunking reads);
    ``skipped_flavors`` names flavors that were asked for with ``all`` but cannot
    represent this model, and why.
    """
    facts = flavor_facts or {}
    missing = None if np.isnan(forest.missing) else forest.missing
    return {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "description": description,
        "task": task,
        "output": {
            "name": graph.OUTPUT,
            "meaning": forest.objective.meaning,
            "n_outputs": forest.n_outputs,
            "shape": ["N"] if forest.n_outputs == 1 else ["N", forest.n_outputs],
            **({"targets": list(forest.targets)} if forest.targets else {}),
            "dtype": "float32",
        },
        "input": {"name": graph.INPUT, "dtype": "float32", "shape": ["N", len(features)]},
        "features": list(features),
        **({"categories": {k: list(v) for k, v in forest.category_values.items()}} if forest.category_values else {}),
        "missing_value": "NaN" if missing is None else missing,
        "flavors": {
            flavor: {
                "file": name + FLAVOR_SUFFIX[flavor],
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "opsets": opsets[flavor],
                **facts.get(flavor, {}),
            }
            for flavor, data in flavors.items()
        },
        **({"skipped_flavors": dict(skipped_flavors)} if skipped_flavors else {}),
        "source": {
            "file": source.path.name,
            "path": _relpath(source.path, out_dir),
            "sha256": source.sha256,
            "format": source.format,
            "model_class": source.model_class,
            "estimator": source.estimator,
            "xgboost_version": source.xgboost_version,
            "objective": forest.objective.name,
            "link": forest.objective.link,
            "booster": forest.booster,
            "n_trees": len(forest.trees),
            "n_trees_in_file": forest.provenance.n_trees_total,
            "rounds_used": list(forest.provenance.rounds_used),
            "best_iteration": source.best_iteration,
            "num_parallel_tree": forest.provenance.num_parallel_tree,
            "n_classes": forest.n_groups if task == "multiclass" else (2 if task == "binary" else None),
            "max_depth": forest.max_depth(),
            "n_leaves": forest.n_leaves(),
            "base_score": list(forest.provenance.base_score),
            "base_margin": forest.base_margin.astype(float).tolist(),
            "preprocessing": source.preprocessor is not None,
        },
        "input_policy": policy.to_json(),
        "split_ranges": forest.split_ranges() if source.preprocessor is None else {},
        "parity": {"tolerance": TOLERANCE_TEXT, "rel_tol": REL_TOL, **parity},
        "converter": library_versions(),
        "created_utc": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
    }


def stamp_contract(model: onnx.ModelProto, contract: dict[str, Any]) -> onnx.ModelProto:
    """Write the artifact's contract (:func:`m7_runtime.manifest.contract`) into the ONNX metadata.

    The manifest's sha256 then covers it, and the runtime refuses a manifest that disagrees
    with the ONNX it names (features reordered, policy or task edited, files swapped).
    """
    for entry in list(model.metadata_props):
        if entry.key == CONTRACT_KEY:
            model.metadata_props.remove(entry)
    model.metadata_props.add(key=CONTRACT_KEY, value=contract_json(contract))
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


def write_artifacts(out_dir: Path, name: str, flavors: dict[str, bytes], manifest: dict[str, Any]) -> list[Path]:
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
        _atomic_write(path, (json.dumps(manifest, indent=2) + "\n").encode())
        written.append(path)
    except OSError as exc:
        raise ConvertError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from exc
    return written

"""An artifact's ONNX files, handed out only after checking them against their manifest.

The schema itself, and reading a manifest file, is :mod:`m7_runtime.artifact`. Every
ONNX file is read once, hashed and compared with its manifest, and its stamped contract
with the manifest's, before a session is created from those same bytes (so what was
checked is what runs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import onnx_meta
from .artifact import CONTRACT_KEY, Manifest
from .errors import M7Error
from .fields import short_repr

try:  # Python's own SHA-256: hashlib's loads OpenSSL's libcrypto, ~3.7 MB of every bot's RSS
    from _sha2 import sha256 as _sha256  # Python >= 3.12
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # Python <= 3.11
    except ImportError:
        from hashlib import sha256 as _sha256


def artifact_bytes(manifest: Manifest, flavor: str) -> bytes:
    """The flavor's ONNX bytes, after checking they hash to what the manifest says and carry its contract.

    The bytes checked are the bytes returned, so what was verified is what a session runs.
    """
    if flavor not in manifest.flavors:
        raise M7Error(f"{manifest.name}: no {flavor!r} flavor in its manifest; it has {sorted(manifest.flavors)}")
    if manifest.path is None:
        raise M7Error(f"{manifest.name}: the manifest was not read from a folder, so its files cannot be found")
    entry = manifest.flavors[flavor]
    file = manifest.path.parent / entry.file
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise M7Error(
            f"{manifest.name}: cannot read {file} named by {manifest.path.name}: {exc.strerror or exc}"
        ) from exc
    digest = _sha256(data).hexdigest()
    if digest != entry.sha256:
        raise M7Error(
            f"{file} does not match its manifest: sha256 {digest} but {manifest.path.name} says {entry.sha256}. "
            "The file was changed or replaced; re-convert or restore it."
        )
    _check_agrees(manifest, file, data)
    return data


def _check_agrees(manifest: Manifest, file: Path, data: bytes) -> None:
    """The hashed ONNX and the manifest describe the same model: input width, then the contract."""
    name = manifest.path.name if manifest.path else manifest.name
    width = onnx_meta.input_width(data)
    if width is not None and width != len(manifest.features):
        raise M7Error(
            f"{file.name} takes {width} input features but {name} lists {len(manifest.features)}; "
            "the pair does not belong together"
        )
    meta = onnx_meta.metadata(data)
    if meta is None:
        raise M7Error(f"{file} is not a readable ONNX model (its protobuf does not parse)")
    stamped = meta.get(CONTRACT_KEY)
    if stamped is None:
        raise M7Error(
            f"{file.name} carries no {CONTRACT_KEY!r} metadata, so it cannot be checked against {name}: "
            "it was not written by this converter (or an older one); re-convert the model"
        )
    if stamped == manifest.contract_text:  # the converter stamps this exact text: no parsing at load
        return
    try:
        built_for = json.loads(stamped)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise M7Error(f"{file.name}: its {CONTRACT_KEY!r} metadata is not JSON ({exc})") from None
    mine = json.loads(manifest.contract_text)
    if built_for != mine:  # the same contract written another way still agrees
        raise M7Error(f"{name} disagrees with {file.name}, which was built for {_diff(built_for, mine)}")


def _diff(built_for: Any, manifest: Mapping[str, Any]) -> str:
    """Name what differs between the contract stamped in the ONNX and the manifest's."""
    if not isinstance(built_for, Mapping):
        return f"an unknown contract {short_repr(built_for)}"
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
                f"{key}.{k} {short_repr(a.get(k))} (the manifest says {short_repr(b.get(k))})"
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            )
        else:
            parts.append(f"{key} {short_repr(a)} (the manifest says {short_repr(b)})")
    return "; ".join(parts)

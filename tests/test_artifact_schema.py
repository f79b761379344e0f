"""The manifest schema round-trips: from_json(to_json(m)) == m for any manifest hypothesis can draw,
and every field the converter writes (on real conversions of the zoo) is read back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import build_case
from m7_convert import convert
from m7_runtime.artifact import FLAVOR_SUFFIX, TASKS, Manifest
from m7_runtime.errors import M7Error
from m7_runtime.manifest_parts import POLICY_KINDS, FlavorEntry, OutputSpec, PolicyOrigin, SourceInfo, SplitRange
from m7_runtime.parity import Check, FlavorParity, Parity, WorstRow
from m7_runtime.policy import InputPolicy, OneHot
from m7_runtime.profile import Histogram, ReferenceProfile

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
any_float = st.floats(allow_nan=False, width=64)  # +-inf round-trip as "Infinity"; NaN never equals itself
counts = st.integers(0, 2**40)
hexes = st.text("0123456789abcdef", min_size=64, max_size=64)


@st.composite
def histograms(draw: st.DrawFn) -> Histogram:
    edges = sorted(set(draw(st.lists(finite, max_size=6))))
    weights = draw(st.lists(st.integers(0, 100), min_size=len(edges) + 2, max_size=len(edges) + 2))
    total = sum(weights) or 1
    fractions = [w / total for w in weights[:-1]]
    missing = 1.0 - math.fsum(fractions)
    return Histogram(tuple(edges), tuple(fractions), max(0.0, missing))


def flavor_entries(draw: st.DrawFn, name: str) -> dict[str, FlavorEntry]:
    chosen = draw(st.sets(st.sampled_from(sorted(FLAVOR_SUFFIX)), min_size=1))
    opt = st.none() | st.integers(1, 2**30)
    return {
        f: FlavorEntry(
            file=name + FLAVOR_SUFFIX[f],
            sha256=draw(hexes),
            bytes=draw(counts),
            opsets=draw(st.dictionaries(st.sampled_from(["ai.onnx", "ai.onnx.ml"]), st.integers(1, 30))),
            strategy=draw(st.none() | st.sampled_from(["gemm", "traversal"])),
            bytes_per_row=draw(opt),
            cpu_min_rows=draw(opt),
            rows_per_run=draw(opt),
            min_onnxruntime=draw(st.none() | st.just("1.18.0")),
        )
        for f in sorted(chosen)
    }


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    name = draw(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True))
    features = tuple(draw(st.lists(names, min_size=1, max_size=8, unique=True)))
    n_outputs = draw(st.integers(1, 5))
    targets = draw(st.none() | st.lists(names, min_size=n_outputs, max_size=n_outputs).map(tuple))
    check = Check(
        passed=draw(st.booleans()),
        max_abs_error=draw(any_float),
        max_rel_error=draw(any_float),
        failing_rows=draw(counts),
        worst=tuple(
            WorstRow(draw(counts), draw(names), (draw(any_float),), (draw(any_float),), draw(any_float))
            for _ in range(draw(st.integers(0, 2)))
        ),
        error=draw(st.none() | names),
    )
    one_hot = tuple(
        OneHot(
            draw(names),
            tuple(draw(st.lists(names, min_size=1, max_size=4))),
            draw(names),
            draw(st.sampled_from(["suffix", "exact"])),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    lo = draw(st.floats(min_value=-1e300, max_value=1e300))  # so a clamp_max >= lo can be drawn below 1e300
    policy = InputPolicy(
        on_missing=draw(st.sampled_from(["reject", "zero"])),
        clamp_min=draw(st.none() | st.just(lo)),
        clamp_max=draw(st.none() | st.floats(min_value=min(max(lo, -1e300), 1e300), max_value=1e300)),
        one_hot=one_hot,
        upstream=draw(st.dictionaries(names, names, max_size=2)),
    )
    return Manifest(
        name=name,
        task=draw(st.sampled_from(TASKS)),
        features=features,
        flavors=flavor_entries(draw, name),
        source=SourceInfo(
            sha256=draw(hexes),
            format=draw(st.sampled_from(["pickle", "json", "ubj"])),
            model_class=draw(names),
            estimator=draw(names),
            objective=draw(names),
            link=draw(names),
            file=draw(st.none() | names),
            path=draw(st.none() | names),
            n_trees=draw(counts),
            rounds_used=draw(st.none() | st.tuples(counts, counts)),
            best_iteration=draw(st.none() | counts),
            base_score=draw(st.none() | st.lists(any_float, max_size=3).map(tuple)),
            base_margin=tuple(draw(st.lists(any_float, max_size=3))),
            preprocessing=draw(st.booleans()),
        ),
        parity=Parity(
            tolerance=draw(names),
            rel_tol=draw(finite),
            rows=draw(st.dictionaries(names, counts, max_size=3)),
            flavors={"tree": FlavorParity(check.passed, {"onnx_vs_xgboost": check})},
            passed=check.passed,
        ),
        description=draw(st.text(max_size=30)),
        output=OutputSpec(draw(names), draw(names), n_outputs, targets),
        missing=draw(st.none() | finite),
        skipped_flavors=draw(st.dictionaries(names, names, max_size=2)),
        policy=policy,
        policy_origin=draw(st.none() | st.builds(PolicyOrigin, st.sampled_from(POLICY_KINDS), names)),
        split_ranges={
            f: SplitRange(a, b, n)
            for f in draw(st.lists(st.sampled_from(features), unique=True))
            for a, b, n in [(*sorted((draw(any_float), draw(any_float))), draw(st.integers(1, 1000)))]
        },
        converter=draw(st.dictionaries(names, st.none() | names, max_size=3)),
        reference=draw(
            st.none()
            | st.builds(
                ReferenceProfile,
                st.integers(1, 10**9),
                st.fixed_dictionaries({f: histograms() for f in features}),
                histograms(),
            )
        ),
    )


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_any_manifest_round_trips_through_json(m: Manifest):
    text = m.dumps()
    back = Manifest.loads(text)
    assert back == m
    assert back.dumps() == text  # and the bytes are stable
    assert json.loads(text)["schema_version"] == 2


@pytest.mark.parametrize("case", ["multi_softprob", "missing_sentinel", "dart_regressor", "pipeline_scaler"])
def test_every_field_the_converter_writes_is_read_back(case: str, zoo_dir: Path, tmp_path: Path):
    built = build_case(case, zoo_dir)
    result = convert(built.path, out_dir=tmp_path, n_random=200)
    path = tmp_path / f"{result.name}.manifest.json"
    raw = json.loads(path.read_text())
    read = Manifest.read(path)
    assert read.to_json() == raw  # nothing written is dropped (unknown keys are refused) or changed
    assert read == result.manifest


def _restamp(folder: Path, name: str, text: str) -> None:
    """Stamp ``text`` as the tree file's contract and record the new hash in the manifest."""
    import hashlib

    import onnx

    from m7_runtime.artifact import CONTRACT_KEY

    path = folder / f"{name}.manifest.json"
    doc = json.loads(path.read_text())
    entry = doc["flavors"]["tree"]
    model = onnx.load(folder / entry["file"])
    (prop,) = [p for p in model.metadata_props if p.key == CONTRACT_KEY]
    prop.value = text
    data = model.SerializeToString()
    (folder / entry["file"]).write_bytes(data)
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    path.write_text(json.dumps(doc))


def test_the_contract_is_compared_as_json_when_its_text_differs(tmp_path: Path):
    """Load compares the stamped text to ``Manifest.contract_text`` first (no parsing); a contract written
    another way (indented, other key order) still agrees, and a different one is still refused by name."""
    import m7_runtime
    from conftest import ONNX

    name = "xgb_recovery_model"
    for f in ONNX.glob(f"{name}.*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    manifest = Manifest.read(tmp_path / f"{name}.manifest.json")
    contract = manifest.contract()
    assert manifest.contract_text == json.dumps(contract, sort_keys=True, separators=(",", ":"))

    _restamp(tmp_path, name, json.dumps(dict(reversed(contract.items())), indent=2))
    row = dict.fromkeys(manifest.features, 0.5)
    restamped = m7_runtime.load(tmp_path / f"{name}.manifest.json", provider="cpu")
    original = m7_runtime.load(ONNX / f"{name}.manifest.json", provider="cpu")
    assert restamped.predict_one(row) == original.predict_one(row)

    _restamp(tmp_path, name, json.dumps({**contract, "task": "regression"}))
    with pytest.raises(M7Error, match=r"disagrees with .*task"):
        m7_runtime.load(tmp_path / f"{name}.manifest.json", provider="cpu")

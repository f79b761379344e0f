"""Hostile and malformed model files are refused quickly, in bounded memory, with one line (issue 14).

Families 1-5, the converter's input side, each crafted here (pickle opcodes written by
hand, compressed streams, UBJSON bytes, mutated copies of a real model's document), so
no binary file is committed:

1. nesting that C frees by recursion (a million nested slices in a 4 KB file, object
   arrays inside object arrays), and object arrays whose state lies about their length;
2. growth through allowed callables (``_codecs.encode(x, "hex")`` chains, a "billion
   laughs" graph handed to numpy or hashed as a key, copies past the byte budget);
3. decompression bombs in every compression joblib writes;
4. counts with no bytes behind them (UBJSON containers, zero-width arrays, ``num_feature``
   and ``num_class`` far beyond what the trees use);
5. wrong-typed or inconsistent fields, including the ones that crash xgboost itself (found by
   hand and by fuzzing: random field mutations of real documents, corrupted real pickles).

Every file goes through ``m7onnx convert`` (``m7_runtime.cli.main``, the console script)
in a child process under an address-space and a CPU limit: a crash kills only the child
and names the file. For each file the child records the exit status, what was printed,
the CPU seconds and the peak RSS so far; the tests require exit status 1, exactly one
``FAIL`` line naming the problem, no traceback, a few CPU seconds and a few hundred MB.
"""

from __future__ import annotations

import bz2
import copy
import gzip
import io
import json
import lzma
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from m7_convert import SourceError, document, load_source, safe_pickle, ubjson
from m7_convert.bounds import ENV_PAYLOAD, ENV_RATIO, Limits, MiB, brief
from zoo import data, y_binary, y_reg

MAX_RSS_MB = 400  # "a few hundred MB": the converter's own baseline is ~75 MB
MAX_CPU_S = 10.0  # "a few seconds"; most files take milliseconds
_MA = "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
_NUMERIC = "numpy._core.numeric" if hasattr(np, "_core") else "numpy.core.numeric"


# ---- pickle opcodes ---------------------------------------------------------------------


def g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def put(i: int) -> bytes:
    return b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)


def get(i: int) -> bytes:
    return b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)


def text(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def long1(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def dtype(spec: str) -> bytes:
    return g("numpy", "dtype") + text(spec) + b"\x89\x88\x87R"  # dtype(spec, False, True)


P2 = b"\x80\x02"


def _laughs_list(depth: int) -> bytes:
    """A list holding the previous one twice, ``depth`` times: 2**depth leaves from 8 bytes a level."""
    out = b"]" + put(0) + b"0"
    for i in range(1, depth + 1):
        out += b"(" + get(i - 1) + get(i - 1) + b"l" + put(i) + (b"0" if i < depth else b"")
    return out


def _laughs_tuple(depth: int) -> bytes:
    out = b")" + put(0) + b"0"
    for i in range(1, depth + 1):
        out += get(i - 1) + get(i - 1) + b"\x86" + put(i) + (b"0" if i < depth else b"")
    return out


def _object_array_levels(depth: int) -> bytes:
    """Object arrays each holding the next, nested on the stack: 17 bytes a level."""
    head = (
        P2
        + g(_MA, "_reconstruct")
        + put(0)
        + b"0"
        + g("numpy", "ndarray")
        + b"K\x00\x85"
        + b"C\x01b"
        + b"\x87"
        + put(1)
        + b"0"
        + b"K\x01\x85"
        + put(2)
        + b"0"
        + dtype("O8")
        + put(3)
        + b"0"
    )
    opening = get(0) + get(1) + b"R" + b"(K\x01" + get(2) + get(3) + b"\x89]"
    return head + opening * depth + b"N" + b"atb" * depth + b"."


def _chunks(n_mib: int) -> bytes:
    """A valid pickle stream of ``n_mib`` one-MiB bytes objects, each popped: all of it is read."""
    return b"".join((b"\x8e" + struct.pack("<Q", MiB) + bytes(MiB) + b"0") for _ in range(n_mib))


def _doc_tree_path(booster: str = "model") -> str:
    return f"learner.gradient_booster.{booster}.trees[0]"


# ---- the files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    """Real documents to mutate: scalar trees, vector leaves, categorical splits."""
    X = np.nan_to_num(data(300))[:, :4]
    y = y_binary(data(300))
    out = {
        "binary": json.loads(
            xgb.train(
                {"max_depth": 2, "nthread": 1, "objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 2
            ).save_raw("json")
        )
    }
    Y = np.stack([X[:, 0], X[:, 1]], axis=1)
    vec = xgb.train(
        {"tree_method": "hist", "multi_strategy": "multi_output_tree", "max_depth": 2, "nthread": 1},
        xgb.DMatrix(X, label=Y),
        2,
    )
    out["vector"] = json.loads(vec.save_raw("json"))
    df = pd.DataFrame(X, columns=list("abcd"))
    codes = np.random.default_rng(0).integers(0, 6, len(df))
    df["d"] = pd.Categorical(codes)
    cat = xgb.train(
        {"max_depth": 2, "max_cat_to_onehot": 1, "tree_method": "hist", "nthread": 1},
        xgb.DMatrix(df, label=np.isin(codes, [1, 3, 4]).astype(float), enable_categorical=True),
        2,
    )
    out["categorical"] = json.loads(cat.save_raw("json"))
    assert 1 in out["categorical"]["learner"]["gradient_booster"]["model"]["trees"][0]["split_type"]
    return out


def _mutated(base: dict, change: Callable[[dict], Any]) -> bytes:
    doc = copy.deepcopy(base)
    change(doc)
    return json.dumps(doc).encode()


def _model(doc: dict) -> dict:
    return doc["learner"]["gradient_booster"]["model"]


def _tree(doc: dict, i: int = 0) -> dict:
    return _model(doc)["trees"][i]


def _pickled_classifier(change: Callable[[Any], None]) -> bytes:
    X = data(200)
    clf = xgb.XGBClassifier(n_estimators=2, max_depth=2, n_jobs=1).fit(X, y_binary(X))
    change(clf)
    bio = io.BytesIO()
    joblib.dump(clf, bio)
    return bio.getvalue()


def family_files(docs: dict[str, dict]) -> dict[str, dict[str, tuple[bytes, str]]]:
    """family -> file name -> (bytes, a fragment the one-line refusal must contain)."""
    N = 1_000_000
    slice_chain = P2 + g("builtins", "slice") + put(0) + get(0) * (N - 1) + b"N" + b"\x85R" * N + b"."
    deep_lists = P2 + b"(" * 200_000 + b"]" + b"l" * 200_000 + b"."
    boosters = 150_000
    deep_stand_ins = P2 + g("xgboost.core", "Booster") + put(0) + get(0) * (boosters - 1) + b"N" + b"\x85R" * boosters
    short_list = (
        P2
        + g(_MA, "_reconstruct")
        + g("numpy", "ndarray")
        + b"K\x00\x85C\x01b\x87R"
        + b"(K\x01K\x05\x85"
        + dtype("O8")
        + b"\x89]K\x01aK\x02atb."
    )
    nesting = {
        "slice_chain.zlib.pkl": (zlib.compress(slice_chain, 9), "refused before"),  # 4 KB: the operation budget
        "slice_chain.pkl": (slice_chain, "calls slice with <builtins.slice object>"),  # 4 MB: the slice guard
        "object_arrays_40_deep.pkl": (_object_array_levels(40), "nests object arrays more than 32 deep"),
        "object_arrays_million_deep.zlib.pkl": (zlib.compress(_object_array_levels(N), 9), "refused before"),
        "object_array_longer_than_its_list.pkl": (short_list, "sets 5 object array items from <list of 2 items>"),
        "deep_lists.zlib.pkl": (zlib.compress(deep_lists, 9), "nested more than 1000 deep"),
        "deep_stand_ins.zlib.pkl": (zlib.compress(deep_stand_ins + b".", 9), "nested more than 1000 deep"),
    }

    encode = g("_codecs", "encode") + put(0) + b"0"
    big = "a" * MiB
    copies = P2 + encode + text(big) + put(1) + b"0" + (get(0) + get(1) + text("latin1") + b"\x86R0") * 120 + b"N."
    floats = [2.0 ** (61 * i) for i in range(17)]  # all hash to 1: hash(x) == hash(x * 2**61)
    colliding = b"".join(
        b"G" + struct.pack(">d", a) + b"G" + struct.pack(">d", b) + b"\x86N" for a in floats for b in floats
    )
    modulus = (1 << 61) - 1
    expansion = {
        "codecs_hex_chain.pkl": (
            P2 + encode + get(0) * 40 + b"C\x01A" + (text("hex") + b"\x86R") * 40 + b".",
            "calls _codecs.encode with 'hex'",
        ),
        "laughs_to_numpy_str.pkl": (P2 + g("numpy", "str_") + _laughs_list(60) + b"\x85R.", "calls numpy.str_"),
        "laughs_to_numpy_float64.pkl": (P2 + g("numpy", "float64") + _laughs_list(60) + b"\x85R.", "numpy.float64"),
        "laughs_to_numpy_dtype.pkl": (
            P2 + g("numpy", "dtype") + _laughs_list(60) + b"\x85R.",
            "builds a dtype from <list of 2 items>",
        ),
        "laughs_in_a_dict.pkl": (P2 + b"}" + text("x") + _laughs_list(60) + b"s.", "expands to more than"),
        "laughs_as_a_key.pkl": (P2 + b"}" + _laughs_tuple(60) + b"Ns.", "nested items, which is costly to hash"),
        "laughs_into_a_setstate.pkl": (
            P2
            + g("sklearn.isotonic", "IsotonicRegression")
            + b")\x81}"
            + text("X_thresholds_")
            + _laughs_list(60)
            + b"sb.",
            "builds an object state that expands to more than",
        ),
        "copies_past_the_byte_budget.zlib.pkl": (zlib.compress(copies, 9), "materializes more than"),
        "colliding_tuple_keys.pkl": (P2 + b"}(" + colliding + b"u.", "keys with the same hash"),
        "colliding_int_keys.pkl": (
            P2 + b"}(" + b"".join(long1(7 + j * modulus) + b"N" for j in range(20)) + b"u.",
            "beyond the range whose hashes cannot collide",
        ),
    }
    assert len({hash((a, b)) for a in floats for b in floats}) == 1, "the colliding keys do not collide"

    payload = P2[:1] + b"\x04" + _chunks(16) + b"N."
    unit = bz2.compress(_chunks(16))
    bombs = {
        "bomb.zlib.pkl": (zlib.compress(payload, 9), ("zlib stream", "decompression cap")),
        "bomb.gzip.pkl": (gzip.compress(payload, 9), ("gzip stream", "decompression cap")),
        "bomb.bz2.pkl": (bz2.compress(payload, 9), ("bz2 stream", "decompression cap")),
        "bomb.xz.pkl": (lzma.compress(payload), ("xz stream", "decompression cap")),
        "bomb.lzma.pkl": (lzma.compress(payload, format=lzma.FORMAT_ALONE), ("lzma stream", "decompression cap")),
        "bomb_4GiB.bz2.pkl": (bz2.compress(b"\x80\x04") + unit * 256, ("bz2 stream", "decompression cap")),
        "frame_of_1TiB.bz2.pkl": (bz2.compress(b"\x80\x04\x95" + struct.pack("<Q", 1 << 40)), "declares an item of"),
        "truncated.zlib.pkl": (zlib.compress(pickle.dumps({"a": list(range(1000))}, 4))[:-20], "truncated"),
        "lz4_without_lz4.pkl": (b"\x04\x22\x4d\x18" + bytes(64), "lz4-compressed"),
    }

    key = b"U\x07learner"
    frombuffer = (
        P2 + g(_NUMERIC, "_frombuffer") + b"(C\x00" + dtype("V0") + long1(10**12) + b"\x85" + text("C") + b"tR."
    )
    wrapper = (
        P2
        + g("joblib.numpy_pickle", "NumpyArrayWrapper")
        + b")\x81}("
        + text("subclass")
        + g("numpy", "ndarray")
        + text("shape")
        + long1(10**12)
        + b"\x85"
        + text("order")
        + text("C")
        + text("dtype")
        + dtype("V0")
        + text("allow_mmap")
        + b"\x89ub."
    )
    binary = docs["binary"]
    counts = {
        "ubj_null_container.ubj": (b"{" + key + b"[$Z#L" + struct.pack(">q", 1 << 40) + b"}", "is typed b'Z'"),
        "ubj_count_without_bytes.ubj": (b"{" + key + b"[#L" + struct.pack(">q", 1 << 40) + b"}", "declares"),
        "ubj_typed_count_without_bytes.ubj": (b"{" + key + b"[$d#L" + struct.pack(">q", 1 << 40) + b"}", "declares"),
        "ubj_object_count_without_bytes.ubj": (b"{" + key + b"{#L" + struct.pack(">q", 1 << 40) + b"}", "declares"),
        "ubj_two_million_nulls.ubj": (b"{" + key + b"[" + b"Z" * 2_000_000 + b"]}", "more untyped values"),
        "num_feature_1e8.json": (
            _mutated(binary, lambda d: d["learner"]["learner_model_param"].update(num_feature="100000000")),
            "learner.learner_model_param.num_feature is 100000000, but the trees split on features below",
        ),
        "num_class_3e8.json": (
            _mutated(binary, lambda d: d["learner"]["learner_model_param"].update(num_class="300000000")),
            "learner.learner_model_param.num_class is 300000000, but the trees add to 1 output group",
        ),
        "zero_width_frombuffer.pkl": (frombuffer, "builds an array of 1000000000000 items of 0 bytes from 0 bytes"),
        "zero_width_joblib_array.pkl": (wrapper, "gives a joblib array 1000000000000 items of zero bytes"),
    }

    t = _doc_tree_path()
    vector, cat = docs["vector"], docs["categorical"]
    fields = {
        "learner_is_a_list.json": (_mutated(binary, lambda d: d.update(learner=[])), "learner is <list of 0 items>"),
        "split_index_2_40.json": (
            _mutated(binary, lambda d: _tree(d)["split_indices"].__setitem__(0, 2**40)),
            f"{t}.split_indices[0] is 1099511627776, outside 0..2147483647",
        ),
        "infinite_threshold.json": (
            _mutated(binary, lambda d: _tree(d)["split_conditions"].__setitem__(0, float("inf"))),
            f"{t}.split_conditions[0] is inf, not a finite number",
        ),
        "node_arrays_of_different_lengths.json": (
            _mutated(binary, lambda d: _tree(d)["right_children"].pop()),
            f"{t}.right_children has",
        ),
        "short_tree_info.json": (
            _mutated(binary, lambda d: _model(d)["tree_info"].pop()),
            "learner.gradient_booster.model.tree_info has 1 entries, expected 2",
        ),
        "huge_iteration_indptr.json": (
            _mutated(binary, lambda d: _model(d).update(iteration_indptr=[0, 2**40])),
            "learner.gradient_booster.model.iteration_indptr is",
        ),
        "objective_as_a_string.json": (
            _mutated(binary, lambda d: d["learner"].update(objective="binary:logistic")),
            "learner.objective is 'binary:logistic', not an object",
        ),
        "trees_as_a_dict.json": (
            _mutated(binary, lambda d: _model(d).update(trees={"0": _model(d)["trees"][0]})),
            "learner.gradient_booster.model.trees is <dict of 1 items>, not a list",
        ),
        "feature_names_as_a_string.json": (
            _mutated(binary, lambda d: d["learner"].update(feature_names="abcd")),
            "learner.feature_names is 'abcd', not a list of strings",
        ),
        "negative_best_iteration.json": (
            _mutated(
                binary,
                lambda d: d["learner"]["attributes"].update(
                    best_iteration="-5", scikit_learn=json.dumps({"_estimator_type": "classifier"})
                ),
            ),
            "learner.attributes.best_iteration is -5, outside 0..2",
        ),
        # each of these crashes xgboost's own loader or predictor (SIGSEGV, or terminate)
        "child_out_of_range.json": (
            _mutated(binary, lambda d: _tree(d)["left_children"].__setitem__(0, 50)),
            f"{t}.left_children[0] is 50, outside -1..",
        ),
        "child_is_the_root.json": (
            _mutated(binary, lambda d: _tree(d)["left_children"].__setitem__(0, 0)),
            "do not form a tree",
        ),
        "duplicate_tree_id.json": (_mutated(binary, lambda d: _tree(d, 1).update(id=0)), "trees[1].id is 0"),
        "negative_split_index.json": (
            _mutated(binary, lambda d: _tree(d)["split_indices"].__setitem__(0, -1)),
            f"{t}.split_indices[0] is -1",
        ),
        "vector_leaves_without_leaf_weights.json": (
            _mutated(vector, lambda d: _tree(d).pop("leaf_weights")),  # and right_children still map leaves
            f"{t}.right_children map leaves to rows of leaf_weights, which is missing",
        ),
        "vector_leaves_of_another_size.json": (
            _mutated(vector, lambda d: _tree(d)["tree_param"].update(size_leaf_vector="3")),
            f"{t}.leaf_weights has",
        ),
        "category_segment_past_the_end.json": (
            _mutated(cat, lambda d: _tree(d).update(categories_segments=[50])),
            f"{t}.categories_segments[0] and categories_sizes[0] give the segment [50, 53), which is out of range",
        ),
        "categorical_node_not_listed.json": (
            _mutated(cat, lambda d: _tree(d).update(categories_nodes=[1])),
            f"{t}.categories_nodes is",
        ),
        "parameter_as_a_number.json": (
            _mutated(binary, lambda d: _tree(d)["tree_param"].update(num_nodes=3)),
            f"{t}.tree_param.num_nodes is 3, not a string",
        ),
        "base_score_of_two_values.json": (
            _mutated(binary, lambda d: d["learner"]["learner_model_param"].update(base_score="[0.5,0.2]")),
            "learner.learner_model_param.base_score holds 2 values for 1 output",
        ),
        "parent_not_the_splitting_node.json": (
            _mutated(binary, lambda d: _tree(d)["parents"].__setitem__(1, -1)),
            f"{t}.parents[1] is -1, but node 1 is a child of another node",
        ),
        "categories_container_empty.json": (
            _mutated(cat, lambda d: _model(d).update(cats={})),
            "learner.gradient_booster.model.cats.enc is missing",
        ),
        "parameter_not_an_integer.json": (
            _mutated(binary, lambda d: d["learner"]["learner_model_param"].update(boost_from_average="")),
            "learner.learner_model_param.boost_from_average is '', not an integer string",
        ),
        "missing_as_text.pkl": (
            _pickled_classifier(lambda m: setattr(m, "missing", "abc")),
            "the model's missing value is 'abc', not a number",
        ),
        "feature_names_in_as_a_string.pkl": (
            _pickled_classifier(lambda m: m.__dict__.update(feature_names_in_="abc")),
            "the XGBClassifier's feature_names_in_ is 'abc', not a list of feature names",
        ),
    }
    return {"nesting": nesting, "expansion": expansion, "bombs": bombs, "counts": counts, "fields": fields}


# ---- one child runs them all, under limits --------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import contextlib, io, json, resource, sys, time, traceback
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (600, 600))
    from m7_runtime.cli import main
    out_dir = sys.argv[1]

    def peak_mb():  # the high-water RSS of this process image (ru_maxrss would include the parent's, from fork)
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024

    for line in sys.stdin:
        name, path = line.rstrip("\\n").split("\\t")
        print(json.dumps({"name": name, "started": True}), flush=True)
        err, out = io.StringIO(), io.StringIO()
        cpu = time.process_time()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                rc = main(["convert", path, "--out-dir", out_dir])
            escaped = None
        except BaseException as exc:  # what would print a traceback
            rc, escaped = None, "".join(traceback.format_exception(exc))[-2000:]
        rec = {"name": name, "rc": rc, "stderr": err.getvalue(), "stdout": out.getvalue(), "escaped": escaped,
               "cpu": time.process_time() - cpu, "peak_mb": peak_mb()}
        print(json.dumps(rec), flush=True)
    """
)


@pytest.fixture(scope="module")
def files(docs: dict[str, dict], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[Path, str]]]:
    folder = tmp_path_factory.mktemp("hostile")
    out: dict[str, dict[str, tuple[Path, str]]] = {}
    for family, cases in family_files(docs).items():
        out[family] = {}
        for name, (blob, expected) in cases.items():
            (folder / name).write_bytes(blob)
            out[family][name] = (folder / name, expected)
    return out


@pytest.fixture(scope="module")
def results(files: dict[str, dict[str, tuple[Path, str]]], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every file through ``m7onnx convert`` in a child; a child that dies is restarted after the file it died on."""
    todo = [(name, path) for cases in files.values() for name, (path, _) in cases.items()]
    out_dir = tmp_path_factory.mktemp("out") / "artifacts"
    found: dict[str, dict] = {}
    env = {k: v for k, v in os.environ.items() if k not in (ENV_RATIO, ENV_PAYLOAD)}
    while todo:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(out_dir)],
            input="".join(f"{n}\t{p}\n" for n, p in todo),
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
        )
        for line in proc.stdout.splitlines():
            rec = json.loads(line)
            found[rec["name"]] = (
                rec if "started" not in rec else {"crashed": proc.returncode, "err": proc.stderr[-800:]}
            )
        todo = [(n, p) for n, p in todo if n not in found]
        if todo and proc.returncode == 0:
            raise AssertionError(f"the child stopped early: {proc.stderr[-2000:]}")
    return found


def _check_family(family: str, files: dict, results: dict) -> None:
    problems = []
    for name, (path, expected) in files[family].items():
        r = results[name]
        if "crashed" in r:
            problems.append(f"{name}: the process died (status {r['crashed']}): {r['err']}")
            continue
        lines = r["stderr"].splitlines()
        if r["escaped"] or r["rc"] != 1 or r["stdout"] or len(lines) != 1 or not lines[0].startswith(f"FAIL {path}:"):
            problems.append(f"{name}: rc={r['rc']} stdout={r['stdout']!r} stderr={r['stderr']!r} {r['escaped'] or ''}")
        elif not all(fragment in lines[0] for fragment in (expected if isinstance(expected, tuple) else (expected,))):
            problems.append(f"{name}: refused for another reason than expected ({expected!r}): {lines[0]}")
        if r["cpu"] > MAX_CPU_S or r["peak_mb"] > MAX_RSS_MB:
            problems.append(f"{name}: {r['cpu']:.1f} CPU s, peak RSS {r['peak_mb']:.0f} MB")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("family", ["nesting", "expansion", "bombs", "counts", "fields"])
def test_hostile_files_are_refused_with_one_line(family: str, files: dict, results: dict):
    _check_family(family, files, results)


# ---- the bounds themselves: overridable, and out of the way of real models ----------------


def test_the_decompression_cap_is_a_keyword_and_an_environment_variable(tmp_path: Path, monkeypatch):
    X = data(200)
    m = xgb.XGBClassifier(n_estimators=3, max_depth=2, n_jobs=1).fit(X, y_binary(X))
    path = tmp_path / "m.pkl"
    joblib.dump(m, path, compress=("zlib", 3))
    assert load_source(path).format == "pickle"
    small = Limits(expand_floor=1, expand_ratio=1)
    with pytest.raises(SourceError, match=r"zlib stream.*decompression cap|decompression cap of its zlib stream"):
        load_source(path, limits=small)
    monkeypatch.setenv(ENV_RATIO, "1")
    monkeypatch.setenv(ENV_PAYLOAD, str(path.stat().st_size))  # below the 8 MiB floor: the lower one wins
    with pytest.raises(SourceError, match=f"\\${ENV_RATIO}"):
        load_source(path)
    monkeypatch.setenv(ENV_PAYLOAD, "lots")
    with pytest.raises(Exception, match=f"\\${ENV_PAYLOAD} must be a positive integer"):
        load_source(path)


def test_the_unpickling_budget_scales_with_the_file():
    limits = Limits()
    assert limits.max_ops(0) == 500_000 and limits.max_ops(10 * MiB) == 500_000 + 40 * MiB
    assert limits.payload_cap(1000) == 8 * MiB and limits.payload_cap(100 * MiB) == 1 << 30
    ops = b"N0" * 300_000  # 600k operations, each cheap
    with pytest.raises(SourceError, match=r"runs more than 50\d{4} operations"):
        safe_pickle.load(zlib.compress(P2 + ops + b"N."))
    safe_pickle.load(P2 + ops + b"N.")  # uncompressed, the file pays for every operation itself


@pytest.mark.filterwarnings("ignore:.*serialized model:UserWarning")  # joblib.load of old xgboost pickles
def test_real_models_are_far_from_the_bounds(tmp_path: Path):
    """Every fixture pickle (xgboost 1.7 to 3.0) loads under a fifth of the default budget, in each compression."""
    tight = Limits(ops_floor=100_000, bytes_floor=12 * MiB, expand_floor=MiB, values_floor=100_000)
    fixtures = sorted((Path(__file__).parent / "fixtures").glob("*/*.pkl"))
    compressions = (0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3))
    assert len(fixtures) >= 30
    for i, f in enumerate(fixtures):
        out = tmp_path / f"{i}.pkl"
        joblib.dump(joblib.load(f), out, compress=compressions[i % len(compressions)])
        load_source(out, limits=tight)


def test_documents_of_every_kind_pass_the_schema(docs: dict[str, dict]):
    """Categorical splits, vector leaves, several targets, gblinear and DART: checked, not refused for being there."""
    X = np.nan_to_num(data(200))
    y = y_reg(data(200))
    more = {
        "gblinear": xgb.train({"booster": "gblinear", "nthread": 1}, xgb.DMatrix(X, label=y), 2),
        "gblinear_multi": xgb.train(
            {"booster": "gblinear", "objective": "multi:softprob", "num_class": 3, "nthread": 1},
            xgb.DMatrix(X, label=np.arange(200) % 3),
            2,
        ),
        "dart": xgb.train({"booster": "dart", "max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), 3),
        "multi_target": xgb.train(
            {"tree_method": "hist", "max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=np.stack([y, -y], 1)), 2
        ),
        "vector_softprob": xgb.train(
            {
                "objective": "multi:softprob",
                "num_class": 3,
                "tree_method": "hist",
                "multi_strategy": "multi_output_tree",
                "max_depth": 2,
                "nthread": 1,
            },
            xgb.DMatrix(X, label=np.arange(200) % 3),
            2,
        ),
    }
    all_docs = {**docs, **{k: json.loads(b.save_raw("json")) for k, b in more.items()}}
    all_docs.update({f"{k}.ubj": ubjson.loads(b.save_raw("ubj")) for k, b in more.items()})
    for name, doc in all_docs.items():
        assert isinstance(document.checked(doc, what=name), document.Document), name


def test_brief_costs_nothing_whatever_the_object():
    shared: list = []
    for _ in range(200):
        shared = [shared, shared]  # repr would be 2**200 long
    assert brief(shared) == "<list of 2 items>"
    assert brief("x" * 10**6).endswith("... (1000000 characters)")
    assert brief(10**5000) == "<int of 16610 bits>"


_LOAD_IN_XGBOOST = textwrap.dedent(
    """
    import json, sys
    import numpy as np, xgboost as xgb
    new, upgraded, X = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), np.load(sys.argv[3])
    preds = []
    for doc in (new, upgraded):
        bst = xgb.Booster()
        bst.load_model(bytearray(json.dumps(doc).encode()))
        preds.append(bst.inplace_predict(X))
    print(float(np.abs(preds[0] - preds[1]).max()))
    """
)


def test_vector_leaves_saved_before_3_2_reach_xgboost_in_its_layout(docs: dict[str, dict], tmp_path: Path):
    """xgboost 3.2 segfaults loading 2.0-3.1 vector leaves; checked() hands it the same values laid out as 3.2 does."""
    new = docs["vector"]
    old = copy.deepcopy(new)
    for t in _model(old)["trees"]:
        k = int(t["tree_param"]["size_leaf_vector"])
        left, right = np.array(t["left_children"]), np.array(t["right_children"])
        weights = np.array(t["base_weights"], np.float32).reshape(-1, k)
        weights[left < 0] = np.array(t.pop("leaf_weights"), np.float32).reshape(-1, k)[right[left < 0]]
        t["base_weights"], t["right_children"] = weights.ravel().tolist(), np.where(left < 0, -1, right).tolist()
    upgraded = document.checked(old)
    assert "leaf_weights" not in _tree(old) and "leaf_weights" in _tree(upgraded)  # the input is left as it was
    for name, doc in {"new": new, "upgraded": upgraded}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    np.save(tmp_path / "X.npy", np.nan_to_num(data(50))[:, :4])
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_XGBOOST, *(str(tmp_path / f) for f in ("new.json", "upgraded.json", "X.npy"))],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout) == 0.0

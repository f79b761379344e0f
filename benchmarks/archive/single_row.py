"""The single-row experiments (NOTES.md, "predict_one and the drop-ins"): what one 1-row call costs.

``single_row_call`` times the ways to run one row through onnxruntime (``session.run``, I/O
binding, ``run_with_ort_values``, the graph without its link nodes) against
``predict_one``; ``instructions`` counts instructions per call under valgrind's callgrind
(noise-free), for the runtime now and at the ``--before`` commit.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Any

import numpy as np

from benchmarks import common

from .lab import artifact, interleaved, session


def exp_single_row_call(cfg: argparse.Namespace) -> dict[str, Any]:
    """The cost of one 1-row call: session.run vs I/O binding vs predict_one; and per graph node."""
    import onnx
    from onnx import helper

    import m7_runtime

    model = m7_runtime.load(common.ONNX / f"{common.HEADLINE}.manifest.json", provider="cpu")
    row = common.snapshot_rows(1, seed=3)[0]
    model.predict_one(row)
    sess = session(artifact(common.HEADLINE))
    buf = np.zeros((1, len(model.feature_names)), np.float32)
    out = np.zeros((1,), np.float32)
    binding = sess.io_binding()
    binding.bind_input("features", "cpu", 0, np.float32, [1, buf.shape[1]], buf.ctypes.data)
    binding.bind_output("prediction", "cpu", 0, np.float32, [1], out.ctypes.data)
    # the same graph cut after the tree ensemble: what the link and reshape nodes cost
    g = onnx.load_from_string(artifact(common.HEADLINE))
    keep = [n for n in g.graph.node if n.op_type != "Sigmoid" and n.op_type != "Reshape"]
    trees_only = helper.make_model(
        helper.make_graph(
            keep,
            "trees_only",
            list(g.graph.input),
            [helper.make_tensor_value_info("margin", onnx.TensorProto.FLOAT, ["N", 1])],
            [i for i in g.graph.initializer if i.name != "flat_shape"],
        ),
        opset_imports=list(g.opset_import),
    )
    trees_only.ir_version = g.ir_version
    sess_trees = session(trees_only.SerializeToString())
    import onnxruntime as ort

    ort_in = ort.OrtValue.ortvalue_from_numpy(buf)
    fns = {
        "session.run": functools.partial(sess.run, ["prediction"], {"features": buf}),
        "run_with_ort_values (input OrtValue made once)": functools.partial(
            sess.run_with_ort_values, ["prediction"], {"features": ort_in}
        ),
        "session.run, ensemble only (no Sigmoid/Reshape)": functools.partial(
            sess_trees.run, ["margin"], {"features": buf}
        ),
        "run_with_iobinding": functools.partial(sess.run_with_iobinding, binding),
        "run_with_iobinding via _sess (runtime's)": functools.partial(
            sess._sess.run_with_iobinding, binding._iobinding, None
        ),
        "Model.predict_one (dict in)": functools.partial(model.predict_one, row),
    }
    stats = interleaved(fns, cfg.rounds, number=5000)
    return {"single_row_us": {k: {q: v * 1e6 for q, v in s.items() if q != "n"} for k, s in stats.items()}}


INSTRUCTIONS_CHILD = r"""
import functools, json, sys
import numpy as np, onnxruntime as ort
import m7_runtime
from m7_runtime import market7
which, n, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
row = json.load(open(root + "/models/example_snapshot.json"))
folder = market7.model_dir()
model = m7_runtime.load(folder / "xgb_recovery_model.manifest.json", provider="cpu")
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
sess = ort.InferenceSession((folder / "xgb_recovery_model.onnx").read_bytes(), opts, providers=["CPUExecutionProvider"])
buf = np.zeros((1, len(model.feature_names)), np.float32)
fns = {
    "nothing": lambda: None,
    "session.run": functools.partial(sess.run, ["prediction"], {"features": buf}),
    "predict_one": functools.partial(model.predict_one, row),
    "drop-in": functools.partial(market7.predict_recovery_odds, row),
}
fn = fns[which]
for _ in range(50):
    fn()
for _ in range(n):
    fn()
"""


def exp_instructions(cfg: argparse.Namespace) -> dict[str, Any]:
    """Instructions per single-row call under valgrind (noise-free): before/after this branch's fast path.

    Opt-in (``--only instructions``): 24 valgrind runs, several minutes. "before" is the
    runtime at the branch point (``git archive`` of ``--before``); "now" the working tree.
    """
    import shutil
    import subprocess

    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed"}
    old = cfg.cache / f"runtime-{cfg.before}"
    if not (old / "m7_runtime").exists():
        old.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", cfg.before, "runtime", "onnx"], cwd=common.ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        (old / "runtime").rename(old / "m7_runtime")
    child = cfg.cache / "instructions_child.py"
    child.write_text(INSTRUCTIONS_CHILD)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0", M7_CONFIG="/nonexistent/config.json")
    env.pop("M7_MODEL_DIR", None)

    def count(which: str, n: int, pythonpath: str | None) -> int:
        e = dict(env)
        if pythonpath:
            e["PYTHONPATH"] = pythonpath
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                str(child),
                which,
                str(n),
                str(common.ROOT),
            ],
            capture_output=True,
            text=True,
            env=e,
            check=True,
        )
        line = next(x for x in proc.stderr.splitlines() if "Collected" in x)
        return int(line.split(":")[-1].strip().replace(",", ""))

    n = cfg.instruction_calls
    out: dict[str, dict[str, int]] = {}
    for label, path in (("before", str(old)), ("now", None)):
        out[label] = {}
        for which in ("session.run", "predict_one", "drop-in"):
            out[label][which] = (count(which, n, path) - count(which, 0, path)) // n
    return {"calls": n, "before_commit": cfg.before, "instructions_per_call": out}

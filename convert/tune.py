"""Stage 3c, tune: which tensor graph serves large CPU batches, in runs of how many rows, from how many rows.

The tensor graph that may run on CUDA (flavor ``tensor``) follows a rule
(:func:`m7_convert.emit_tensor.choose_strategy`: there is no GPU here to measure on). The
CPU can do better with a graph of its own (flavor ``tensor_cpu``: a CPU-only layout and one
``CumSum`` instead of the ordered ``Add`` chain), and which layout and run size is fastest
depends on the model and the machine. Conversion must stay deterministic (the same source
and options give the same bytes, on any machine), so a measured choice is only ever
written when asked for, and then kept:

* ``inherited`` (the default when possible): an artifact converted from the *same source*
  (equal sha256), already in the output folder or bundled with the runtime (the one of the
  same name first), recorded a choice: it is reused as is. Re-converting therefore rewrites
  the same bytes, and two names for one model get one choice.
* ``rule`` (the default otherwise, and ``tune=False`` / ``--no-tune``, which also ignores
  recorded choices): no measurement, the fixed rule of :func:`rule_choice` (the choice the
  measurements below made for every bundled model, benchmarks/NOTES.md).
* ``measured`` (``tune=True`` / ``--tune``): every candidate graph and run size is timed on
  the probe rows in one-thread sessions, interleaved in rounds with a rotating start,
  medians compared. The rule's choice is the incumbent and a challenger must be
  :data:`MARGIN` faster to replace it. Only the choice (strategy, rows per run, the row
  count from which it beats the tree flavor) is written; the timings are returned
  (``TensorPlan.report``) for the CLI to print or save (``--tune-report``), never stored
  in the artifact. Later conversions of the same source inherit it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from m7_runtime.artifact import MANIFEST_SUFFIX, Manifest
from m7_runtime.batches import TENSOR_RUN_BYTES
from m7_runtime.errors import M7Error
from m7_runtime.market7 import bundled_dir
from m7_runtime.sessions import cpu_session

from .emit_linear import STRATEGY as LINEAR
from .emit_tensor import GEMM_MAX_DEPTH, STRATEGY_FUNCTIONS, STRATEGY_KEY, choose_strategy, declines, emit_tensor
from .ir import Forest
from .tensor_memory import bytes_per_row

#: Rule: on the CPU, batches of at least this many rows run faster in a tensor graph than in
#: the tree flavor (every shape measured: 100-500 trees, depth 2-12; benchmarks/NOTES.md).
CPU_MIN_ROWS = 256
#: The deepest trees that measurement covered; beyond it the rule keeps the tree flavor.
CPU_MEASURED_MAX_DEPTH = 12
#: Rule: rows per CPU run (runs of 512-2,048 rows were fastest, NOTES.md "Complete-tree layouts")
RULE_RUN_ROWS = 1024
#: Measurement: run sizes tried, and batch sizes at which the tensor graph races the tree flavor
RUN_ROWS = (256, 512, 1024, 2048)
MIN_ROWS_GRID = (32, 64, 128, 256, 512, 1024, 2048)
#: a challenger must beat the incumbent's median time by this factor to replace it (5% flapped between
#: two conversions of the same model on the loaded project machine; run sizes within 10% matter little)
MARGIN = 1.10
ROUNDS = 5
ROUND_SECONDS = 0.01  # timed work per configuration and round (thread CPU time)
CPU_RUN_BYTES = TENSOR_RUN_BYTES["cpu"]


@dataclass(frozen=True)
class CpuChoice:
    """The CPU's large-batch graph: flavor ``tensor_cpu`` (its own strategy, CumSum) or, if None, ``tensor``."""

    strategy: str | None  # tensor_cpu's strategy; None: no tensor_cpu graph, the tensor graph serves the CPU
    rows_per_run: int | None  # None: the runtime's memory rule
    cpu_min_rows: int | None  # None: the CPU never uses a tensor graph for this model


@dataclass(frozen=True)
class TensorPlan:
    """What the converter emits for the tensor flavors, and how it was decided."""

    cuda_strategy: str  # the ``tensor`` graph (standard operators, ordered chain)
    cpu: CpuChoice
    origin: str  # "inherited" | "measured" | "rule"
    notes: tuple[str, ...] = ()  # why a layout was not available (printed, shown by ``m7onnx info``)
    report: dict[str, Any] = field(default_factory=dict, compare=False)  # timings (measured only)

    def describe(self) -> str:
        c = self.cpu
        graph = f"tensor_cpu={c.strategy}" if c.strategy else f"tensor={self.cuda_strategy}"
        rows = f", {c.rows_per_run} rows per run" if c.rows_per_run else ""
        start = f", from {c.cpu_min_rows} rows" if c.cpu_min_rows else ", never (tree flavor only)"
        return f"CPU batches: {graph}{rows}{start} ({self.origin})"


def cpu_candidates(forest: Forest) -> tuple[list[str], tuple[str, ...]]:
    """Strategies that can build a CPU graph for this forest, and notes on those that cannot."""
    declined: dict[str, list[str]] = {}  # reason -> strategies
    out = []
    for s in STRATEGY_FUNCTIONS:
        why = declines(forest, s)
        if why is not None:
            declined.setdefault(why, []).append(s)
        elif s != "gemm" or forest.max_depth() <= GEMM_MAX_DEPTH + 1:  # gemm: ~4**depth work per row
            out.append(s)
    notes = tuple(
        f"{' and '.join(names)} layout{'s' if len(names) > 1 else ''} declined: {why}"
        for why, names in declined.items()
    )
    return out, notes


def rule_choice(forest: Forest, candidates: list[str]) -> CpuChoice:
    """The measurement-free choice: ``gemm`` for depth <= 2, else ``code``, else ``traversal``."""
    if forest.max_depth() <= GEMM_MAX_DEPTH and "gemm" in candidates:
        strategy = "gemm"
    else:
        strategy = "code" if "code" in candidates else "traversal"
    min_rows = CPU_MIN_ROWS if forest.max_depth() <= CPU_MEASURED_MAX_DEPTH else None
    return CpuChoice(strategy, RULE_RUN_ROWS, min_rows)


def plan(
    forest: Forest,
    *,
    name: str,
    source_sha256: str,
    out_dir: Path,
    tune: bool | None,
    cpu_graph: str = "optional",
    tree_graph: Callable[[], bytes],
    probe_rows: np.ndarray,
) -> TensorPlan:
    """Decide the tensor graphs: measure (``tune=True``), inherit (``tune=None`` and a same-source artifact
    recorded a choice), or the rule.

    ``cpu_graph``: "optional" (flavors "all": a CPU graph when it is the choice), "required"
    (``tensor_cpu`` asked for by name: always one), "none" (no CPU graph: nothing to choose).
    """
    if cpu_graph == "none":
        tune = False
    chosen = _plan(forest, name, source_sha256, out_dir, tune, tree_graph, probe_rows)
    if cpu_graph == "none":  # the tensor graph serves large CPU batches, by the rule
        chosen = replace(chosen, cpu=CpuChoice(None, None, chosen.cpu.cpu_min_rows))
    if cpu_graph == "required" and chosen.cpu.strategy is None:
        strategy = rule_choice(forest, cpu_candidates(forest)[0]).strategy
        chosen = replace(chosen, cpu=replace(chosen.cpu, strategy=strategy))
    return chosen


def _plan(
    forest: Forest,
    name: str,
    source_sha256: str,
    out_dir: Path,
    tune: bool | None,
    tree_graph: Callable[[], bytes],
    probe_rows: np.ndarray,
) -> TensorPlan:
    if forest.linear is not None:  # gblinear: one linear graph, nothing to lay out or choose
        rule_rows = CPU_MIN_ROWS if forest.max_depth() <= CPU_MEASURED_MAX_DEPTH else None
        return TensorPlan(LINEAR, CpuChoice(None, None, rule_rows), "rule")
    cuda = choose_strategy(forest)
    candidates, notes = cpu_candidates(forest)
    if tune is None and (inherited := _inherited(name, source_sha256, out_dir, candidates)) is not None:
        return TensorPlan(cuda, inherited, "inherited", notes)
    rule = rule_choice(forest, candidates)
    if tune is not True:
        return TensorPlan(cuda, rule, "rule", notes)
    choice, report = measure(forest, cuda, candidates, rule, tree_graph(), probe_rows)
    return TensorPlan(cuda, choice, "measured", notes, report)


def _inherited(name: str, sha: str, out_dir: Path, candidates: list[str]) -> CpuChoice | None:
    """The choice recorded by an artifact converted from the same source (equal sha256), if still valid here.

    Looked for in ``out_dir`` then among the bundled artifacts, first under this name, then
    under any name (two artifacts of one model, such as the two spend models, get one choice).
    """
    for folder in (out_dir, bundled_dir()):
        own = folder / f"{name}{MANIFEST_SUFFIX}"
        others = sorted(p for p in folder.glob(f"*{MANIFEST_SUFFIX}") if p != own) if folder.is_dir() else []
        for path in ([own] if own.is_file() else []) + others:
            try:
                m = Manifest.read(path)
            except M7Error:
                continue
            if m.source.sha256 == sha and "tensor" in m.flavors:
                return _recorded(m, candidates)
    return None


def _recorded(m: Manifest, candidates: list[str]) -> CpuChoice | None:
    cpu = m.flavors.get("tensor_cpu")
    if cpu is not None:
        return CpuChoice(cpu.strategy, cpu.rows_per_run, cpu.cpu_min_rows) if cpu.strategy in candidates else None
    tensor = m.flavors["tensor"]
    if tensor.rows_per_run is None:  # written before run sizes were chosen: nothing to inherit
        return None
    return CpuChoice(None, tensor.rows_per_run, tensor.cpu_min_rows)


# ---- measurement ---------------------------------------------------------------------------


def _pass(sess: Any, X: np.ndarray, rows: int) -> Callable[[], None]:
    """One call: all of ``X`` in runs of ``rows`` rows (distinct rows, as a large batch is)."""
    name, out = sess.get_inputs()[0].name, [sess.get_outputs()[0].name]
    bounds = [(a, min(a + rows, len(X))) for a in range(0, len(X), rows)]

    def run() -> None:
        for a, b in bounds:
            sess.run(out, {name: X[a:b]})

    return run


def _batches(sess: Any, X: np.ndarray, n: int, rows: int) -> Callable[[], None]:
    """One call: the next distinct ``n``-row batch of ``X``, in runs of at most ``rows`` rows."""
    name, out = sess.get_inputs()[0].name, [sess.get_outputs()[0].name]
    slices = [X[i : i + n] for i in range(0, len(X) - n + 1, n)] or [X[:n]]
    state = {"i": 0}

    def run() -> None:
        x = slices[state["i"] % len(slices)]
        state["i"] += 1
        for a in range(0, len(x), rows):
            sess.run(out, {name: x[a : a + rows]})

    return run


def _race(calls: Mapping[str, Callable[[], None]], units: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Per call: thread CPU seconds per unit (row) in ``ROUNDS`` interleaved rounds, rotating start."""
    keys = list(calls)
    reps = {}
    for k in keys:  # warm up, then enough repetitions for ROUND_SECONDS of work
        calls[k]()
        t0 = time.thread_time()
        calls[k]()
        reps[k] = max(1, int(ROUND_SECONDS / max(time.thread_time() - t0, 1e-6)))
    per_unit: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(ROUNDS):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            t0 = time.thread_time()
            for _ in range(reps[k]):
                calls[k]()
            per_unit[k].append((time.thread_time() - t0) / (reps[k] * units[k]))
    return {
        k: {"ns_per_row": float(np.median(v)) * 1e9, "min": min(v) * 1e9, "max": max(v) * 1e9}
        for k, v in per_unit.items()
    }


def _pick(results: Mapping[str, Mapping[str, float]], incumbent: str) -> str:
    """The fastest key if it beats the incumbent by :data:`MARGIN`, else the incumbent."""
    best = min(results, key=lambda k: results[k]["ns_per_row"])
    return best if results[best]["ns_per_row"] * MARGIN < results[incumbent]["ns_per_row"] else incumbent


def measure(
    forest: Forest, cuda: str, candidates: list[str], rule: CpuChoice, tree: bytes, probe_rows: np.ndarray
) -> tuple[CpuChoice, dict[str, Any]]:
    """Time the candidates on the probe rows (one thread); return the choice and the timings."""
    X = np.ascontiguousarray(probe_rows, dtype=np.float32)
    X = np.concatenate([X] * max(1, -(-4096 // len(X))))[: max(4096, len(X))]
    graphs = {f"tensor_cpu:{s}": emit_tensor(forest, strategy=s, summation="cumsum") for s in candidates}
    graphs["tensor"] = emit_tensor(forest, strategy=cuda)
    per_row = {k: bytes_per_row(m) for k, m in graphs.items()}
    sessions = {k: cpu_session(m.SerializeToString()) for k, m in graphs.items()}
    fits = {k: max(1, CPU_RUN_BYTES // per_row[k]) for k in graphs}
    rule_key = f"tensor_cpu:{rule.strategy}"

    def rows_for(key: str, rows: int) -> int:
        return min(rows, fits[key])

    # 1. layouts, at the rule's run size
    first = {k: _pass(sessions[k], X, rows_for(k, RULE_RUN_ROWS)) for k in graphs}
    layouts = _race(first, dict.fromkeys(first, len(X)))
    winner = _pick(layouts, rule_key)
    # 2. run sizes for the winner
    sizes = sorted({rows_for(winner, r) for r in (*RUN_ROWS, RULE_RUN_ROWS)})
    runs = _race({str(r): _pass(sessions[winner], X, r) for r in sizes}, dict.fromkeys(map(str, sizes), len(X)))
    rows = int(_pick(runs, str(rows_for(winner, RULE_RUN_ROWS))))
    # 3. from how many rows the winner beats the tree flavor (batches of distinct rows)
    tree_sess = cpu_session(tree)
    race: dict[str, Callable[[], None]] = {}
    units: dict[str, int] = {}
    for n in MIN_ROWS_GRID:
        race[f"tree@{n}"] = _batches(tree_sess, X, n, n)
        race[f"tensor@{n}"] = _batches(sessions[winner], X, n, rows)
        units[f"tree@{n}"] = units[f"tensor@{n}"] = n
    vs_tree = _race(race, units)
    faster = [vs_tree[f"tensor@{n}"]["ns_per_row"] * MARGIN < vs_tree[f"tree@{n}"]["ns_per_row"] for n in MIN_ROWS_GRID]
    min_rows = next((n for i, n in enumerate(MIN_ROWS_GRID) if all(faster[i:])), None)
    strategy = None if winner == "tensor" else winner.split(":", 1)[1]
    choice = CpuChoice(strategy, rows, min_rows)
    report = {
        "unit": "ns per row, thread CPU time, one onnxruntime thread; median [min, max] of interleaved rounds",
        "rounds": ROUNDS,
        "margin": MARGIN,
        "cpu_count": os.cpu_count(),
        "incumbent": {"graph": rule_key, "rows_per_run": rule.rows_per_run},
        "layouts": layouts,
        "rows_per_run": {"graph": winner, "results": runs},
        "vs_tree": vs_tree,
        "bytes_per_row": per_row,
        "choice": {"strategy": strategy, "rows_per_run": rows, "cpu_min_rows": min_rows},
    }
    return choice, report


def report_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=1, sort_keys=True) + "\n"


def tensor_facts(model: onnx.ModelProto, strategy: str, *, rows_per_run: int | None, cpu_min_rows: int | None) -> dict:
    """What the manifest records about a tensor graph for the runtime (FlavorEntry's runtime facts).

    The strategy is the one the graph records (``m7.tensor_strategy``: e.g. ``linear`` for
    gblinear, whatever was asked), else ``strategy``.
    """
    return {
        "strategy": {p.key: p.value for p in model.metadata_props}.get(STRATEGY_KEY) or strategy,
        "bytes_per_row": bytes_per_row(model),
        "cpu_min_rows": cpu_min_rows,
        "rows_per_run": rows_per_run,
    }


def flavor_facts(models: Mapping[str, onnx.ModelProto], forest: Forest, plan: TensorPlan | None) -> dict[str, dict]:
    """The tensor flavors' runtime facts and notes for the manifest."""
    if plan is None:
        return {}
    cpu = plan.cpu
    note = "; ".join(plan.notes) or None
    facts: dict[str, dict] = {}
    if "tensor" in models:  # the choice is about this graph only when no CPU graph was planned
        measured_here = cpu.strategy is None and plan.origin != "rule"
        rule_rows = CPU_MIN_ROWS if forest.max_depth() <= CPU_MEASURED_MAX_DEPTH else None
        facts["tensor"] = tensor_facts(
            models["tensor"],
            plan.cuda_strategy,
            rows_per_run=cpu.rows_per_run if measured_here else None,
            cpu_min_rows=cpu.cpu_min_rows if measured_here else rule_rows,
        ) | {"note": note}
    if "tensor_cpu" in models:
        facts["tensor_cpu"] = tensor_facts(
            models["tensor_cpu"], str(cpu.strategy), rows_per_run=cpu.rows_per_run, cpu_min_rows=cpu.cpu_min_rows
        ) | {"note": note}
    return facts

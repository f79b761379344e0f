"""Cold start: a fresh Python process to the first prediction of all six models, wall time and peak RSS.

Three paths, each in its own fresh ``subprocess`` per measurement:

* ``pickle``: ``import joblib``; ``joblib.load`` x6; the map's first call of each
  (``predict_proba([vector])[0][1]`` / ``predict([vector])[0]``); what Market7 does today;
* ``runtime``: ``import m7_runtime``; ``m7_runtime.load_dir(onnx)``; ``predict_one`` x6
  (sessions are created lazily, on that first call);
* ``dropins``: ``from m7_runtime.market7 import ...``; the six drop-in calls (bundled models).

Wall time is measured by the parent, from just before the process is spawned to the
moment the child reports its sixth prediction (interpreter start-up included, exit
excluded). Peak RSS is the child's own high-water mark at that moment (``VmHWM`` from
``/proc/self/status``; ``ru_maxrss`` is not used because Linux carries the parent's RSS
at fork/exec into it). The child also
reports how its time split into imports, loading and first predictions. One unrecorded
warm-up run per path comes first, so the OS page cache and Python's bytecode cache are
warm for every recorded run alike ("cold" means a fresh process, not a cold disk).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import common
from .timing import rotated, summarize

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
mode, spec_path = sys.argv[1], sys.argv[2]
spec = json.load(open(spec_path))
if mode == "pickle":
    import joblib
    t1 = time.perf_counter()
    models = {name: joblib.load(path) for name, path in spec["pickles"].items()}
    t2 = time.perf_counter()
    out = {}
    for name, model in models.items():
        vector = spec["vectors"][name]
        if hasattr(model, "predict_proba"):
            out[name] = float(model.predict_proba([vector])[0][1])
        else:
            out[name] = max(0.0, float(model.predict([vector])[0]))
elif mode == "runtime":
    import m7_runtime
    t1 = time.perf_counter()
    models = m7_runtime.load_dir(spec["onnx"])
    t2 = time.perf_counter()
    out = {name: float(models[name].predict_one(spec["rows"][name])) for name in spec["pickles"]}
elif mode == "dropins":
    from m7_runtime import market7
    t1 = time.perf_counter()
    t2 = t1
    out = {}
    for name, (fn, kwargs) in spec["dropins"].items():
        out[name] = getattr(market7, fn)(spec["rows"][name], **kwargs)
else:
    raise SystemExit("unknown mode " + mode)
t3 = time.perf_counter()
print("READY", flush=True)
def peak_rss_mb():
    # VmHWM belongs to this process image; ru_maxrss would include the parent's RSS at fork/exec
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
heavy = sorted(m for m in ("xgboost", "sklearn", "joblib", "pandas", "scipy", "onnx", "m7_convert") if m in sys.modules)
print(json.dumps({
    "import_s": t1 - t0, "load_s": t2 - t1, "first_predictions_s": t3 - t2, "child_total_s": t3 - t0,
    "peak_rss_mb": peak_rss_mb(),
    "predictions": out, "heavy_modules_loaded": heavy,
}), flush=True)
"""

LABELS = {
    "pickle": "pickle: joblib.load + predict_proba",
    "runtime": "m7_runtime: load_dir + predict_one",
    "dropins": "m7_runtime drop-in functions",
}


def child_spec(cache: Path) -> Path:
    """Inputs for the children: each model's first row as the dict (runtime) and as the map's vector (pickle)."""
    rows = common.snapshot_rows(1, seed=11)
    row = rows[0]
    spec: dict[str, Any] = {"onnx": str(common.ONNX), "pickles": {}, "vectors": {}, "rows": {}, "dropins": {}}
    for name, (fn, kwargs) in common.SIX.items():
        model = common.load_pickle(name)
        names = list(model.feature_names_in_)
        if name in ("xgb_spend_model", "xgb_dca_spend_model"):
            status = row.get("btc_status", "nan")
            vector = [row.get(f, 0.0) for f in names[:15]] + [
                1.0 if k.endswith(status) else 0.0 for k in common.BTC_STATUS_KEYS
            ]
        else:
            vector = [row.get(f, 0.0) for f in names]
        spec["pickles"][name] = str(common.MODELS / f"{name}.pkl")
        spec["vectors"][name] = vector
        spec["rows"][name] = row
        spec["dropins"][name] = [fn, kwargs]
    path = cache / "cold_start_spec.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    return path


def child_env() -> dict[str, str]:
    """The user's environment, minus PYTHONDONTWRITEBYTECODE: a deployed bot has its bytecode cached."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("M7_MODEL_DIR", None)  # the drop-ins use the bundled artifacts, as a fresh install would
    return env


def one_run(mode: str, spec: Path) -> dict[str, Any]:
    env = child_env()
    with tempfile.TemporaryFile(mode="w+") as err:  # a file, not a pipe: a chatty child cannot block on it
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, mode, str(spec)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            cwd=str(common.ROOT),
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        wall = time.perf_counter() - t0
        rest = proc.stdout.read()  # the same buffered reader: what readline read ahead is not lost
        proc.wait(timeout=120)
        err.seek(0)
        stderr = err.read()
    if first.strip() != "READY" or proc.returncode != 0:
        raise RuntimeError(f"cold-start child {mode!r} failed (exit {proc.returncode}): {first}{rest}{stderr[-2000:]}")
    report = json.loads(rest.strip().splitlines()[-1])
    report["wall_s"] = wall
    report["interpreter_start_s"] = max(0.0, wall - report["child_total_s"])
    return report


def run(cfg: Any, cache: Path) -> dict[str, Any]:
    spec = child_spec(cache)
    modes = list(LABELS)
    for mode in modes:  # warm-up: page cache, __pycache__
        one_run(mode, spec)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for r in range(cfg.cold_repeats):
        for mode in rotated(modes, r):
            runs[mode].append(one_run(mode, spec))
        cfg.log(
            f"cold start: round {r + 1}/{cfg.cold_repeats}: "
            + "  ".join(f"{m} {runs[m][-1]['wall_s']:.2f} s {runs[m][-1]['peak_rss_mb']:.0f} MB" for m in modes)
        )
    paths = {}
    for mode in modes:
        rs = runs[mode]
        paths[mode] = {
            "label": LABELS[mode],
            **{
                k: summarize(x[k] for x in rs)
                for k in ("wall_s", "peak_rss_mb", "interpreter_start_s", "import_s", "load_s", "first_predictions_s")
            },
            "heavy_modules_loaded": rs[0]["heavy_modules_loaded"],
        }
    agree = max(abs(runs["pickle"][0]["predictions"][n] - runs["runtime"][0]["predictions"][n]) for n in common.SIX)
    speedups = [p["wall_s"] / q["wall_s"] for p, q in zip(runs["pickle"], runs["runtime"], strict=True)]
    return {
        "repeats": cfg.cold_repeats,
        "python": sys.executable,
        "paths": paths,
        "speedup_pickle_over_runtime": summarize(speedups),
        "max_abs_diff_first_predictions": agree,
        "note": "fresh process per run; warm page cache and bytecode cache; wall time from spawn to the 6th prediction",
    }

"""Conversion time of the six models, verification included.

Two measurements:

* **the command**: ``m7onnx convert models/*.pkl --out-dir DIR`` in a fresh process, as a
  user or CI runs it (imports of xgboost, onnx and onnxruntime included), with the CLI's
  default flavors; this is the number the target is checked on;
* **per model, in process**: ``m7_convert.convert(path, out_dir=..., flavors=...)`` for
  each flavor set the converter offers, after the imports are warm: where the time goes.

Each conversion writes only after its verification (random, NaN and every-threshold
probe rows against xgboost) passed, so the times include verification by construction.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import common
from .timing import summarize


def cli_run(out: Path) -> float:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "m7_runtime.cli", "convert", *[str(common.MODELS / f"{n}.pkl") for n in common.SIX]]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--out-dir", str(out)], capture_output=True, text=True, cwd=str(common.ROOT))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"m7onnx convert failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    written = sorted(p.name for p in out.glob("*.manifest.json"))
    if len(written) != len(common.SIX):
        raise RuntimeError(f"m7onnx convert wrote {written}, expected six manifests")
    return wall


def run(cfg: Any, cache: Path) -> dict[str, Any]:
    from m7_convert import convert, driver

    flavor_sets = [("tree",)]
    if len(driver.EMITTERS) > 1:
        flavor_sets.append(tuple(driver.EMITTERS))
    cli_default = "all" if "tensor" in driver.EMITTERS else "tree"
    out = cache / "conversion"
    walls = []
    for r in range(cfg.convert_repeats):
        walls.append(cli_run(out / "cli"))
        cfg.log(f"conversion: m7onnx convert of the six: {walls[-1]:.2f} s (run {r + 1}/{cfg.convert_repeats})")
    per_model: dict[str, dict[str, Any]] = {}
    for flavors in flavor_sets:
        key = "+".join(flavors)
        per_model[key] = {}
        for name in common.SIX:
            times = []
            for _ in range(cfg.convert_repeats):
                t0 = time.perf_counter()
                result = convert(common.MODELS / f"{name}.pkl", out_dir=out / key, flavors=flavors)
                times.append(time.perf_counter() - t0)
            rows = dict(result.manifest.parity.rows)
            per_model[key][name] = {"seconds": summarize(times), "probe_rows": rows}
        total = sum(v["seconds"]["median"] for v in per_model[key].values())
        cfg.log(f"conversion: in process, flavors {key}: {total:.2f} s for the six")
    return {
        "cli": {
            "command": "m7onnx convert models/*.pkl --out-dir DIR",
            "flavors": cli_default,
            "wall_s": summarize(walls),
        },
        "in_process": per_model,
        "repeats": cfg.convert_repeats,
    }

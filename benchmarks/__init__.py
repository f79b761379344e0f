"""market7-onnx benchmarks: ``python -m benchmarks`` measures every path a user could pick.

The harness (:mod:`.__main__`) runs the five sections in :data:`SECTIONS`, one module
each: single-row latency (:mod:`.single`), batch throughput (:mod:`.batch`), cold start
(:mod:`.cold`), conversion time (:mod:`.conversion`) and scaling with trees/depth/batch
size (:mod:`.scaling`). Each writes ``results/<section>.json``; from those files only,
:mod:`.report` writes ``summary.md`` (the targets in :mod:`.targets`, one row of data
each, then a table per section) and :mod:`.plots` the PNG plots. :mod:`.common`,
:mod:`.timing` and :mod:`.env` are what the sections share.

Standalone scripts beside the harness, each with its own results file: ``batch_scoring.py``
(``m7onnx score``, local and Dask engines; README "Batch scoring"), ``gpu_batch.py`` (run it
on a GPU machine) and ``soak.py`` (millions of calls, watching memory). Research
experiments behind the decisions in ``NOTES.md`` are in :mod:`.archive`.

Nothing here is imported by the runtime, and importing this package imports nothing heavy:
each section imports xgboost, onnxmltools, TL2cgen or matplotlib only when it runs.
"""

from pathlib import Path

#: the report's sections, in the order they run and appear in summary.md: name -> module that measures it
SECTIONS = {"single": "single", "batch": "batch", "cold": "cold", "convert": "conversion", "scaling": "scaling"}
#: where the harness writes ``<section>.json``, ``summary.md`` and the plots
RESULTS = Path(__file__).resolve().parent / "results"
#: trained/converted/compiled inputs shared by full and quick runs and the archive (git ignores it)
CACHE = RESULTS / "tmp"

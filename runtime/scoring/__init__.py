"""Batch scoring of feature files: one scoring plan, one per-chunk function, two engines.

Backtests and simulations score millions to billions of snapshot rows, far more than fit in
memory, on one machine or a Dask cluster::

    from m7_runtime.scoring import score_file

    result = score_file(["xgb_recovery_model", "xgb_spend_model"], input="snapshots/", output="scored.parquet")

Modules, each importing only the ones above it:

==================  ===========================================================================
``deps``            the optional dependencies (pyarrow, tqdm, dask), imported on first use
``inputs``          what an input is: format, files, columns, sizes (before any row is read)
``plan``            what to compute: models in run order, columns needed, output columns
``read``            the input in bounded pieces (local batches, Dask partitions)
``score``           the per-chunk function both engines run (:func:`score_table`)
``output``          all-or-nothing output: temp files, atomic rename, stale-temp cleanup
``job``             what an engine gets and returns; the progress bar
``local``           the local engine
``dask_engine``     the Dask engine
``api``             :func:`score_file` and the engine table
``cli``             ``m7onnx score``
==================  ===========================================================================

pyarrow and tqdm (the ``batch`` extra) and dask (the ``dask`` extra) are imported inside the
functions that use them, so ``import m7_runtime.scoring`` loads neither. The library logs
notes (logger ``m7_runtime.scoring``) but configures no logging; the ``m7onnx`` command does.
"""

from __future__ import annotations

from .api import DEFAULT_BATCH_ROWS, ENGINES, ScoreResult, score_file
from .plan import ScoringPlan, make_plan
from .score import score_table

__all__ = ["DEFAULT_BATCH_ROWS", "ENGINES", "ScoreResult", "ScoringPlan", "make_plan", "score_file", "score_table"]

"""Research experiments: the measurements behind the design decisions in ``benchmarks/NOTES.md``.

Nothing here produces a section of ``python -m benchmarks``'s report; these scripts were run
once (or a few times) to decide something (a tensor strategy threshold, I/O binding, the
run size, what does not close the batch gap) and are kept so the numbers in NOTES.md can be
re-measured:

* :mod:`.experiments`: ``python -m benchmarks.archive.experiments [--only NAMES]``, the
  batch-on-the-CPU and single-row experiments (:mod:`.batch_cpu`, :mod:`.single_row`,
  on helpers in :mod:`.lab` and graph variants in :mod:`.layouts`);
* :mod:`.tensor_cpu`: ``python -m benchmarks.archive.tensor_cpu``, the tensor strategies'
  CPU grid behind ``m7_convert.emit_tensor.choose_strategy`` and ``cpu_min_rows``.

Their results are in ``benchmarks/archive/results/``. They reach into ``m7_convert``'s IR and
graph helpers and a few ``m7_runtime`` internals as they were when the experiments ran; if
those move, adapt the experiment before re-running it (the report never depends on this).
"""

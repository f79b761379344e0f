"""market7-onnx benchmarks: ``python -m benchmarks`` measures every path a user could pick.

Sections (one module each): single-row latency (:mod:`.single`), batch throughput
(:mod:`.batch`), cold start (:mod:`.cold`), conversion time (:mod:`.conversion`) and
scaling with trees/depth/batch size (:mod:`.scaling`); :mod:`.report` turns their JSON into
``summary.md`` and PNG plots. Method, experiments and their outcomes: ``benchmarks/NOTES.md``.

Nothing here is imported by the runtime, and importing this package imports nothing heavy:
each section imports xgboost, onnxmltools, TL2cgen or matplotlib only when it runs.
"""

"""Shadow scoring: a candidate model scored on the served model's traffic, compared on the fly.

A bot attaches a candidate (a retrained version) to the model it serves::

    shadow = m7_runtime.shadow.attach(served, candidate)
    ...                                  # the bot predicts with `served` as before
    shadow.stats()                       # Comparison: rows, max/mean abs diff, correlation, flips, moved_most

Served predictions are never changed: the shadow is an observer of the served model. It
receives the rows the served model ran (float32, model order, after the caller policy) and
its outputs (after the clamp), runs the candidate on the same rows, applies the candidate's
clamp, and adds both to a :class:`~m7_runtime.compare.RunningComparison`, the same numbers
``m7onnx diff`` prints (served = old, candidate = new).

Cost (measured by ``python -m benchmarks.monitoring``): one batched candidate run per
delivered batch plus one vectorised comparison. ``predict_one`` delivers its rows every few
thousand calls, so a single call pays nothing at p50 and the call that triggers a delivery
pays for the whole batch (a few milliseconds for 4096 rows); a ``predict``/``score`` batch
pays about one more batch prediction. A candidate that fails is counted in ``errors`` (with
the last message), never raised into the served prediction.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from .compare import Comparison, RunningComparison, default_threshold, feature_difference
from .errors import M7Error

log = logging.getLogger("m7_runtime.shadow")


class Shadow:
    """An observer of ``served`` that scores ``candidate`` on the same rows. See the module docstring."""

    def __init__(self, served: Any, candidate: Any, *, threshold: float | None = None, top: int = 10) -> None:
        if candidate is served:
            raise M7Error(f"cannot shadow {served.name} with itself; load the candidate separately")
        why = feature_difference(served.feature_names, candidate.feature_names)
        if why is not None:
            raise M7Error(f"cannot shadow {served.name} with {candidate.name}: {why}")
        if served.manifest.n_outputs != candidate.manifest.n_outputs:
            raise M7Error(
                f"cannot shadow {served.name} with {candidate.name}: {served.manifest.n_outputs} vs "
                f"{candidate.manifest.n_outputs} outputs per row"
            )
        self.served = served
        self.candidate = candidate
        self.threshold = default_threshold(served.task) if threshold is None else threshold
        self._running = RunningComparison(threshold=self.threshold, top=top)
        self._lock = threading.Lock()
        self.errors = 0
        self.last_error: str | None = None

    def observe(self, rows: np.ndarray, outputs: np.ndarray) -> None:
        try:
            ours = self.candidate.policy.clamp(self.candidate.predict(rows))
            self._running.add(outputs, ours)
        except Exception as exc:  # the candidate must never break the served path
            with self._lock:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("shadow %s of %s failed on %d rows: %s", self.candidate.name, self.served.name, len(rows), exc)

    def stats(self) -> Comparison:
        """Disagreement so far (served = old, candidate = new), after delivering queued rows."""
        flush = getattr(self.served, "flush", None)
        if flush is not None:
            flush()
        return self._running.result()

    def reset(self) -> Comparison:
        """The statistics so far, then start again."""
        result = self.stats()
        self._running = RunningComparison(threshold=self.threshold, top=self._running.top)
        return result

    def detach(self) -> Comparison:
        """Stop shadowing; the final statistics."""
        result = self.stats()
        self.served.remove_observer(self)
        return result


def attach(served: Any, candidate: Any, *, threshold: float | None = None, top: int = 10) -> Shadow:
    """Shadow ``served`` (a loaded :class:`~m7_runtime.Model`) with ``candidate``; returns the :class:`Shadow`.

    ``threshold``: where decisions flip (default 0.5 for binary classifiers, arg-max for
    multiclass, none for regressors, whose outputs are compared after each one's clamp).
    """
    shadow = Shadow(served, candidate, threshold=threshold, top=top)
    served.add_observer(shadow)
    return shadow

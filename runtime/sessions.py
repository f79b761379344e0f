"""onnxruntime sessions: one home for their options, lazy creation, and the bound single-row run.

Every session the project creates (runtime, converter verification, benchmarks) takes its
options from :func:`session_options`: one intra-op thread, so onnxruntime sums each row's
trees in order from the base margin exactly as xgboost does (bit-identical margins; large
batches are split into row chunks across threads instead).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import numpy as np
import onnxruntime as ort

from .errors import M7Error
from .providers import Placement


def session_options(base: ort.SessionOptions | None = None) -> ort.SessionOptions:
    """The options every session runs with, or ``base`` as given by an advanced user.

    A user's own options are used unchanged: with ``intra_op_num_threads`` other than 1 the
    tree flavor may add a row's trees in another order and lose bit-identity with xgboost
    (README, "Runtime API").
    """
    if base is not None:
        return base
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return opts


def cpu_session(data: bytes) -> ort.InferenceSession:
    """A CPU session with the runtime's options (the converter's parity gate runs graphs this way)."""
    return ort.InferenceSession(data, sess_options=session_options(), providers=["CPUExecutionProvider"])


class Sessions:
    """The onnxruntime session of one artifact, created on first use and shared by identical artifacts."""

    def __init__(self, data: bytes, placement: Placement, options: ort.SessionOptions | None = None) -> None:
        self._data = data
        self.placement = placement
        self._options = options
        self._lock = threading.Lock()
        self._session: ort.InferenceSession | None = None

    def _make(self) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(
                self._data, sess_options=session_options(self._options), providers=list(self.placement.ort_providers)
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise M7Error(f"onnxruntime cannot load the artifact: {exc}") from exc

    def get(self) -> ort.InferenceSession:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._make()
        return self._session

    @property
    def actual_provider(self) -> str:
        """What onnxruntime really placed the graph on (it may fall back from CUDA)."""
        return "cuda" if self.get().get_providers()[0] == "CUDAExecutionProvider" else "cpu"


def bound_run(
    sess: ort.InferenceSession, placement: Placement, names: tuple[str, str], buf: np.ndarray, out: np.ndarray
) -> Callable[[], None]:
    """A callable that runs ``sess`` on the row in ``buf`` and leaves the prediction in ``out``.

    On the CPU this is an I/O binding to both arrays: it skips building the feed dict,
    converting the input and allocating the result on every call (~1.5 µs of a 5.7 µs
    prediction, NOTES.md "predict_one"). The binding's public ``run_with_iobinding`` adds one
    Python frame; calling the wrapped C++ objects (onnxruntime's ``_sess``/``_iobinding``,
    private) saves ~3.6k instructions a call. Each candidate is checked once against plain
    ``session.run`` on the same row, and the first that writes the same bytes is used; a
    missing private attribute, a binding error, or a CUDA placement (input and output live on
    the device) falls back to plain ``session.run``, which is always correct.
    """
    input_name, output_name = names
    feed, wanted = {input_name: buf}, [output_name]

    def plain() -> None:
        out[...] = sess.run(wanted, feed)[0]

    if placement.provider != "cpu":
        return plain
    try:
        binding = sess.io_binding()
        binding.bind_input(input_name, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
        binding.bind_output(output_name, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        candidates = [functools.partial(sess.run_with_iobinding, binding)]
        inner, inner_binding = getattr(sess, "_sess", None), getattr(binding, "_iobinding", None)
        if inner is not None and inner_binding is not None:
            candidates.insert(0, functools.partial(inner.run_with_iobinding, inner_binding, None))
        for run in candidates:
            if writes_like_plain(run, out, plain):
                return run
    except Exception:  # any binding problem: the plain path is always correct
        pass
    return plain


def writes_like_plain(run: Callable[[], None], out: np.ndarray, plain: Callable[[], None]) -> bool:
    """Does ``run`` write the same bytes into ``out`` as ``session.run`` (``plain``) does?"""
    try:
        out[...] = np.nan
        run()
        bound = out.tobytes()
    except Exception:
        return False
    plain()
    return bound == out.tobytes()

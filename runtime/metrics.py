"""Metrics for a dashboard: a ``prometheus_client`` collector of each model's traffic and drift.

Needs the ``monitor`` extra (``pip install 'market7-onnx[monitor]'``); ``prometheus_client`` is
imported here only. A bot registers the collector in its own registry::

    from prometheus_client import REGISTRY
    from m7_runtime.metrics import ModelCollector

    REGISTRY.register(ModelCollector(models))          # models: {name: Model} or a list of them

or serves its models' metrics on their own port in one line::

    m7_runtime.metrics.serve(models, port=9108)        # http://127.0.0.1:9108/metrics

Per model (label ``model``), read at each scrape:

=====================================  =======  =====================================================
``m7_predictions_total``               counter  rows predicted since the collector was created
``m7_out_of_range_total``              counter  inputs far outside the split thresholds, per ``feature``
``m7_drift_window_rows``               gauge    rows counted in the current drift window
``m7_feature_psi``                     gauge    PSI of each ``feature`` in the current window
``m7_prediction_psi``                  gauge    PSI of the output in the current window
=====================================  =======  =====================================================

The PSI gauges are absent for a model without a reference profile and while its window is
empty. The window is the one ``model.drift()`` reports: a bot that calls
``model.drift(reset=True)`` on a schedule sees each window's PSI grow from its first rows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from .errors import M7Error


def _prometheus() -> Any:
    try:
        import prometheus_client
        import prometheus_client.core
    except ImportError as exc:
        raise M7Error(f"metrics need prometheus_client: pip install 'market7-onnx[monitor]' ({exc})") from exc
    return prometheus_client


class _Served:
    """An observer counting the rows a model predicts (every path delivers them, in batches)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows = 0

    def observe(self, rows: np.ndarray, outputs: np.ndarray) -> None:
        with self._lock:
            self.rows += len(rows)


class ModelCollector:
    """A ``prometheus_client`` custom collector over loaded models (see the module docstring).

    It attaches a row-counting observer to each model; :meth:`close` detaches them.
    """

    def __init__(self, models: Mapping[str, Any] | Iterable[Any]) -> None:
        _prometheus()
        self.models = list(models.values()) if isinstance(models, Mapping) else list(models)
        self._served: dict[str, _Served] = {}
        for m in self.models:
            counter = _Served()
            m.add_observer(counter)
            self._served[m.name] = counter

    def close(self) -> None:
        for m in self.models:
            m.remove_observer(self._served[m.name])

    def describe(self) -> list[Any]:
        return []  # metrics are only known at collect time; no describe-time registry check

    def collect(self) -> Iterator[Any]:
        core = _prometheus().core
        served = core.CounterMetricFamily("m7_predictions", "Rows predicted by the model", labels=["model"])
        outside = core.CounterMetricFamily(
            "m7_out_of_range", "Inputs far outside the model's split thresholds", labels=["model", "feature"]
        )
        rows = core.GaugeMetricFamily("m7_drift_window_rows", "Rows in the current drift window", labels=["model"])
        feature_psi = core.GaugeMetricFamily(
            "m7_feature_psi", "Population stability index of a feature, current window", labels=["model", "feature"]
        )
        prediction_psi = core.GaugeMetricFamily(
            "m7_prediction_psi", "Population stability index of the output, current window", labels=["model"]
        )
        for m in self.models:
            m.flush()
            served.add_metric([m.name], self._served[m.name].rows)
            for feature, n in sorted(m.out_of_range.items()):
                outside.add_metric([m.name, feature], n)
            if m.manifest.reference is None:
                continue
            report = m.drift()
            rows.add_metric([m.name], report.rows)
            for feature, value in report.features.items():
                if value is not None:
                    feature_psi.add_metric([m.name, feature], value)
            if report.prediction is not None:
                prediction_psi.add_metric([m.name], report.prediction)
        yield from (served, outside, rows, feature_psi, prediction_psi)


def serve(
    models: Mapping[str, Any] | Iterable[Any], *, port: int = 9108, addr: str = "127.0.0.1"
) -> tuple[Any, Any, ModelCollector]:
    """Serve the models' metrics over HTTP at ``http://addr:port/metrics`` from a daemon thread.

    Uses a registry of its own (the bot's default registry is left alone). Returns the
    server (``server.shutdown()`` stops it), its thread and the collector.
    """
    prometheus_client = _prometheus()
    registry = prometheus_client.CollectorRegistry()
    collector = ModelCollector(models)
    registry.register(collector)
    server, thread = prometheus_client.start_http_server(port, addr=addr, registry=registry)
    return server, thread, collector

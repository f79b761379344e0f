"""The [monitor] extra's prometheus collector: registered in a real registry, served over HTTP, scraped as text."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import m7_runtime
from conftest import MODELS, ONNX
from m7_runtime.metrics import ModelCollector, serve

REC, SPEND = "xgb_recovery_model", "xgb_spend_model"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def models(snapshots):
    loaded = {n: m7_runtime.load(ONNX / f"{n}.manifest.json") for n in (REC, SPEND)}
    row = json.loads((MODELS / "example_snapshot.json").read_text())
    return loaded, row


def test_the_collector_in_a_registry_reports_served_rows_out_of_range_and_psi(models, snapshots):
    loaded, row = models
    registry = CollectorRegistry()
    collector = ModelCollector(loaded)
    registry.register(collector)
    for _ in range(5):
        loaded[REC].predict_one(row)
    loaded[REC].predict_one({**row, "rsi": 1e6})  # far outside the split range
    loaded[SPEND].score(snapshots.iloc[:700])
    got = samples(generate_latest(registry).decode())
    assert got[("m7_predictions_total", (("model", REC),))] == 6
    assert got[("m7_predictions_total", (("model", SPEND),))] == 700
    assert got[("m7_out_of_range_total", (("feature", "rsi"), ("model", REC)))] == 1
    report = loaded[SPEND].drift()
    assert got[("m7_drift_window_rows", (("model", SPEND),))] == report.rows == 700
    for feature, value in report.features.items():
        assert got[("m7_feature_psi", (("feature", feature), ("model", SPEND)))] == pytest.approx(value, rel=1e-12)
    assert got[("m7_prediction_psi", (("model", SPEND),))] == pytest.approx(report.prediction, rel=1e-12)
    collector.close()
    assert all(not isinstance(o, type(collector._served[REC])) for o in loaded[REC].observers)


def test_serve_exposes_the_metrics_over_http(models):
    loaded, _ = models
    server, _, collector = serve(loaded, port=0)  # an ephemeral port on 127.0.0.1
    try:
        loaded[REC].predict(np.zeros((3, len(loaded[REC].feature_names)), np.float32))
        port = server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        collector.close()
    got = samples(text)
    assert got[("m7_predictions_total", (("model", REC),))] == 3
    assert ("m7_prediction_psi", (("model", REC),)) in got
    assert "# TYPE m7_feature_psi gauge" in text and "# TYPE m7_predictions_total counter" in text

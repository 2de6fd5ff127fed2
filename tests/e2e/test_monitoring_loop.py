"""The monitoring loop on the real service: shifted traffic over HTTP -> prediction log -> `mlops
ship-logs` -> the drift window with its version's reference -> drift check -> outcomes -> triggers."""

from __future__ import annotations

import csv
import subprocess

import pandas as pd
import pytest

from german_credit_scoring.monitoring import lineage as lineage_mod
from german_credit_scoring.monitoring import window
from german_credit_scoring.monitoring.labels import ingest_labels
from german_credit_scoring.monitoring.store import Store
from german_credit_scoring.monitoring.triggers import evaluate

from . import test_serving
from .helpers import ROOT, VENV_BIN
from .test_serving import json_records

pytestmark = pytest.mark.e2e
served = test_serving.served  # the serving tests' fixture: a model trained here behind `bentoml serve`


def test_shifted_production_traffic_reaches_the_check_and_its_outcomes_the_triggers(
    served, settings, tmp_path
):
    client, test, features = served["client"], served["test"], served["features"]
    inputs = [f.name for f in features.model_inputs(settings.data.use_protected_as_features)]
    # traffic: the test rows with the largest values of the first numeric input, repeated (shifted)
    shifted_feature = next(f.name for f in features.numeric if f.name in inputs)
    top = test.sort_values(shifted_feature).tail(len(test) // 3)
    traffic = pd.concat([top] * (settings.drift.min_rows // len(top) + 2), ignore_index=True)
    answers = []
    for start in range(0, len(traffic), 100):
        chunk = traffic.iloc[start : start + 100]
        response = client.post("/predict_batch", json={"records": json_records(chunk, inputs)})
        assert response.status_code == 200, response.text
        answers.append((response.json()["request_id"], chunk))

    # ship the service's log (today's partition too) to a store folder with the real command
    store_dir = tmp_path / "store"
    shipped = subprocess.run(
        [
            *(str(VENV_BIN / "mlops"), "ship-logs", "--include-open"),
            *("--source", str(served["log_dir"]), "--store", str(store_dir)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert not list(served["log_dir"].rglob("*.jsonl"))  # moved, not copied
    store = Store(store_dir)

    # the window: version e2e-1's rows against the reference it was trained on (its lineage)
    reference = tmp_path / "reference.parquet"
    from german_credit_scoring.lifecycle.ingest import ingest

    ingest(settings, features).train.to_parquet(reference, index=False)
    entry = lineage_mod.VersionLineage(reference_md5=lineage_mod.md5_of(reference), packaged_at="2026-01-01")
    lineage = lineage_mod.Lineage(production="e2e-1", versions={"e2e-1": entry})
    current = tmp_path / "current"
    manifest = window.materialize(settings, store, lineage, out_dir=current, current_reference=reference)
    assert manifest.model_version == "e2e-1" and manifest.rows >= len(traffic)
    drift = window.run_check(
        settings,
        features,
        out_dir=current,
        json_path=tmp_path / "drift.json",
        markdown_path=tmp_path / "drift.md",
    )
    assert drift["verdict"] == "drift" and shifted_feature in drift["drifted_features"]
    assert drift["window"]["reference_md5"] == entry.reference_md5

    # outcomes come back for every scored record, keyed by request id and position in the batch
    outcomes = tmp_path / "outcomes.csv"
    with open(outcomes, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "record", settings.data.target, *settings.data.protected_names])
        for request_id, chunk in answers:
            for position, (_, row) in enumerate(chunk.iterrows()):
                protected = [row.get(name) for name in settings.data.protected_names]
                writer.writerow([request_id, position, row[settings.data.target], *protected])
    classes = sorted({str(v) for v in test[settings.data.target].unique()})
    performance = ingest_labels([outcomes], settings, store, classes, features)
    assert performance.counts.used == len(traffic) and performance.counts.unmatched == 0
    (latest,) = performance.windows
    assert latest.labelled == len(traffic) and latest.roc_auc.low is not None

    report = evaluate(settings.monitoring.triggers, drift, performance, {"roc_auc": 0.77})
    fired = {t.name: t for t in report.triggers if t.fired}
    assert "feature_drift" in fired and shifted_feature in fired["feature_drift"].detail
    assert "Retraining triggered by" in report.markdown()

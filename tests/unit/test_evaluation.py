"""Evaluation metrics agree with scikit-learn and stay defined-or-None on awkward slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from german_credit_scoring.lifecycle.evaluation import (
    bar,
    binary_metrics,
    calibration_points,
    confusion_rows,
    sliced_metrics,
)
from german_credit_scoring.settings import CostMatrix

COST = CostMatrix(false_negative=5, false_positive=1)


@pytest.fixture
def predictions():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1)
    return labels, scores


def test_metrics_match_scikit_learn(predictions):
    labels, scores = predictions
    threshold = 0.4
    result = binary_metrics(labels, scores, threshold, COST)
    decisions = scores >= threshold
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, scores))
    assert result["pr_auc"] == pytest.approx(skm.average_precision_score(labels, scores))
    assert result["f1"] == pytest.approx(skm.f1_score(labels, decisions))
    assert result["precision"] == pytest.approx(skm.precision_score(labels, decisions))
    assert result["recall"] == pytest.approx(skm.recall_score(labels, decisions))
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, decisions))
    assert result["brier"] == pytest.approx(skm.brier_score_loss(labels, scores))


def test_expected_cost_uses_the_cost_matrix():
    labels = np.array([1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.3])  # one missed positive, one false alarm at 0.5
    result = binary_metrics(labels, scores, 0.5, COST)
    assert (result["fn"], result["fp"]) == (1, 1)
    assert result["expected_cost"] == pytest.approx((5 * 1 + 1 * 1) / 5)


def test_undefined_metrics_are_none_not_errors():
    one_class = binary_metrics(np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.4]), 0.5, COST)
    assert one_class["roc_auc"] is None and one_class["pr_auc"] is None
    assert one_class["precision"] is None  # no positive decision
    assert one_class["recall"] is None  # no positive label
    assert one_class["accuracy"] == 1.0


def test_slices_cover_every_value_including_missing(predictions):
    labels, scores = predictions
    frame = pd.DataFrame({"y_true": labels, "score": scores, "region": ["n", "s", None, "n", "s"] * 100})
    result = sliced_metrics(frame, ["region"], 0.5, COST)
    assert set(result["region"]) == {"n", "s", "missing"}
    assert sum(m["n"] for m in result["region"].values()) == 500


def test_calibration_bins_partition_the_predictions(predictions):
    labels, scores = predictions
    points = calibration_points(labels, scores, bins=5)
    assert sum(p["count"] for p in points) == len(scores)
    assert all(0 <= p["mean_predicted"] <= 1 for p in points)


def test_confusion_rows_name_the_classes():
    rows = confusion_rows(np.array([1, 0]), np.array([0, 0]), "bad", "good")
    assert rows == [{"actual": "bad", "predicted": "good"}, {"actual": "good", "predicted": "good"}]


def test_bar_is_proportional():
    assert bar(0.5, width=10) == "█████░░░░░"
    assert bar(None) == ""

"""Evaluation: the metrics a credit committee reads, overall and per slice, and DVC plot data.

Pure functions of (labels, scores, threshold, costs). A metric that is undefined for a slice (ROC AUC
with one class, precision with no positive decision) is ``None``, never a crash or a fake number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from german_credit_scoring.settings import CostMatrix


def confusion(labels: np.ndarray, decisions: np.ndarray) -> dict[str, int]:
    labels = labels.astype(bool)
    decisions = decisions.astype(bool)
    return {
        "tp": int(np.sum(labels & decisions)),
        "fp": int(np.sum(~labels & decisions)),
        "fn": int(np.sum(labels & ~decisions)),
        "tn": int(np.sum(~labels & ~decisions)),
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else float(numerator / denominator)


def binary_metrics(
    labels: np.ndarray, scores: np.ndarray, threshold: float, cost: CostMatrix
) -> dict[str, Any]:
    """Every headline metric for one set of predictions (labels are 0/1, scores P(positive))."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    n = len(labels)
    decisions = (scores >= threshold).astype(int)
    counts = confusion(labels, decisions)
    both_classes = 0 < labels.sum() < n
    precision = _ratio(counts["tp"], counts["tp"] + counts["fp"])
    recall = _ratio(counts["tp"], counts["tp"] + counts["fn"])
    f1 = _ratio(2 * counts["tp"], 2 * counts["tp"] + counts["fp"] + counts["fn"])
    return {
        "n": n,
        "positive_rate": _ratio(labels.sum(), n),
        "predicted_positive_rate": _ratio(decisions.sum(), n),
        "threshold": float(threshold),
        "roc_auc": float(roc_auc_score(labels, scores)) if both_classes else None,
        "pr_auc": float(average_precision_score(labels, scores)) if both_classes else None,
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "accuracy": _ratio(counts["tp"] + counts["tn"], n),
        "brier": float(np.mean((scores - labels) ** 2)) if n else None,
        "expected_cost": _ratio(cost.false_negative * counts["fn"] + cost.false_positive * counts["fp"], n),
        **counts,
    }


def sliced_metrics(
    predictions: pd.DataFrame, columns: list[str], threshold: float, cost: CostMatrix
) -> dict[str, dict[str, dict[str, Any]]]:
    """The same metrics within each value of each slice column."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for column in columns:
        values = predictions[column].astype(object).where(predictions[column].notna(), "missing")
        out[column] = {
            str(value): binary_metrics(part["y_true"].to_numpy(), part["score"].to_numpy(), threshold, cost)
            for value, part in predictions.groupby(values.astype(str), sort=True)
        }
    return out


def roc_points(labels: np.ndarray, scores: np.ndarray) -> list[dict[str, float]]:
    from sklearn.metrics import roc_curve

    if not 0 < labels.sum() < len(labels):
        return []
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=True)
    return [
        {"fpr": float(f), "tpr": float(t), "threshold": float(min(th, 1.0))}
        for f, t, th in zip(fpr, tpr, thresholds, strict=True)
    ]


def precision_recall_points(labels: np.ndarray, scores: np.ndarray) -> list[dict[str, float]]:
    from sklearn.metrics import precision_recall_curve

    if not labels.sum():
        return []
    precision, recall, _ = precision_recall_curve(labels, scores)
    return [{"recall": float(r), "precision": float(p)} for p, r in zip(precision, recall, strict=True)]


def calibration_points(labels: np.ndarray, scores: np.ndarray, bins: int) -> list[dict[str, float]]:
    """Equal-width bins of predicted probability: mean prediction vs observed positive rate."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    points = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            points.append(
                {
                    "bin": b,
                    "mean_predicted": float(scores[mask].mean()),
                    "fraction_positive": float(labels[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return points


def confusion_rows(
    labels: np.ndarray, decisions: np.ndarray, positive: str, negative: str
) -> list[dict[str, str]]:
    """One record per prediction, the shape DVC's confusion template counts."""
    name = np.where(labels.astype(bool), positive, negative)
    predicted = np.where(decisions.astype(bool), positive, negative)
    return [{"actual": a, "predicted": p} for a, p in zip(name.tolist(), predicted.tolist(), strict=True)]


def bar(value: float | None, width: int = 20) -> str:
    """A Unicode bar for a value in [0, 1]: charts in a PR comment with no hosted images."""
    if value is None:
        return ""
    filled = round(max(0.0, min(1.0, value)) * width)
    return "█" * filled + "░" * (width - filled)

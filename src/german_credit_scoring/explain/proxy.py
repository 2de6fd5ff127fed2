"""Proxy analysis: how well the model's inputs predict a protected attribute, and which inputs carry it.

A model that never sees ``sex`` can still treat groups differently through inputs that predict it. For
each protected attribute a simple classifier (the contract's own transformation, then logistic
regression) predicts the group from the model's inputs (never the protected attributes themselves);
its cross-validated ROC AUC (one-vs-rest macro average for more than two groups) says how much of the
attribute the inputs carry: 0.5 none, 1.0 all of it. The same is done with each input alone to name the
carriers. Out-of-fold predictions only, so the AUC is not flattered by fitting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.data import model_frame
from german_credit_scoring.errors import DataError
from german_credit_scoring.settings import ProxySettings

BOOTSTRAP = 200  # replicates of the out-of-fold predictions for the AUC's interval


def _auc(labels: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(classes) == 2:
        return float(roc_auc_score(labels == classes[1], proba[:, 1]))
    return float(roc_auc_score(labels, proba, multi_class="ovr", average="macro", labels=classes))


def _out_of_fold(inputs: pd.DataFrame, labels: np.ndarray, features: FeatureSet, folds: int, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import Pipeline

    from german_credit_scoring.lifecycle.transform import build_transformer

    pipeline = Pipeline(
        [("transform", build_transformer(features)), ("model", LogisticRegression(max_iter=1000))]
    )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(pipeline, inputs, labels, cv=cv, method="predict_proba")


def _alone(column: pd.Series, labels: np.ndarray, classes: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold group shares per value of one input (numeric inputs in deciles): no model to fit.

    Counting is all it takes to ask "does this input alone tell the group?", so the 20-odd single-input
    checks cost milliseconds instead of a classifier fit each.
    """
    from sklearn.model_selection import StratifiedKFold

    if pd.api.types.is_numeric_dtype(column):
        values = pd.to_numeric(column, errors="coerce")
        edges = np.unique(np.nanquantile(values, np.linspace(0, 1, 11)[1:-1])) if values.notna().any() else []
        codes = np.where(values.isna(), -1, np.searchsorted(edges, values, side="right"))
    else:
        codes = pd.factorize(column.astype(object).where(column.notna(), "__missing__"))[0]
    codes = codes - codes.min()
    width = int(codes.max()) + 1
    y = np.searchsorted(classes, labels)
    proba = np.zeros((len(labels), len(classes)))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in cv.split(codes, y):
        counts = np.zeros((width, len(classes)))
        np.add.at(counts, (codes[train], y[train]), 1.0)
        prior = np.bincount(y[train], minlength=len(classes)) / len(train)
        shares = (counts + prior) / (counts.sum(axis=1, keepdims=True) + 1.0)  # one pseudo-row of prior
        proba[test] = shares[codes[test]]
    return proba


def proxy_analysis(
    frame: pd.DataFrame,
    features: FeatureSet,
    groups: Any,
    settings: ProxySettings | None = None,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """``proxy_auc`` with an interval, and the inputs that carry the attribute, best first."""
    settings = settings or ProxySettings()
    inputs_set = FeatureSet(features=features.model_inputs(include_sensitive=False))
    labels = pd.Series(groups, index=frame.index).astype(object)
    labels = labels.where(labels.notna(), "missing").astype(str)
    if len(labels) != len(frame):
        raise DataError(f"groups ({len(labels)}) and rows ({len(frame)}) differ in length")
    counts = labels.value_counts()
    kept_groups = counts[counts >= settings.folds].index
    left_out = sorted(set(counts.index) - set(kept_groups))
    mask = labels.isin(kept_groups).to_numpy()
    inputs = model_frame(frame, inputs_set)[mask]
    y = labels[mask].to_numpy()
    result: dict[str, Any] = {"rows": int(mask.sum()), "groups_left_out": left_out, "folds": settings.folds}
    if len(kept_groups) < 2:
        return {
            **result,
            "proxy_auc": None,
            "interval": {"low": None, "high": None},
            "top_features": [],
            "note": f"fewer than two groups with at least {settings.folds} rows: no proxy analysis",
        }
    if len(y) > settings.max_rows:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(len(y), settings.max_rows, replace=False))
        inputs, y = inputs.iloc[chosen], y[chosen]
        result["rows"] = int(settings.max_rows)
    classes = np.unique(y)
    proba = _out_of_fold(inputs, y, inputs_set, settings.folds, seed)
    auc = _auc(y, proba, classes)
    rng = np.random.default_rng(seed)
    replicates = []
    draws = BOOTSTRAP if len(classes) == 2 else BOOTSTRAP // 4  # a multi-class AUC costs one per class
    for _ in range(draws):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) == len(classes):
            replicates.append(_auc(y[idx], proba[idx], classes))
    tail = (1 - confidence) / 2 * 100
    interval: dict[str, float | None] = {"low": None, "high": None}
    if len(replicates) >= draws // 4:  # rare groups missing from most resamples: no honest interval
        low, high = np.percentile(replicates, [tail, 100 - tail])
        interval = {"low": float(low), "high": float(high)}
    carriers = [
        {
            "feature": f.name,
            "auc_alone": _auc(y, _alone(inputs[f.name], y, classes, settings.folds, seed), classes),
        }
        for f in inputs_set.features
    ]
    carriers.sort(key=lambda c: -c["auc_alone"])
    return {
        **result,
        "proxy_auc": auc,
        "interval": interval,
        "top_features": carriers[: settings.top_features],
    }

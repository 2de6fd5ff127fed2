"""The one transformation object shared by training and serving.

The model artefact is a single scikit-learn ``Pipeline(transform, estimator)`` built from the feature
definitions. Serving loads that same object, so training/serving skew is impossible by construction:
there is no second implementation of any transformation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from german_credit_scoring.contract import FeatureSet

MISSING_CATEGORY = "__missing__"


def _numeric_steps(transformation: str) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if transformation == "log1p_standard":
        steps.append(("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one")))
    if transformation in {"standard", "log1p_standard"}:
        steps.append(("scale", StandardScaler()))
    return steps


def build_transformer(features: FeatureSet, include_sensitive: bool = False) -> ColumnTransformer:
    """A ColumnTransformer with one branch per kind of transformation, as declared per feature.

    Features that share a transformation share a branch (column-wise operations, so the result is the
    same as one branch per feature) because every branch costs ~1 ms of scikit-learn overhead per
    call: 19 one-feature branches made a single-row prediction take ~24 ms, grouped it takes ~5 ms.
    """
    groups: dict[str, list] = {}
    for feature in features.model_inputs(include_sensitive):
        kind = feature.effective_transformation
        if kind == "one_hot" and not feature.allowed_values:
            kind = "one_hot_learned"  # categories learned from the training data
        groups.setdefault(kind, []).append(feature)
    branches = []
    for kind, members in groups.items():
        columns = [feature.name for feature in members]
        if kind in {"one_hot", "one_hot_learned"}:
            categories = "auto"
            if kind == "one_hot":
                categories = [
                    [*f.allowed_values, MISSING_CATEGORY] if f.nullable else list(f.allowed_values)
                    for f in members
                ]
            branch = Pipeline(
                [
                    ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                    ("encode", OneHotEncoder(categories=categories, handle_unknown="ignore")),
                ]
            )
        elif kind == "passthrough":
            branch = Pipeline([("impute", SimpleImputer(strategy="median"))])
        else:
            branch = Pipeline(_numeric_steps(kind))
        branches.append((kind, branch, columns))
    return ColumnTransformer(
        branches, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False
    )


def build_estimator(model_type: str, hyperparameters: dict[str, Any], seed: int):
    if model_type == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(random_state=seed, **hyperparameters)
    if model_type == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=seed, **hyperparameters)
    raise ValueError(f"unknown model.type {model_type!r}: use logistic_regression or hist_gradient_boosting")


def build_pipeline(
    features: FeatureSet,
    model_type: str,
    hyperparameters: dict[str, Any],
    seed: int,
    include_sensitive: bool = False,
) -> Pipeline:
    return Pipeline(
        [
            ("transform", build_transformer(features, include_sensitive)),
            ("model", build_estimator(model_type, hyperparameters, seed)),
        ]
    )

"""The features stage: fit the one transformation object and write the feature tables.

The tables keep the typed input columns (not the transformed matrix): training fits
``transform.build_pipeline`` on them and serving receives the same columns, so the model artefact
carries its own transformation. Fairness and slice columns travel alongside, named so they are never
mistaken for model inputs (``group__<attribute>``).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.data import model_frame, protected_groups
from german_credit_scoring.errors import DataError
from german_credit_scoring.lifecycle.transform import build_transformer
from german_credit_scoring.settings import Settings

log = logging.getLogger(__name__)

GROUP_PREFIX = "group__"


def group_column(attribute: str) -> str:
    return f"{GROUP_PREFIX}{attribute}"


def feature_table(
    frame: pd.DataFrame, features: FeatureSet, settings: Settings, source: str = "data"
) -> pd.DataFrame:
    """Target, every declared feature, the evaluation slices and one group column per protected attribute."""
    target = settings.data.target
    wanted = [target, *features.names]
    wanted += [s for s in settings.evaluation.slices if s not in wanted]
    missing = [c for c in wanted if c not in frame.columns]
    missing += [p for p in settings.data.protected_names if p not in frame.columns and p not in missing]
    if missing:
        raise DataError(f"{source}: columns {missing} are missing (expected by the contract and params.yaml)")
    table = frame[wanted].copy()
    for attribute in settings.data.protected_attributes:
        table[group_column(attribute.name)] = protected_groups(frame, attribute)
    return table.reset_index(drop=True)


def fit_transformer(train: pd.DataFrame, features: FeatureSet, include_sensitive: bool):
    """The ColumnTransformer declared by the contract, fitted on the training split's model inputs."""
    transformer = build_transformer(features, include_sensitive)
    transformer.fit(model_frame(train, features, include_sensitive))
    return transformer


def feature_rows(features: FeatureSet, include_sensitive: bool) -> list[dict[str, Any]]:
    """One row per feature for the report: what it is, how it is transformed, who owns it."""
    inputs = {f.name for f in features.model_inputs(include_sensitive)}
    rows = []
    for feature in features.features:
        if feature.is_numeric:
            low = "–" if feature.min is None else f"{feature.min:g}"
            high = "–" if feature.max is None else f"{feature.max:g}"
            domain = f"{low} … {high}"
        else:
            values = feature.allowed_values or []
            domain = f"{len(values)} categories" if values else "any"
        rows.append(
            {
                "name": feature.name,
                "dtype": feature.dtype,
                "domain": domain,
                "transformation": feature.effective_transformation,
                "sensitive": feature.sensitive,
                "immutable": feature.immutable,
                "used": feature.name in inputs,
                "owner": feature.owner,
                "description": feature.description,
            }
        )
    return rows


def render_markdown(
    features: FeatureSet,
    settings: Settings,
    train: pd.DataFrame,
    test: pd.DataFrame,
    transformer=None,
) -> str:
    from german_credit_scoring.markdown import render

    include = settings.data.use_protected_as_features
    groups = []
    for attribute in settings.data.protected_attributes:
        column = group_column(attribute.name)
        counts = (
            train[column].value_counts().sort_index() if column in train.columns else pd.Series(dtype=int)
        )
        groups.append({"column": column, "counts": {str(k): int(v) for k, v in counts.items()}})
    width = None
    if transformer is not None:
        try:
            width = len(transformer.get_feature_names_out())
        except (AttributeError, ValueError):  # a transformer without output names
            width = None
    return render(
        "features.md.j2",
        rows=feature_rows(features, include),
        inputs=len(features.model_inputs(include)),
        width=width,
        train_rows=len(train),
        test_rows=len(test),
        groups=groups,
        slices=list(settings.evaluation.slices),
        use_protected=include,
    )

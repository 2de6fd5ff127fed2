"""The features stage: one fitted transformer, feature tables with fairness groups and slices, a report."""

from __future__ import annotations

import runpy
import shutil

import joblib
import numpy as np
import pytest

from german_credit_scoring import paths
from german_credit_scoring.data import model_frame
from german_credit_scoring.errors import DataError
from german_credit_scoring.lifecycle.featurize import (
    GROUP_PREFIX,
    feature_table,
    fit_transformer,
    group_column,
)
from german_credit_scoring.lifecycle.ingest import prepare


@pytest.fixture(scope="module")
def splits(sample_frame, settings, features):
    return prepare(sample_frame, settings, features, settings.data.path)


def test_table_has_target_features_slices_and_groups(splits, settings, features):
    table = feature_table(splits.train, features, settings)
    protected = settings.data.protected_names
    assert list(table.columns[: 1 + len(features.names)]) == [settings.data.target, *features.names]
    assert set(settings.evaluation.slices) <= set(table.columns)
    assert [c for c in table.columns if c.startswith(GROUP_PREFIX)] == [group_column(p) for p in protected]
    assert len(table) == len(splits.train)
    for attribute in settings.data.protected_attributes:
        groups = set(table[group_column(attribute.name)])
        if attribute.labels:  # banded numeric attribute: only the declared bands (or "missing")
            assert groups <= {*attribute.labels, "missing"}
        assert len(groups) >= 2


def test_missing_columns_are_named(splits, settings, features):
    dropped = features.names[0]
    with pytest.raises(DataError, match=rf"prepared\.parquet: columns \['{dropped}'\] are missing"):
        feature_table(splits.train.drop(columns=[dropped]), features, settings, "prepared.parquet")


def test_transformer_sees_only_model_inputs(splits, settings, features):
    include = settings.data.use_protected_as_features
    transformer = fit_transformer(splits.train, features, include)
    inputs = {f.name for f in features.model_inputs(include)}
    assert set(transformer.feature_names_in_) == inputs
    matrix = transformer.transform(model_frame(splits.test, features, include))
    assert matrix.shape[0] == len(splits.test) and np.isfinite(matrix).all()
    if not include:
        sensitive = [f.name for f in features.features if f.sensitive]
        outputs = list(transformer.get_feature_names_out())
        assert not [o for o in outputs for name in sensitive if o == name or o.startswith(f"{name}_")]


def test_stage_writes_tables_transformer_and_report(root, settings, features, splits, tmp_path, monkeypatch):
    # given a project directory with the prepared splits
    for name in ("params.yaml", str(settings.features)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    paths.TRAIN.parent.mkdir(parents=True)
    splits.train.to_parquet(paths.TRAIN, index=False)
    splits.test.to_parquet(paths.TEST, index=False)
    # when the stage runs
    runpy.run_path(str(root / "pipelines/features.py"))["main"]()
    # then the tables, the fitted transformer and the report exist and agree
    import pandas as pd

    train = pd.read_parquet(paths.FEATURES_TRAIN)
    test = pd.read_parquet(paths.FEATURES_TEST)
    assert list(train.columns) == list(test.columns)
    assert len(train) == len(splits.train) and len(test) == len(splits.test)
    transformer = joblib.load(paths.TRANSFORMER)
    include = settings.data.use_protected_as_features
    assert transformer.transform(model_frame(test, features, include)).shape[0] == len(test)
    report = paths.FEATURES_MD.read_text()
    header = "| Feature | Type | Domain | Transformation | Sensitive | Immutable (never a hint) | Used by the model |"
    assert header in report
    for feature in features.features:
        # each feature's row says whether it is sensitive and whether a hint may change it
        row = next(line for line in report.splitlines() if line.startswith(f"| `{feature.name}` |"))
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert cells[4:6] == ["yes" if feature.sensitive else "no", "yes" if feature.immutable else "no"]
    assert not list(tmp_path.rglob(".*.tmp"))  # atomic writes left nothing behind

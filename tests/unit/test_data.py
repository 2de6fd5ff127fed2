"""Reading, typing, splitting and grouping data: pure functions, any column names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from german_credit_scoring.contract import FeatureDefinition, FeatureSet
from german_credit_scoring.data import (
    assign_split,
    cast_to_contract,
    check_entity_key,
    model_frame,
    protected_groups,
    read_table,
)
from german_credit_scoring.errors import DataError
from german_credit_scoring.settings import ProtectedAttribute

CONTRACT = FeatureSet(
    features=[
        FeatureDefinition(name="tenure", dtype="int", min=0, max=100),
        FeatureDefinition(name="plan", dtype="category", allowed_values=["a", "b"]),
        FeatureDefinition(name="gender", dtype="category", allowed_values=["f", "m"], sensitive=True),
    ]
)


def test_read_csv_and_parquet_alike(tmp_path):
    frame = pd.DataFrame({"tenure": [1, 2], "plan": ["a", "b"]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    from_csv = read_table(tmp_path / "d.csv")
    from_parquet = read_table(tmp_path / "d.parquet")
    assert list(from_csv.columns) == list(from_parquet.columns) == ["tenure", "plan"]
    assert from_csv["tenure"].tolist() == from_parquet["tenure"].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "data file not found"),
        ("empty.csv", "", "the file is empty"),
        ("data.xlsx", "x", "cannot tell the format"),
        ("broken.parquet", "not parquet", "cannot be read as parquet"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as error:
        read_table(path)
    assert name in str(error.value) and message in str(error.value)


def test_cast_keeps_uncastable_columns_and_reports_them():
    frame = pd.DataFrame({"tenure": ["1", "x"], "plan": ["a", "b"], "churn": ["yes", "no"]})
    typed, problems = cast_to_contract(frame, CONTRACT, target="churn")
    assert problems and "tenure" in problems[0] and "'x'" in problems[0]
    assert typed["tenure"].tolist() == ["1", "x"]  # left for validation to reject by name


def test_cast_types_declared_columns():
    frame = pd.DataFrame({"tenure": ["1", "2"], "plan": ["a", None], "churn": ["yes", "no"]})
    typed, problems = cast_to_contract(frame, CONTRACT, target="churn")
    assert problems == []
    assert typed["tenure"].dtype == np.int64
    assert typed["plan"].tolist() == ["a", None]


def test_duplicate_entity_keys_are_rejected_with_examples():
    frame = pd.DataFrame({"customer_id": [1, 2, 2, 3, 3]})
    with pytest.raises(DataError, match=r"entity key 'customer_id' must be unique; 2 values repeat"):
        check_entity_key(frame, "customer_id", "x.csv")
    check_entity_key(frame.drop_duplicates(), "customer_id", "x.csv")
    check_entity_key(frame, None, "x.csv")


def test_split_is_deterministic_and_stratified():
    labels = pd.Series(["yes"] * 300 + ["no"] * 700)
    frame = pd.DataFrame({"churn": labels})
    first = assign_split(frame, "churn", test_size=0.2, seed=7, stratify=True)
    second = assign_split(frame, "churn", test_size=0.2, seed=7, stratify=True)
    assert first.equals(second)
    test_labels = labels[first == "test"]
    assert len(test_labels) == 200 and (test_labels == "yes").sum() == 60
    other_seed = assign_split(frame, "churn", test_size=0.2, seed=8, stratify=True)
    assert not first.equals(other_seed)


def test_split_survives_a_single_class_target():
    frame = pd.DataFrame({"churn": ["yes"] * 10})
    split = assign_split(frame, "churn", test_size=0.3, seed=1, stratify=True)
    assert (split == "test").sum() == 3


def test_numeric_protected_attribute_is_banded():
    frame = pd.DataFrame({"age_years": [18, 24.9, 25, 70, None]})
    groups = protected_groups(
        frame, ProtectedAttribute(name="age_years", bins=[25], labels=["young", "adult"])
    )
    assert groups.tolist() == ["young", "young", "adult", "adult", "missing"]
    default_labels = protected_groups(frame, ProtectedAttribute(name="age_years", bins=[25, 65]))
    assert default_labels.tolist() == ["<25", "<25", "25-65", ">=65", "missing"]


def test_model_frame_excludes_sensitive_unless_asked():
    frame = pd.DataFrame({"tenure": [1], "plan": ["a"], "gender": ["f"], "churn": ["no"]})
    assert list(model_frame(frame, CONTRACT).columns) == ["tenure", "plan"]
    assert list(model_frame(frame, CONTRACT, include_sensitive=True).columns) == ["tenure", "plan", "gender"]
    with pytest.raises(DataError, match="plan"):
        model_frame(frame.drop(columns="plan"), CONTRACT)

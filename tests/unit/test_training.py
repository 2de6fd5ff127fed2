"""Training gives one deterministic pipeline that equals fitting transformer and model together."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from german_credit_scoring.data import assign_split, cast_to_contract
from german_credit_scoring.errors import DataError
from german_credit_scoring.featurize import fit_transformer
from german_credit_scoring.settings import parse_settings
from german_credit_scoring.training import (
    fit,
    model_version,
    negative_label_of,
    serialise,
    train_metrics,
    training_data,
)
from german_credit_scoring.transform import build_estimator


@pytest.fixture(scope="module")
def train_frame(settings, features, sample_frame):
    typed, _ = cast_to_contract(sample_frame, features, settings.data.target)
    split = assign_split(typed, settings.data.target, 0.25, 1, True)
    return typed[split == "train"].reset_index(drop=True)


@pytest.mark.parametrize("model_type", ["logistic_regression", "hist_gradient_boosting"])
def test_two_step_fit_equals_one_pipeline(settings, features, train_frame, model_type):
    raw = settings.model_dump(mode="json")
    raw["model"]["type"] = model_type
    chosen = parse_settings(raw)
    transformer = fit_transformer(train_frame, features, False)
    pipeline = fit(transformer, train_frame, features, chosen)
    inputs, labels = training_data(train_frame, features, chosen)
    reference = Pipeline(
        [
            ("transform", clone(transformer)),
            ("model", build_estimator(model_type, chosen.model.hyperparameters, chosen.model.seed)),
        ]
    ).fit(inputs, labels)
    np.testing.assert_allclose(pipeline.predict_proba(inputs), reference.predict_proba(inputs))
    assert train_metrics(pipeline, train_frame, features, chosen)["roc_auc"] > 0.7


def test_training_is_deterministic(settings, features, train_frame):
    first = serialise(fit(fit_transformer(train_frame, features, False), train_frame, features, settings))
    second = serialise(fit(fit_transformer(train_frame, features, False), train_frame, features, settings))
    assert model_version(first) == model_version(second)


def test_sensitive_attributes_are_not_model_inputs(settings, features, train_frame):
    inputs, _ = training_data(train_frame, features, settings)
    assert not set(inputs.columns) & set(settings.data.protected_names)


def test_single_class_target_is_refused(settings, features, train_frame):
    frame = train_frame.copy()
    frame[settings.data.target] = settings.data.positive_label
    with pytest.raises(DataError, match="needs both"):
        training_data(frame, features, settings)


def test_negative_label_is_the_other_class(settings, train_frame):
    negative = negative_label_of(train_frame[settings.data.target], settings.data.positive_label)
    assert negative != settings.data.positive_label
    assert negative in set(train_frame[settings.data.target])

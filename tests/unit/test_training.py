"""Training gives one deterministic pipeline that equals fitting transformer and model together."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from german_credit_scoring.data import assign_split, cast_to_contract
from german_credit_scoring.errors import DataError
from german_credit_scoring.lifecycle.featurize import fit_transformer
from german_credit_scoring.lifecycle.training import (
    data_hashes,
    fit,
    git_state,
    metadata,
    model_version,
    negative_label_of,
    run_params,
    serialise,
    train_metrics,
    training_data,
)
from german_credit_scoring.lifecycle.transform import build_estimator
from german_credit_scoring.settings import parse_settings


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


def test_data_hashes_pair_each_file_with_its_dvc_lock_entry(tmp_path):
    # given an input file and a dvc.lock that pinned it as one stage's output and another's dependency
    data = tmp_path / "train.parquet"
    data.write_bytes(b"rows")
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n"
        f"  features:\n    outs:\n    - path: {data.as_posix()}\n      md5: pinned-by-dvc\n"
        f"  train:\n    deps:\n    - path: {data.as_posix()}\n      md5: pinned-by-dvc\n"
        "    - path: unrelated.csv\n      md5: other\n"
    )
    # when the hashes are taken
    hashes = data_hashes([data, tmp_path / "absent.joblib"], lock)
    # then the file's own md5 and DVC's record are both there, and nothing else
    assert hashes == {
        data.as_posix(): hashlib.md5(b"rows").hexdigest(),
        f"dvc.lock:{data.as_posix()}": "pinned-by-dvc",
    }


def test_data_hashes_without_dvc_lock_are_file_hashes_only(tmp_path):
    data = tmp_path / "train.parquet"
    data.write_bytes(b"rows")
    assert data_hashes([data], tmp_path / "dvc.lock") == {data.as_posix(): hashlib.md5(b"rows").hexdigest()}


def test_git_state_outside_a_repository_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_state(tmp_path) == {"git_commit": "unknown", "git_dirty": None}


def test_run_params_hold_the_chosen_model_and_the_resolved_threshold(settings):
    params = run_params(settings)["model"]
    assert params["type"] == settings.model.type
    assert params[settings.model.type] == settings.model.hyperparameters
    assert params["decision_threshold"] == settings.decision_threshold
    unused = {"logistic_regression", "hist_gradient_boosting"} - {settings.model.type}
    assert not unused & set(params)


def test_metadata_describes_the_model(settings, features, train_frame):
    pipeline = fit(fit_transformer(train_frame, features, False), train_frame, features, settings)
    blob = serialise(pipeline)
    meta = metadata(
        settings,
        features,
        model_version(blob),
        len(blob),
        "good",
        {"x": "1"},
        {"roc_auc": 0.8},
    )
    assert meta["version"] == hashlib.sha256(blob).hexdigest()[:12]
    assert meta["size_bytes"] == len(blob)
    assert meta["threshold"] == settings.decision_threshold
    assert meta["classes"] == ["good", settings.data.positive_label]
    assert not set(meta["features"]) & set(meta["sensitive_features"])
    # run facts (time, commit, MLflow run) stay out of the DVC output: see runs.py
    assert not {"trained_at", "git_commit", "git_dirty", "mlflow"} & set(meta)

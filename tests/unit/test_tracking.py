"""A real MLflow SQLite store: the run carries params, metrics, tags and the model; aliases, not stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from german_credit_scoring.lifecycle import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture(scope="module")
def tiny_model():
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [1.0, 0.0, 1.0, 0.0]})
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, [0, 0, 1, 1]), frame


def test_run_is_logged_and_registered_with_alias(store, tiny_model, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    pipeline, frame = tiny_model
    run = tracking.log_training_run(
        experiment="demo",
        pipeline=pipeline,
        params={"model": {"type": "lr", "C": 1.0}},
        metrics={"train_roc_auc": 0.9},
        tags={"model_version": "abc123", "git_commit": "deadbeef"},
        input_example=frame.head(2),
    )
    mlflow.set_tracking_uri(store)
    logged = MlflowClient().get_run(run["run_id"])
    assert logged.data.params["model.C"] == "1.0"
    assert logged.data.metrics["train_roc_auc"] == 0.9
    assert logged.data.tags["model_version"] == "abc123"
    loaded = mlflow.sklearn.load_model(run["model_uri"])
    assert loaded.predict_proba(frame).shape == (4, 2)
    assert run["run_url"] is None  # an embedded store has no web page
    requirements = mlflow.pyfunc.get_model_dependencies(run["model_uri"])
    pins = set(Path(requirements).read_text().split())
    assert set(tracking.pip_requirements()) <= pins
    assert any(pin.startswith("skops==") for pin in pins)  # the model is stored in skops format

    version = tracking.register(run["model_uri"], "demo-model", ["challenger"], {"model_version": "abc123"})
    by_alias = MlflowClient().get_model_version_by_alias("demo-model", "challenger")
    assert str(by_alias.version) == version
    assert by_alias.tags["model_version"] == "abc123"

    # promoting the same model adds an alias to the same version, never a duplicate version
    assert (
        tracking.register(run["model_uri"], "demo-model", ["champion"], {"model_version": "abc123"})
        == version
    )
    champion = MlflowClient().get_model_version_by_alias("demo-model", "champion")
    assert str(champion.version) == version
    assert len(MlflowClient().search_model_versions("name = 'demo-model'")) == 1


def test_register_cli_explains_a_missing_model(store, tmp_path, capsys):
    assert tracking.register_cli(["--model-dir", str(tmp_path / "nothing")]) == 2
    assert "no model metadata" in capsys.readouterr().out


def test_register_cli_requires_a_server_when_asked(monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.register_cli(["--require-server"]) == 2
    assert "MLFLOW_TRACKING_URI is not set" in capsys.readouterr().out


def test_credentials_never_reach_metadata():
    assert tracking.redact("https://user:secret@mlflow.example/") == "https://***@mlflow.example/"
    assert json.dumps(tracking.redact("sqlite:///mlflow.db")) == '"sqlite:///mlflow.db"'


def test_run_url_points_at_the_server_without_credentials():
    url = tracking.run_url("https://user:secret@mlflow.example/", "3", "abc")
    assert url == "https://mlflow.example/#/experiments/3/runs/abc"
    assert tracking.run_url("sqlite:///mlflow.db", "3", "abc") is None

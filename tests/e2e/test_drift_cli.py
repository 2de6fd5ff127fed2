"""`mlops simulate-drift` -> prediction logs -> `mlops drift` on a copy of the project: verdicts, exit codes
(0 no drift / insufficient data, 1 drift) and both reports, on columns from the project's own contract.
Bad log lines: tests/e2e/test_drift_bad_input.py."""

from __future__ import annotations

import contextlib
import json
import sys

import joblib
import pandas as pd
import pytest

from tests.e2e.helpers import copy_project, dvc, run

pytestmark = pytest.mark.e2e

RUNTIME = (
    "models/",
    "reports/",
    "metrics/",
    "logs/",
    "plots/",
    "data/prepared/",
    "data/features/",
    "data/reference/",
    "data/predictions/",
    "dvc.lock",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A clean copy; `dvc repro drift` runs ingest for the reference and, with no logs yet, says so."""
    project = copy_project(tmp_path_factory.mktemp("drift"), exclude_prefixes=RUNTIME)
    first = dvc(project, "repro", "drift")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return project


@pytest.fixture(scope="module")
def model(project):
    """A candidate model as training writes it: one fitted scikit-learn pipeline."""
    from german_credit_scoring.contract import load_features
    from german_credit_scoring.data import model_frame
    from german_credit_scoring.lifecycle.transform import build_pipeline
    from german_credit_scoring.settings import load_settings

    settings = load_settings(project / "params.yaml")
    features = load_features(project / settings.features)
    train = pd.read_parquet(project / "data/prepared/train.parquet")
    pipeline = build_pipeline(
        features, settings.model.type, settings.model.hyperparameters, settings.model.seed
    )
    pipeline.fit(model_frame(train, features), train[settings.data.target])
    path = project / "models/candidate/model.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, path)
    return path


@pytest.fixture(scope="module")
def contract(project):
    """Columns from the copy's own contract, most distinct values first (the sample's names mean
    nothing to another project's data): (numeric model inputs, categorical model inputs)."""
    from german_credit_scoring.contract import load_features
    from german_credit_scoring.settings import load_settings

    features = load_features(project / load_settings(project / "params.yaml").features)
    train = pd.read_parquet(project / "data/prepared/train.parquet")

    def by_values(numeric: bool) -> list[str]:
        names = [
            f.name for f in features.model_inputs() if f.is_numeric == numeric and train[f.name].notna().any()
        ]
        return sorted(names, key=lambda name: -train[name].nunique())

    return by_values(True), by_values(False)


def covariate_columns(contract) -> list[str]:
    """Two columns to shift: a numeric and a categorical one, or two numeric ones if that is all there is."""
    numeric, categorical = contract
    return (numeric[:1] + categorical[:1]) if categorical else numeric[:2]


REFERENCE = "data/reference/reference.parquet"  # what `mlops drift` compares with (the ingest stage's)


def mlops(project, *args):
    return run(project, sys.executable, "-m", "german_credit_scoring.cli", *args)


def fresh_logs(project, *batches):
    """Replace logs/predictions with simulated batches: (kind, rows, extra args...).

    `mlops simulate-drift` runs in this process (in the project's folder): it only makes the test's
    input, and a process of its own per batch would cost its imports again (about 5 s each)."""
    from german_credit_scoring.monitoring.simulate import simulate_cli

    logs = project / "logs/predictions"
    if logs.exists():
        for path in logs.iterdir():
            path.unlink()
    for i, (kind, rows, *extra) in enumerate(batches):
        with contextlib.chdir(project):
            code = simulate_cli(
                [
                    "--kind",
                    kind,
                    "--rows",
                    str(rows),
                    "--seed",
                    str(i),
                    "--output",
                    f"logs/predictions/batch-{i}.jsonl",
                    # batches that keep the inputs resample the drift reference itself: the held-out
                    # split's own sampling noise (a few rows a category on a high-cardinality column)
                    # is not drift
                    *(("--input", REFERENCE) if kind in ("none", "concept") else ()),
                    *extra,
                ]
            )
        assert code == 0, (kind, rows, extra)


def result(project):
    return json.loads((project / "reports/drift.json").read_text())


def test_no_logs_yet_is_insufficient_data_not_a_failure(project):
    data = result(project)
    assert data["verdict"] == "insufficient_data"
    assert data["current_rows"] == 0
    assert "drift.min_rows" in data["message"]
    assert "Insufficient data" in (project / "reports/drift.md").read_text()


def test_no_drift_logs_exit_0_with_logged_probabilities(project, model):
    fresh_logs(project, ("none", 1500), ("none", 1500))
    out = mlops(project, "drift")
    assert out.returncode == 0, out.stdout + out.stderr
    data = result(project)
    assert data["verdict"] == "no_drift"
    assert data["current_rows"] == 3000 and data["current"]["file_count"] == 2
    assert data["prediction"]["current_source"] == "logged probability"
    assert data["model"].endswith("models/candidate/model.joblib")


def test_covariate_drift_exits_1_and_names_the_features(project, model, contract):
    shifted = covariate_columns(contract)
    fresh_logs(project, ("covariate", 3000, "--features", ",".join(shifted)))
    out = mlops(project, "drift")
    assert out.returncode == 1, out.stdout + out.stderr
    data = result(project)
    assert data["verdict"] == "drift"
    assert sorted(data["drifted_features"]) == sorted(shifted)
    report = (project / "reports/drift.md").read_text()
    assert "❌ Drift detected" in report and f"`{shifted[0]}`" in report
    assert "http" not in report


def test_new_categories_are_drift_named_in_both_reports(project, model, contract):
    numeric, categorical = contract
    # new categories where the data has categories; a shifted number where it has none
    kind, column = ("new_categories", categorical[0]) if categorical else ("covariate", numeric[0])
    fresh_logs(project, (kind, 3000, "--features", column))
    (project / "reports/drift.json").unlink()
    out = mlops(project, "drift")
    assert out.returncode == 1, out.stdout + out.stderr
    data = result(project)
    assert data["verdict"] == "drift" and data["drifted_features"] == [column]
    assert f"`{column}`" in (project / "reports/drift.md").read_text()
    if categorical:
        assert f"new_{column}_" in json.dumps(data["features"])


def test_concept_drift_from_labelled_logs(project, model):
    fresh_logs(project, ("concept", 4000))
    out = mlops(project, "drift")
    assert out.returncode == 1, out.stdout + out.stderr
    data = result(project)
    assert data["drifted_features"] == []
    assert data["performance"]["drifted"]
    assert data["performance"]["baseline"].endswith("test.parquet")
    assert "concept drift" in (project / "reports/drift.md").read_text()


def test_too_few_rows_is_insufficient_data_even_if_shifted(project, model):
    fresh_logs(project, ("covariate", 50, "--magnitude", "5"))
    out = mlops(project, "drift")
    assert out.returncode == 0
    assert result(project)["verdict"] == "insufficient_data"


def test_explicit_csv_source_and_no_model(project, tmp_path):
    reference = pd.read_parquet(project / REFERENCE)  # the population itself: no drift by construction
    reference.sample(1000, replace=True, random_state=0).to_csv(project / "current.csv", index=False)
    out = mlops(
        project,
        "drift",
        "--current",
        "current.csv",
        "--no-model",
        "--json",
        "out/d.json",
        "--markdown",
        "out/d.md",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads((project / "out/d.json").read_text())
    assert data["verdict"] == "no_drift" and data["prediction"] is None and data["model"] is None

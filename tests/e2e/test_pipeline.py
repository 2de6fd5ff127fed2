"""`dvc repro` on a fresh copy of the project: every stage runs, every output is there, and bad data
stops the run at validation with a clear message while the last good model and metrics survive."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tests.e2e.helpers import digest, dvc

pytestmark = pytest.mark.e2e

STAGES = ["ingest", "validate", "features", "train", "evaluate", "fairness", "gate"]
OUTPUTS = [
    "data/prepared/train.parquet",
    "data/prepared/test.parquet",
    "data/reference/reference.parquet",
    "reports/ingest.json",
    "reports/validation.json",
    "reports/validation.md",
    "data/features/train.parquet",
    "data/features/test.parquet",
    "models/transformer.joblib",
    "reports/features.md",
    "models/candidate/model.joblib",
    "models/candidate/model.json",
    "metrics/train.json",
    "metrics/evaluate.json",
    "data/predictions/test.parquet",
    "reports/evaluate.md",
    "plots/roc.json",
    "plots/precision_recall.json",
    "plots/calibration.json",
    "plots/confusion.json",
    "metrics/fairness.json",
    "reports/fairness.md",
    "metrics/gate.json",
    "reports/gate.md",
    "models/approved/model.joblib",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory, clone_reproduced):
    """A copy of the project after one full `dvc repro` (the session's shared run, see conftest.py),
    under a policy every model meets."""
    return clone_reproduced(tmp_path_factory.mktemp("pipeline"))


def test_every_stage_runs_and_writes_its_outputs(project):
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert set(STAGES) <= set(lock["stages"])
    missing = [name for name in OUTPUTS if not (project / name).exists()]
    assert missing == []


def test_outputs_hold_real_results(project, settings):
    metrics = json.loads((project / "metrics/evaluate.json").read_text())["overall"]
    assert 0.5 < metrics["roc_auc"] <= 1
    assert metrics["expected_cost"] >= 0
    gate = json.loads((project / "metrics/gate.json").read_text())
    assert gate["passed"] is True and gate["checks"]
    fairness = json.loads((project / "metrics/fairness.json").read_text())
    assert set(settings.data.protected_names) <= set(fairness)
    validation = json.loads((project / "reports/validation.json").read_text())
    assert validation["success"] is True


def test_second_repro_is_a_no_op(project):
    result = dvc(project, "repro", "gate")
    assert result.returncode == 0
    assert "Running stage" not in result.stdout + result.stderr


def test_metrics_compare_with_git(project):
    result = dvc(project, "metrics", "show", "--json")
    assert result.returncode == 0, result.stderr
    assert "roc_auc" in result.stdout


def _bad_variants(frame: pd.DataFrame, numeric: str, category: str | None):
    wrong_type = frame.astype({numeric: object})
    wrong_type.loc[wrong_type.index[:5], numeric] = "unknown"
    renamed = category or numeric
    return {
        "renamed_column": (frame.rename(columns={renamed: renamed + "_v2"}), renamed),
        "no_rows": (frame.iloc[0:0], None),
        "wrong_type": (wrong_type, numeric),
    }


def test_bad_data_stops_at_validation_and_keeps_the_last_good_model(project, settings, features):
    from german_credit_scoring.data import read_table

    frame = read_table(project / settings.data.path)
    numeric = features.numeric[0].name
    category = features.categorical[0].name if features.categorical else None
    params_path = project / "params.yaml"
    original_params = params_path.read_text()
    kept = {name: digest(project / name) for name in ("models/approved", "metrics/evaluate.json")}
    failures = {}
    try:
        # Every kind of bad input's message is checked stage-side by the unit tests (test_validation.py,
        # both engines); here, the pipeline's wiring for three, each a `dvc repro` of its own: a column
        # gone (a category when there is one), no rows at all, text in a numeric column.
        for case, (bad, column) in _bad_variants(frame, numeric, category).items():
            bad_path = project / f"data/raw/{case}.csv"
            bad.to_csv(bad_path, index=False)
            params = yaml.safe_load(original_params)
            params["data"]["path"] = f"data/raw/{case}.csv"
            params["data"]["format"] = "csv"  # the bad variants are written as CSV whatever the data's format
            params_path.write_text(yaml.safe_dump(params, sort_keys=False))
            result = dvc(project, "repro", "gate")
            output = result.stdout + result.stderr
            report = (project / "reports/validation.md").read_text()
            if result.returncode == 0 or "Running stage 'train'" in output:
                failures[case] = "the pipeline went past validation"
            elif f"{case}.csv" not in output + report:
                failures[case] = "the message does not name the file"
            elif column is not None and column not in output + report:
                failures[case] = f"the message does not name column {column!r}"
    finally:
        params_path.write_text(original_params)
    assert failures == {}
    assert {name: digest(project / name) for name in kept} == kept

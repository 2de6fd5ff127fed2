"""`mlops compare` on a real pipeline run: main's released model is restored from the DVC cache by the
hash main's dvc.lock records, scored beside a pull request's candidate on the same test rows, and the
comparison reaches the pull-request comment. Without a production model it says so and succeeds."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from tests.e2e.helpers import dvc, git, run

pytestmark = pytest.mark.e2e


def mlops(project, *args):
    return run(project, sys.executable, "-m", "german_credit_scoring.cli", *args)


@pytest.fixture(scope="module")
def branch(tmp_path_factory, clone_reproduced):
    """main: one full run committed (its dvc.lock pins models/approved); a branch with another C, rerun."""
    project = clone_reproduced(tmp_path_factory.mktemp("compare"))
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "main's release")
    git(project, "checkout", "-q", "-b", "candidate")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["model"]["logistic_regression"]["C"] = 0.01  # a visibly different candidate
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = dvc(project, "repro", "fairness")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project


def test_production_is_restored_from_the_cache_and_scored_on_the_same_rows(branch):
    result = mlops(branch, "compare", "--production-ref", "main", "--variants", "reweighing")
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((branch / "reports/compare.json").read_text())
    roles = {column["role"]: column for column in record["columns"]}
    assert set(roles) == {"candidate", "production", "variant"}
    assert (branch / "models/production/model.joblib").is_file()
    # production is main's approved model, scored now: its version is main's, its rows the candidate's
    approved = json.loads((branch / "models/production/model.json").read_text())
    assert roles["production"]["version"] == approved["version"] != roles["candidate"]["version"]
    assert roles["production"]["overall"]["n"] == roles["candidate"]["overall"]["n"] == record["rows"]
    candidate_metrics = json.loads((branch / "metrics/evaluate.json").read_text())["overall"]
    assert roles["candidate"]["overall"]["roc_auc"] == pytest.approx(candidate_metrics["roc_auc"])
    # the comparison is a run record: not in dvc.lock, ignored by git
    assert "reports/compare" not in (branch / "dvc.lock").read_text()
    assert git(branch, "status", "--porcelain", "--", "reports/compare.md", "models/production") == ""
    # and it reaches the pull-request comment
    report = mlops(branch, "report", "--stage", "compare", "--output", "reports/comment-compare.md")
    assert report.returncode == 0, report.stderr
    comment = (branch / "reports/comment-compare.md").read_text()
    assert "Candidate beside production" in comment and "| roc_auc |" in comment and "reweighing" in comment


def test_without_a_production_model_the_comparison_says_so_and_succeeds(branch, tmp_path):
    result = mlops(
        branch,
        "compare",
        "--production",
        str(tmp_path / "absent"),
        "--variants",
        "--output-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (tmp_path / "compare.md").read_text()
    assert "No production model available" in text and "absent/model.joblib not found" in text

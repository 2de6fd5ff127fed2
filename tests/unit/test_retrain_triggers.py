"""mlops retrain-pr --triggers: a fired trigger opens the retraining PR and its evidence is in the body."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from german_credit_scoring.gitops.github import ConfigurationError, retrain_body, retrain_decision
from german_credit_scoring.monitoring.triggers import evaluate
from german_credit_scoring.settings import TriggerSettings


def _write(tmp_path, name, drift):
    report = evaluate(TriggerSettings(), drift=drift, now=datetime(2026, 6, 1, tzinfo=UTC))
    path = tmp_path / name
    path.write_text(report.model_dump_json())
    return path


def test_a_fired_trigger_opens_the_pr_even_without_a_drift_verdict(tmp_path):
    fired = _write(tmp_path, "fired.json", {"verdict": "drift", "drifted_features": ["f1"]})
    quiet = _write(tmp_path, "quiet.json", {"verdict": "no_drift"})
    assert retrain_decision("no_drift", None) == (False, "", [])
    assert retrain_decision("drift", None)[0] is True
    opened, markdown, names = retrain_decision("no_drift", fired)
    assert opened and names == ["feature_drift"] and "f1" in markdown
    assert retrain_decision("no_drift", quiet)[0] is False
    body = retrain_body("drift report", [], "dispatched", markdown)
    assert "Retraining triggered by: feature_drift" in body and "drift report" in body
    assert "Retraining triggered by" not in retrain_body("drift report", [], "dispatched")


def test_a_missing_or_broken_trigger_file_is_bad_input(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read"):
        retrain_decision("drift", tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigurationError, match="not a trigger report"):
        retrain_decision("drift", tmp_path / "bad.json")

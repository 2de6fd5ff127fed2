"""The model card: every fact comes from the pipeline's outputs and governance files, nothing typed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from german_credit_scoring.governance import audit, card
from german_credit_scoring.governance.policy import load_tiers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    """The committed pipeline outputs and governance files in a scratch project."""
    for name in ("metrics/evaluate.json", "metrics/fairness.json", "reports/ingest.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "governance", tmp_path / "governance")
    (tmp_path / "governance/audit.jsonl").unlink(missing_ok=True)
    (tmp_path / "models/candidate").mkdir(parents=True)
    meta = {"version": "v42", "model_type": "logistic_regression", "threshold": 0.1667, "seed": 1,
            "features": ["a", "b"], "data_hashes": {"data/raw/x.csv": "0f" * 16}}  # fmt: skip
    (tmp_path / "models/candidate/model.json").write_text(json.dumps(meta))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def gate_result(passed: bool = True) -> dict:
    checks = [{"name": "roc_auc", "kind": "metric", "passed": passed, "status": "pass" if passed else "fail"}]
    return {"passed": passed, "model_version": "v42", "mandatory": ["metric"], "checks": checks}


def test_card_shows_the_outputs_facts(outputs, settings):
    text = card.render_card(card.card_context(settings, gate_result()))
    evaluation = json.loads((outputs / "metrics/evaluate.json").read_text())
    ingest = json.loads((outputs / "reports/ingest.json").read_text())
    fairness = json.loads((outputs / "metrics/fairness.json").read_text())
    tier = load_tiers(outputs / "governance/tiers.yaml").policy(settings.project.risk_tier)
    assert "model `v42`" in text and f"every {tier.review_every_days} days" in text
    assert f"| roc_auc | {evaluation['overall']['roc_auc']:.4f} |" in text
    assert f"{ingest['rows']:,} (train {ingest['train_rows']:,}" in text
    for attribute, summary in fairness.items():
        assert f"| `{attribute}` | {summary['demographic_parity_difference']:.3f} |" in text
    for slice_name in evaluation["slices"]:
        assert f"| {slice_name} |" in text
    assert "`" + "0f" * 16 + "`" in text and "All checks passed." in text
    assert "Approvers: not yet known" in text  # the gate's card: approval comes after the gate


def test_card_names_the_approvers_recorded_at_merge(outputs, settings):
    trail = outputs / "governance/audit.jsonl"
    audit.append({"action": "promote", "model_version": "v42", "approvers": [{"login": "risk-ann"}]}, trail)
    text = card.render_card(card.card_context(settings, gate_result(), with_approvers=True))
    assert "Approved for production by risk-ann" in text


def test_card_text_keys_are_checked(outputs, settings):
    (outputs / "governance/card.yaml").write_text("intended_use: x\nintended_uses: y\n")
    with pytest.raises(card.SettingsError, match="unknown keys \\['intended_uses'\\]"):
        card.card_context(settings, gate_result())

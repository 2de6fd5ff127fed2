"""params.yaml becomes typed settings; every mistake names the key."""

from __future__ import annotations

import copy

import pytest
import yaml

from german_credit_scoring.errors import SettingsError
from german_credit_scoring.settings import load_settings, parse_settings


@pytest.fixture
def raw(root):
    return yaml.safe_load((root / "params.yaml").read_text())


def test_project_params_load(settings, raw):
    assert settings.data.target == raw["data"]["target"]
    assert settings.data.protected_names == [p["name"] for p in raw["data"]["protected_attributes"]]
    assert settings.data.target not in settings.data.protected_names


def test_cost_optimal_threshold_follows_cost_matrix(raw):
    # given a 5:1 cost of false negatives to false positives and no explicit threshold
    raw = copy.deepcopy(raw)
    raw["model"]["threshold"] = None
    raw["evaluation"]["cost"] = {"false_negative": 5, "false_positive": 1}
    # then the decision threshold is fp / (fp + fn)
    assert parse_settings(raw).decision_threshold == pytest.approx(1 / 6)
    raw["model"]["threshold"] = 0.3
    assert parse_settings(raw).decision_threshold == 0.3


def test_typo_in_a_key_is_named(raw):
    raw = copy.deepcopy(raw)
    raw["model"]["tpye"] = raw["model"].pop("type")
    with pytest.raises(SettingsError) as error:
        parse_settings(raw)
    assert "model.tpye" in str(error.value)


def test_wrong_value_is_named(raw):
    raw = copy.deepcopy(raw)
    raw["split"]["test_size"] = 1.5
    with pytest.raises(SettingsError, match="split.test_size"):
        parse_settings(raw)


def test_unknown_model_type_is_refused(raw):
    raw = copy.deepcopy(raw)
    raw["model"]["type"] = "random_forrest"
    with pytest.raises(SettingsError, match="model.type"):
        parse_settings(raw)


def test_target_cannot_be_protected(raw):
    raw = copy.deepcopy(raw)
    raw["data"]["protected_attributes"].append({"name": raw["data"]["target"]})
    with pytest.raises(SettingsError, match="cannot also be a protected attribute"):
        parse_settings(raw)


def test_bins_and_labels_must_agree(raw):
    raw = copy.deepcopy(raw)
    raw["data"]["protected_attributes"] = [{"name": "age", "bins": [25, 60], "labels": ["young", "old"]}]
    with pytest.raises(SettingsError, match="2 bins need 3 labels"):
        parse_settings(raw)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad)

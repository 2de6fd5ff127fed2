"""The feature definitions are a checked contract."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from german_credit_scoring.contract import FeatureDefinition, FeatureSet, dump_features, load_features
from german_credit_scoring.errors import ContractError


def test_project_contract_covers_every_data_column_but_the_target(features, sample_frame, settings):
    assert set(features.names) == set(sample_frame.columns) - {settings.data.target}
    assert {f.name for f in features.features if f.sensitive} == set(settings.data.protected_names)


def test_sensitive_features_stay_out_of_model_inputs(features):
    inputs = {f.name for f in features.model_inputs()}
    assert not inputs & {f.name for f in features.features if f.sensitive}
    assert {f.name for f in features.model_inputs(include_sensitive=True)} == set(features.names)


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"name": "x", "dtype": "category", "min": 1}, "allowed_values, not min/max"),
        ({"name": "x", "dtype": "int", "allowed_values": ["a"]}, "min/max, not allowed_values"),
        ({"name": "x", "dtype": "int", "min": 5, "max": 1}, "min 5.0 is above max 1.0"),
        ({"name": "x", "dtype": "float", "transformation": "one_hot"}, "one_hot is for categories"),
        ({"name": "x", "dtype": "text"}, "dtype"),
    ],
)
def test_inconsistent_definitions_are_refused(definition, message):
    with pytest.raises(ValidationError, match=message):
        FeatureDefinition(**definition)


def test_duplicate_names_are_refused():
    with pytest.raises(ValidationError, match="more than once"):
        FeatureSet(features=[FeatureDefinition(name="a", dtype="int")] * 2)


def test_round_trip_and_clear_file_errors(tmp_path, features):
    path = tmp_path / "features.yaml"
    dump_features(features, path)
    assert load_features(path) == features
    path.write_text("features:\n  - name: a\n    dtype: int\n    colour: red\n")
    with pytest.raises(ContractError, match=r"features\.0\.colour"):
        load_features(path)
    with pytest.raises(ContractError, match="not found"):
        load_features(tmp_path / "absent.yaml")

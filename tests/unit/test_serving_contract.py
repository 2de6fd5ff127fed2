"""The service's input contract is generated from the feature definitions, whatever the columns are called."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from german_credit_scoring.contract import load_features
from german_credit_scoring.lifecycle.scoring import Scorer, negative_label
from german_credit_scoring.lifecycle.serving_contract import (
    as_columns,
    as_feature_dict,
    as_json,
    build_record_model,
    field_attributes,
    validate_batch,
    validate_record,
)
from german_credit_scoring.monitoring.prediction_log import PredictionLog, make_rows, read_prediction_log

SYNTHETIC = {
    "features": [
        {"name": "tenure-years", "dtype": "float", "min": 0, "max": 40},
        {"name": "class", "dtype": "category", "allowed_values": ["a", "b", "c"]},
        {"name": "visits", "dtype": "int", "min": 1, "max": 10, "nullable": True},
        {"name": "region", "dtype": "category", "allowed_values": ["north", "south"], "sensitive": True},
    ]
}
GOOD = {"tenure-years": 3.5, "class": "b", "visits": 4}


@pytest.fixture()
def features(tmp_path):
    path = tmp_path / "features.yaml"
    path.write_text(yaml.safe_dump(SYNTHETIC), encoding="utf-8")
    return load_features(path)


@pytest.fixture()
def record_model(features):
    return build_record_model(features, include_sensitive=False)


def _fields(problems):
    return {(p["record"], p["field"]) for p in problems}


def test_a_good_record_passes_and_keeps_every_declared_feature(record_model):
    record, problems = validate_record(record_model, GOOD)
    assert problems == []
    assert as_feature_dict(record) == {**GOOD, "region": None}


def test_every_offending_field_is_named_at_once(record_model):
    # given a record with a missing field, a wrong type, an unknown category, a value out of range
    bad = {"tenure-years": 41, "class": "z", "visits": "4", "colour": "red"}
    record, problems = validate_record(record_model, bad)
    assert record is None
    assert {p["field"] for p in problems} == {"tenure-years", "class", "visits", "colour"}
    by_field = {p["field"]: p["type"] for p in problems}
    assert by_field["tenure-years"] == "less_than_equal"
    assert by_field["class"] == "literal_error"
    assert by_field["visits"] == "int_type"
    assert by_field["colour"] == "extra_forbidden"


def test_missing_required_field_and_strict_types(record_model):
    _, problems = validate_record(record_model, {"class": "a"})
    assert _fields(problems) == {(None, "tenure-years")}
    for wrong in (True, "3", float("nan"), None):
        _, problems = validate_record(record_model, {**GOOD, "tenure-years": wrong})
        assert _fields(problems) == {(None, "tenure-years")}, wrong
    _, problems = validate_record(record_model, {**GOOD, "visits": 2.5})
    assert _fields(problems) == {(None, "visits")}


def test_nullable_fields_may_be_null_or_absent(record_model):
    for record in ({**GOOD, "visits": None}, {k: v for k, v in GOOD.items() if k != "visits"}):
        assert validate_record(record_model, record)[1] == []


def test_sensitive_features_not_used_by_the_model_are_optional_but_validated(features, record_model):
    assert validate_record(record_model, {**GOOD, "region": "north"})[1] == []
    assert _fields(validate_record(record_model, {**GOOD, "region": "west"})[1]) == {(None, "region")}
    # when protected attributes are model inputs, they are required
    with_sensitive = build_record_model(features, include_sensitive=True)
    assert _fields(validate_record(with_sensitive, GOOD)[1]) == {(None, "region")}


def test_batch_errors_carry_the_record_index(record_model):
    batch = [GOOD, {**GOOD, "class": "z"}, GOOD, {"class": "a", "visits": 0}]
    records, problems = validate_batch(record_model, batch, max_batch_size=10)
    assert records is None
    assert _fields(problems) == {(1, "class"), (3, "tenure-years"), (3, "visits")}


def test_empty_and_oversized_batches_are_refused(record_model):
    assert validate_batch(record_model, [], max_batch_size=3)[1][0]["type"] == "too_short"
    assert validate_batch(record_model, [GOOD] * 4, max_batch_size=3)[1][0]["type"] == "too_long"
    records, problems = validate_batch(record_model, [GOOD] * 3, max_batch_size=3)
    assert problems == [] and len(records) == 3


def test_the_contract_follows_the_sample_feature_file(root, settings):
    # given the project's own features.yaml, every model input is required and named as declared
    features = load_features(root / settings.features)
    model = build_record_model(features, settings.data.use_protected_as_features)
    schema = model.model_json_schema(by_alias=True)
    inputs = [f.name for f in features.model_inputs(settings.data.use_protected_as_features)]
    assert sorted(schema["required"]) == sorted(f.name for f in features.model_inputs() if not f.nullable)
    assert set(inputs) <= set(schema["properties"])


class _Pipeline:
    """Stands in for the fitted pipeline: probability = first numeric input / 40."""

    def predict_proba(self, frame):
        import numpy as np

        p = frame.iloc[:, 0].to_numpy(dtype=float) / 40
        return np.column_stack([1 - p, p])


def test_scorer_applies_the_threshold_and_checks_the_model_inputs(features):
    scorer = Scorer(
        _Pipeline(), features, False, threshold=0.5, positive_label="yes", negative_label="no", version="7"
    )
    out = scorer.score([{**GOOD, "tenure-years": 30.0, "region": None}, {**GOOD, "region": None}])
    assert [o["decision"] for o in out] == ["yes", "no"]
    assert out[0]["probability"] == pytest.approx(0.75)
    scorer.check_model_inputs(["tenure-years", "class", "visits"])
    with pytest.raises(Exception, match="do not match"):
        scorer.check_model_inputs(["tenure-years", "class"])


def test_negative_label_comes_from_metadata_then_data():
    assert negative_label({"positive_label": "bad", "classes": ["good", "bad"]}) == "good"
    assert negative_label({"positive_label": "bad"}, ["bad", "good"]) == "good"
    assert negative_label({"positive_label": "bad"}) == "not_bad"


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_prediction_log_round_trip(tmp_path, fmt):
    sink = PredictionLog(tmp_path / "log", fmt)
    rows = make_rows("r1", "v1", [GOOD, GOOD], [{"probability": 0.2, "decision": "no"}] * 2)
    assert sink.append(rows) is True
    assert sink.append(make_rows("r2", "v1", [GOOD], [{"probability": 0.9, "decision": "yes"}]))
    frame = read_prediction_log(tmp_path / "log")
    assert sorted(frame["request_id"]) == ["r1", "r1", "r2"]
    assert set(frame.columns) >= {"timestamp", "model_version", "probability", "decision", "class"}
    if fmt == "jsonl":
        line = json.loads(next((tmp_path / "log").rglob("*.jsonl")).read_text().splitlines()[0])
        assert set(line) == {"request_id", "timestamp", "model_version", "inputs", "outputs"}
        assert set(line["outputs"]) == {"probability", "decision"}


def test_prediction_log_failure_is_counted_not_raised(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log directory should be")
    errors = []
    sink = PredictionLog(blocker, "jsonl", on_error=errors.append)
    ok = sink.append(make_rows("r", "v", [GOOD], [{"probability": 0.1, "decision": "no"}]))
    assert ok is False and len(errors) == 1


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_fast_request_log_writes_the_rows_make_rows_describes(tmp_path, record_model, fmt):
    # given validated records, one with a null optional feature, and a quote in the request id
    records = [record_model.model_validate(GOOD), record_model.model_validate({**GOOD, "visits": None})]
    probabilities, decisions = [0.25, 0.75], ["no", "yes"]
    # when the service's fast path writes them
    sink = PredictionLog(tmp_path / "log", fmt)
    assert sink.append_request(
        'r"1', "v1", "2024-01-01T00:00:00.000Z", as_json(records), probabilities, decisions
    )
    # then the rows are exactly the ones make_rows builds from the feature dicts
    expected = make_rows(
        'r"1',
        "v1",
        [as_feature_dict(r) for r in records],
        [{"probability": p, "decision": d} for p, d in zip(probabilities, decisions, strict=True)],
        "2024-01-01T00:00:00.000Z",
    )
    if fmt == "jsonl":
        lines = next((tmp_path / "log").rglob("*.jsonl")).read_text().splitlines()
        assert [json.loads(line) for line in lines] == expected
    frame = read_prediction_log(tmp_path / "log")
    assert list(frame["probability"]) == probabilities and list(frame["decision"]) == decisions
    assert list(frame["tenure-years"]) == [3.5, 3.5]


def test_fast_request_log_keeps_each_records_reasons(tmp_path, record_model):
    # given two records' further outputs as JSON objects: reasons, and none with the reason why
    records = [record_model.model_validate(GOOD), record_model.model_validate({**GOOD, "visits": 2})]
    reasons = [{"feature": "class", "value": "b", "contribution": 0.25, "phrase": "Class"}]
    extras = [
        {"reasons": reasons, "reasons_unavailable": None},
        {"reasons": [], "reasons_unavailable": "no explanation: because"},
    ]
    # when the service's fast path writes them, as JSON Lines and as Parquet, given as whole objects
    # or as (key, each record's value) members (the service's way)
    members = [(key, [json.dumps(extra[key]).encode() for extra in extras]) for key in extras[0]]
    for fmt in ("jsonl", "parquet", "jsonl-members", "parquet-members"):
        sink = PredictionLog(tmp_path / fmt, fmt.split("-")[0])
        outputs_json = [json.dumps(extra).encode() for extra in extras]
        if fmt.endswith("members"):
            written = sink.append_request(
                "r", "v", "t", as_json(records), [0.2, 0.9], ["no", "yes"], members=members
            )
        else:
            written = sink.append_request(
                "r", "v", "t", as_json(records), [0.2, 0.9], ["no", "yes"], outputs_json
            )
        assert written
        # then each row's outputs are its probability, decision and its own further outputs
        expected = make_rows(
            "r",
            "v",
            [as_feature_dict(r) for r in records],
            [
                {"probability": 0.2, "decision": "no", **extras[0]},
                {"probability": 0.9, "decision": "yes", **extras[1]},
            ],
            "t",
        )
        if fmt.startswith("jsonl"):
            lines = next((tmp_path / fmt).rglob("*.jsonl")).read_text().splitlines()
            assert [json.loads(line) for line in lines] == expected
        else:
            frame = read_prediction_log(tmp_path / fmt)
            assert list(frame["decision"]) == ["no", "yes"] and len(frame) == 2


def test_fast_request_log_refuses_a_non_finite_probability_without_raising(tmp_path, record_model):
    errors = []
    sink = PredictionLog(tmp_path / "log", "jsonl", on_error=errors.append)
    record = record_model.model_validate(GOOD)
    assert sink.append_request("r", "v", "t", as_json([record]), [float("nan")], ["no"]) is False
    assert len(errors) == 1 and not list((tmp_path / "log").glob("*.jsonl"))


def test_columns_of_validated_records_score_like_feature_dicts(features, record_model):
    scorer = Scorer(
        _Pipeline(), features, False, threshold=0.5, positive_label="yes", negative_label="no", version="7"
    )
    records = [record_model.model_validate({**GOOD, "tenure-years": v}) for v in (4.0, 30.0, 20)]
    columns = as_columns(records, field_attributes(record_model), scorer.input_names)
    assert columns == {"tenure-years": [4.0, 30.0, 20], "class": ["b"] * 3, "visits": [4] * 3}
    by_columns = scorer.column_probabilities(columns).tolist()
    by_dicts = [o["probability"] for o in scorer.score([as_feature_dict(r) for r in records])]
    assert by_columns == by_dicts == [0.1, 0.75, 0.5]
    assert scorer.decisions(by_columns) == ["no", "yes", "yes"]


def test_kubernetes_manifests_are_valid_and_wired_to_the_probes(root):
    manifests = sorted((root / "serving" / "k8s").glob("*.yaml"))
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in manifests}
    assert kinds >= {"Deployment", "Service", "HorizontalPodAutoscaler"}
    validator = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [str(validator), "--strict", *map(str, manifests)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    deployment = next(yaml.safe_load(p.read_text()) for p in manifests if "deployment" in p.name)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"

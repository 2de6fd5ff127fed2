"""`mlops score`: a data file scored with a model directory, each record with its reasons; bad rows named."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest

from german_credit_scoring import data
from german_credit_scoring.cli import COMMANDS
from german_credit_scoring.explain.batch import score_cli
from german_credit_scoring.explain.contributions import contributions
from german_credit_scoring.lifecycle import transform


def _model_dir(out, settings, features, sample_frame, model_type: str, hyperparameters: dict):
    frame = data.model_frame(sample_frame, features)
    labels = data.positive_indicator(sample_frame[settings.data.target], settings.data.positive_label)
    pipeline = transform.build_pipeline(features, model_type, hyperparameters, settings.model.seed).fit(
        frame, labels
    )
    joblib.dump(pipeline, out / "model.joblib")
    meta = {
        "version": "unit-1",
        "threshold": settings.decision_threshold,
        "positive_label": settings.data.positive_label,
        "target": settings.data.target,
        "features": list(frame.columns),
        "classes": sorted({str(v) for v in sample_frame[settings.data.target]}),
    }
    (out / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    return out, pipeline


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, settings, features, sample_frame):
    out = tmp_path_factory.mktemp("model")
    return _model_dir(
        out, settings, features, sample_frame, settings.model.type, settings.model.hyperparameters
    )


def _sample_file(sample_frame, tmp_path, rows: int = 30):
    """The project's first ``rows`` data rows, as a CSV file to score: ``(rows, path)``."""
    head = sample_frame.head(rows)
    source = tmp_path / "in.csv"
    head.to_csv(source, index=False)
    return head, source


def _run(root, monkeypatch, *args) -> int:
    monkeypatch.chdir(root)
    return score_cli(["--params", str(root / "params.yaml"), *args])


def test_scored_file_has_every_row_with_reasons(
    root, settings, features, sample_frame, model_dir, tmp_path, monkeypatch
):
    directory, pipeline = model_dir
    rows, source = _sample_file(sample_frame, tmp_path)
    out = tmp_path / "out.jsonl"
    assert (
        _run(root, monkeypatch, "--input", str(source), "--output", str(out), "--model", str(directory)) == 0
    )
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(scored) == len(rows)
    expected = pipeline.predict_proba(data.model_frame(rows, features))[:, 1]
    assert np.array_equal([r["probability"] for r in scored], expected)
    # columns that are not features (the target here) pass through untouched, in order
    assert [r[settings.data.target] for r in scored] == rows[settings.data.target].tolist()
    top_k = settings.serving.reasons_top_k
    sensitive = {f.name for f in features.features if f.sensitive}
    # each record's reasons: its top-k inputs that pushed its score towards its decision (a record
    # whose decision the baseline alone carries may have none; 1e-9: contributions are exact to 1e-6)
    frame = data.model_frame(rows, features)
    _, values = contributions(pipeline, frame)
    positive = str(settings.data.positive_label)
    for record, row in zip(scored, values, strict=True):
        assert record["reasons_unavailable"] is None
        signed = [(1 if record["decision"] == positive else -1) * v for v in row]
        usable = [v for name, v in zip(frame.columns, signed, strict=True) if name not in sensitive]
        surely, maybe = sum(v > 1e-9 for v in usable), sum(v >= -1e-9 for v in usable)
        assert min(top_k, surely) <= len(record["reasons"]) <= min(top_k, maybe)
        assert not {r["feature"] for r in record["reasons"]} & sensitive
    assert any(record["reasons"] for record in scored)


def test_csv_output_and_reasons_off(root, settings, sample_frame, model_dir, tmp_path, monkeypatch):
    directory, _ = model_dir
    source = tmp_path / "in.parquet"
    sample_frame.head(5).to_parquet(source)
    out = tmp_path / "out.csv"
    args = ["--input", str(source), "--output", str(out), "--model", str(directory), "--top-k", "0"]
    assert _run(root, monkeypatch, *args) == 0
    scored = pd.read_csv(out)
    assert len(scored) == 5 and "reasons" not in scored.columns
    # decisions are the data's labels (CSV reads a 0/1 label back as a number: compared as text)
    assert set(scored["decision"].astype(str)) <= set(sample_frame[settings.data.target].astype(str))


def test_an_int_feature_written_as_whole_floats_scores_and_a_fraction_is_refused(
    root, features, sample_frame, model_dir, tmp_path, monkeypatch, capsys
):
    # given the project's rows with an int model input written as floats (2372.0, as pandas writes a
    # column it read with empty cells, or as the data file itself may hold it)
    directory, pipeline = model_dir
    ints = [f for f in features.model_inputs() if f.dtype == "int"]
    if not ints:
        pytest.skip("the contract declares no int model input: nothing is written as whole floats")
    name = ints[0].name
    rows = sample_frame.head(8).copy()
    whole = rows.assign(**{name: rows[name].astype("float64")})
    source, out = tmp_path / "whole.csv", tmp_path / "whole.jsonl"
    whole.to_csv(source, index=False)
    assert pd.read_csv(source, dtype=str)[name].str.endswith(".0").all()
    # then they score as the integers they are
    assert (
        _run(root, monkeypatch, "--input", str(source), "--output", str(out), "--model", str(directory)) == 0
    )
    scored = [json.loads(line)["probability"] for line in out.read_text().splitlines()]
    assert np.array_equal(scored, pipeline.predict_proba(data.model_frame(rows, features))[:, 1])
    # and a value with a fraction is still refused by the strict contract, row and column named
    fraction = whole.copy()
    fraction.loc[fraction.index[1], name] = fraction[name].iloc[1] + 0.5
    fraction.to_csv(source, index=False)
    out.unlink()
    assert (
        _run(root, monkeypatch, "--input", str(source), "--output", str(out), "--model", str(directory)) == 2
    )
    assert f"row 2: column {name!r}" in capsys.readouterr().err and not out.exists()


def test_a_bad_row_is_named_and_nothing_is_written(
    root, features, sample_frame, model_dir, tmp_path, monkeypatch, capsys
):
    directory, _ = model_dir
    categories = [f for f in features.model_inputs() if f.allowed_values]
    if not categories:
        pytest.skip("the contract declares no categorical model input: no undeclared category to send")
    category = categories[0]
    rows = sample_frame.head(6).copy()
    rows[category.name] = rows[category.name].astype(object)
    rows.loc[rows.index[3], category.name] = "no-such-value"
    source = tmp_path / "bad.csv"
    rows.to_csv(source, index=False)
    out = tmp_path / "out.jsonl"
    assert (
        _run(root, monkeypatch, "--input", str(source), "--output", str(out), "--model", str(directory)) == 2
    )
    message = capsys.readouterr().err
    assert f"row 4: column {category.name!r}" in message and str(source) in message
    assert not out.exists()


def test_score_is_an_mlops_command():
    assert COMMANDS["score"][0] == "german_credit_scoring.explain.batch:score_cli"


def test_a_tree_model_scores_with_its_own_probabilities_with_reasons_on_and_off(
    root, settings, features, sample_frame, tmp_path, monkeypatch
):
    # given a gradient-boosting model (its log-odds come from the explainer's tables when verified)
    params = settings.model.hist_gradient_boosting.model_dump() | {"max_iter": 40}
    directory, pipeline = _model_dir(
        tmp_path, settings, features, sample_frame, "hist_gradient_boosting", params
    )
    rows = sample_frame.head(300)
    source = tmp_path / "in.csv"
    rows.to_csv(source, index=False)
    expected = pipeline.predict_proba(data.model_frame(rows, features))[:, 1]
    # when the file is scored with reasons and without
    for top_k in ("3", "0"):
        out = tmp_path / f"out-{top_k}.jsonl"
        args = ["--input", str(source), "--output", str(out), "--model", str(directory), "--top-k", top_k]
        assert _run(root, monkeypatch, *args) == 0
        scored = [json.loads(line) for line in out.read_text().splitlines()]
        # then both carry scikit-learn's probabilities bit for bit
        assert np.array_equal([r["probability"] for r in scored], expected)
        if top_k != "0":
            assert all(r["reasons_unavailable"] is None for r in scored)
            assert any(r["reasons"] for r in scored)


def test_hints_are_added_for_the_chosen_decisions(
    root, settings, features, sample_frame, model_dir, tmp_path, monkeypatch
):
    from german_credit_scoring.explain.counterfactual import changeable

    directory, pipeline = model_dir
    # given the 30 rows nearest the threshold (both decisions, whatever the data's balance)
    probabilities = pipeline.predict_proba(data.model_frame(sample_frame, features))[:, 1]
    nearest = np.sort(np.argsort(np.abs(probabilities - settings.decision_threshold), kind="stable")[:30])
    rows, source = _sample_file(sample_frame.iloc[nearest], tmp_path)
    out, csv_out = tmp_path / "out.jsonl", tmp_path / "out.csv"
    # when the file is scored with hints, as JSON lines and as CSV
    for target in (out, csv_out):
        args = ("--input", str(source), "--output", str(target), "--model", str(directory), "--hints")
        assert _run(root, monkeypatch, *args) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    positive = str(settings.data.positive_label)
    frame = data.model_frame(rows, features)
    hinted = 0
    for index, record in enumerate(scored):
        decided = record["decision"] == positive
        if settings.serving.hints_for != "any" and decided != (settings.serving.hints_for == "positive"):
            # then a row of another decision gets no hints and no reason (it did not ask)
            assert record["hints"] is None and record["hints_unavailable"] is None
            continue
        assert (record["hints_unavailable"] is None) == bool(record["hints"])
        for hint in record["hints"]:
            assert changeable(features.get(hint["feature"])) is None
            changed = frame.iloc[[index]].copy()
            changed[hint["feature"]] = hint["suggested"]
            probability = pipeline.predict_proba(data.model_frame(changed, features))[0, 1]
            assert probability == pytest.approx(hint["probability"], abs=1e-12)
            assert (probability >= settings.decision_threshold) != decided
            hinted += 1
    assert hinted, "no row of 30 got a hint"
    # the CSV holds the same hints as JSON text
    from_csv = pd.read_csv(csv_out)["hints"].tolist()
    assert [None if isinstance(h, float) else json.loads(h) for h in from_csv] == [r["hints"] for r in scored]


def test_hints_need_a_positive_hints_top_k(root, settings, model_dir, tmp_path, monkeypatch, capsys):
    directory, _ = model_dir
    params = tmp_path / "params.yaml"
    import re

    text = re.sub(r"(?m)^  hints_top_k:.*\n", "", (root / "params.yaml").read_text())
    params.write_text(text.replace("serving:\n", "serving:\n  hints_top_k: 0\n", 1))
    monkeypatch.chdir(root)
    source = tmp_path / "in.csv"
    pd.DataFrame({"x": [1]}).to_csv(source, index=False)
    args = ["--params", str(params), "--input", str(source), "--output", str(tmp_path / "o.csv")]
    assert score_cli([*args, "--model", str(directory), "--hints"]) == 2
    assert "serving.hints_top_k is 0" in capsys.readouterr().err

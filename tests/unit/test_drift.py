"""Drift statistics agree with scipy; verdicts follow effect sizes; inputs of every supported shape."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp

from german_credit_scoring.contract import FeatureDefinition, FeatureSet
from german_credit_scoring.drift import (
    PROBABILITY,
    Thresholds,
    check_drift,
    chi_square,
    compare_categorical,
    compare_numeric,
    counts_in_bins,
    js_distance,
    ks_sorted,
    psi,
    quantile_edges,
    read_current,
    render_markdown,
    sparkline,
)
from german_credit_scoring.errors import DataError, SettingsError
from german_credit_scoring.settings import parse_settings

THR = Thresholds(psi=0.2, ks=0.1, js=0.1, alpha=0.01)


@pytest.fixture(scope="module")
def split(settings, features, sample_frame):
    from german_credit_scoring.ingest import prepare

    return prepare(sample_frame, settings, features, "sample")


def shiftable(split, features) -> str:
    """A numeric feature with many values: the data's own column, not a name from the sample."""
    return max(features.numeric, key=lambda f: split.train[f.name].nunique()).name


def with_drift(settings, **changes):
    raw = settings.model_dump(mode="json")
    raw["drift"].update(changes)
    return parse_settings(raw)


# --- statistics vs scipy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: (rng.normal(0, 1, 3000), rng.normal(0.1, 1.2, 2000)),
        lambda rng: (rng.poisson(3, 5000).astype(float), rng.poisson(3.3, 800).astype(float)),  # many ties
        lambda rng: (rng.integers(1, 5, 700).astype(float), rng.integers(1, 5, 250).astype(float)),
        lambda rng: (rng.exponential(1, 120), rng.exponential(1, 90)),
    ],
)
def test_ks_statistic_and_p_value_match_scipy(make):
    # given two samples (continuous, tied, tiny)
    a, b = make(np.random.default_rng(7))
    # when KS is computed on the sorted arrays
    statistic, p_value = ks_sorted(np.sort(a), np.sort(b))
    # then it is scipy's two-sample KS (asymptotic p-value)
    expected = ks_2samp(a, b, method="asymp")
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        ([500, 300, 200], [450, 330, 220]),
        ([80, 20], [60, 40]),
        ([10, 0, 5, 7], [3, 0, 9, 1]),
        ([1, 2, 3], [0, 0, 9]),
    ],
)
def test_chi_square_matches_scipy_contingency(ref, cur):
    statistic, p_value = chi_square(np.array(ref), np.array(cur))
    table = np.array([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    expected = chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-8, abs=1e-300)


@pytest.mark.parametrize(
    ("ref", "cur"),
    [([5, 3, 2], [4, 4, 2]), ([1, 0, 0], [0, 0, 1]), ([7, 1, 0, 2], [7, 1, 0, 2]), ([3, 9], [1, 1])],
)
def test_js_distance_matches_scipy(ref, cur):
    assert js_distance(np.array(ref), np.array(cur)) == pytest.approx(
        jensenshannon(np.array(ref, float), np.array(cur, float)), abs=1e-9
    )


def test_psi_matches_its_definition_and_is_zero_for_equal_distributions():
    ref, cur = np.array([40, 30, 20, 10]), np.array([25, 25, 25, 25])
    r, c = ref / ref.sum(), cur / cur.sum()
    assert psi(ref, cur) == pytest.approx(np.sum((c - r) * np.log(c / r)))
    assert psi(ref, ref * 3) == pytest.approx(0.0)
    # an empty bin does not make PSI infinite
    assert np.isfinite(psi(np.array([10, 0]), np.array([5, 5])))


def test_quantile_bins_count_like_pandas_cut():
    rng = np.random.default_rng(1)
    ref, cur = np.sort(rng.normal(size=5000)), np.sort(rng.normal(0.3, 1, 3000))
    edges = quantile_edges(ref, 10)
    assert len(edges) == 9
    expected = (
        pd.Series(pd.cut(cur, [-np.inf, *edges, np.inf], right=True)).value_counts(sort=False).to_numpy()
    )
    assert counts_in_bins(cur, edges).tolist() == expected.tolist()
    # discrete data: one bin per distinct value, none empty in the reference
    discrete = np.sort(rng.integers(1, 5, 1000).astype(float))
    assert (counts_in_bins(discrete, quantile_edges(discrete, 10)) > 0).all()


def test_sparkline_draws_bars_on_a_shared_scale():
    assert sparkline([0.0, 0.5, 1.0]) == " ▅█"
    assert sparkline([0.05, 0.4], scale=0.8) == "▁▅"


# --- per-feature verdicts ----------------------------------------------------------------------------


def test_numeric_shift_is_drift_and_same_distribution_is_not():
    rng = np.random.default_rng(3)
    ref = rng.normal(10, 2, 50_000)
    shifted = compare_numeric("x", ref, rng.normal(11, 2, 50_000), 10, THR)
    same = compare_numeric("x", ref, rng.normal(10, 2, 50_000), 10, THR)
    assert shifted["drifted"] and shifted["psi"] > 0.2 and shifted["ks_statistic"] > 0.1
    assert not same["drifted"] and same["psi"] < 0.01


def test_tiny_difference_at_huge_size_is_significant_but_not_drift():
    # given a shift of 0.03 sd over 200k rows: p-value ~ 0, effect negligible
    rng = np.random.default_rng(4)
    result = compare_numeric("x", rng.normal(0, 1, 200_000), rng.normal(0.03, 1, 200_000), 10, THR)
    assert result["ks_p_value"] < 1e-6
    assert not result["drifted"]


def test_large_effect_on_a_handful_of_rows_is_noise_not_drift():
    rng = np.random.default_rng(5)
    result = compare_numeric("x", rng.normal(0, 1, 1000), rng.normal(0, 1, 12), 10, THR)
    assert result["ks_statistic"] > 0.1  # a dozen rows always look different
    assert not result["drifted"]


def test_missing_values_are_reported_and_excluded_from_numeric_tests():
    ref = pd.Series([1.0, 2.0, 3.0, 4.0] * 100)
    cur = pd.Series([1.0, 2.0, None, 4.0] * 100)
    result = compare_numeric("x", ref, cur, 10, THR)
    assert result["missing_rate_reference"] == 0.0
    assert result["missing_rate_current"] == pytest.approx(0.25)


def test_unseen_categories_are_listed_and_drive_drift():
    ref = pd.Series(["a"] * 500 + ["b"] * 500)
    cur = pd.Series(["a"] * 300 + ["b"] * 300 + ["zz"] * 400)
    result = compare_categorical("c", ref, cur, THR, allowed=["a", "b", "c"])
    assert result["unseen_categories"] == {"zz": 400}
    assert result["unseen_rate_current"] == pytest.approx(0.4)
    assert result["drifted"]
    # the declared but unobserved category is a bin, not an unseen value
    assert "c" in result["histogram"]["categories"]


def test_missing_category_counts_as_its_own_value():
    ref = pd.Series(["a", "b"] * 500)
    cur = pd.Series(["a", None] * 500)
    result = compare_categorical("c", ref, cur, THR)
    assert result["missing_rate_current"] == pytest.approx(0.5)
    assert result["drifted"]


# --- the whole check ---------------------------------------------------------------------------------


def test_fewer_rows_than_min_rows_is_insufficient_data_not_an_alarm(split, features, settings):
    current = split.test.head(settings.drift.min_rows - 1).copy()
    current[shiftable(split, features)] = 999_999  # would be drift with enough rows
    result = check_drift(split.train, current, features, settings)
    assert result["verdict"] == "insufficient_data"
    assert str(settings.drift.min_rows) in result["message"]
    assert result["features"] == []


def test_per_feature_threshold_override_silences_one_feature(split, features, settings):
    name = shiftable(split, features)
    current = split.test.sample(5000, replace=True, random_state=0).reset_index(drop=True)
    current[name] = current[name] + split.train[name].std()
    default = check_drift(split.train, current, features, settings)
    relaxed = check_drift(
        split.train,
        current,
        features,
        with_drift(settings, per_feature={name: {"psi_threshold": 50, "ks_threshold": 1.0}}),
    )
    assert name in default["drifted_features"]
    assert name not in relaxed["drifted_features"]
    row = next(r for r in relaxed["features"] if r["name"] == name)
    assert row["thresholds"]["psi_threshold"] == 50


def test_per_feature_override_naming_an_unknown_feature_is_a_settings_error(split, features, settings):
    bad = with_drift(settings, per_feature={"no_such_feature": {"psi_threshold": 0.3}})
    with pytest.raises(SettingsError, match="no_such_feature"):
        check_drift(split.train, split.test, features, bad)
    typo = with_drift(settings, per_feature={features.names[0]: {"psi_treshold": 0.3}})
    with pytest.raises(SettingsError, match="psi_treshold"):
        check_drift(split.train, split.test, features, typo)


def test_current_data_without_any_declared_feature_is_bad_input(split, features, settings):
    with pytest.raises(DataError, match="none of the declared features"):
        check_drift(split.train, pd.DataFrame({"other": range(500)}), features, settings)


def test_a_feature_absent_from_current_data_is_reported_not_checked(split, features, settings):
    absent = features.names[-1]
    current = split.test.drop(columns=[absent])
    result = check_drift(split.train, current, features, settings)
    assert result["missing_features"] == [absent]
    assert absent in result["message"]


@pytest.fixture(scope="module")
def model(split, features, settings):
    from german_credit_scoring.data import model_frame
    from german_credit_scoring.transform import build_pipeline

    pipeline = build_pipeline(
        features, settings.model.type, settings.model.hyperparameters, settings.model.seed
    )
    return pipeline.fit(model_frame(split.train, features), split.train[settings.data.target])


def test_concept_drift_is_detected_when_labels_are_present(split, features, settings, model):
    from german_credit_scoring.simulate import simulate

    target, positive = settings.data.target, settings.data.positive_label
    concept = simulate(split.test, "concept", features, target, positive, rows=20_000, seed=1).frame
    steady = simulate(split.test, "none", features, target, positive, rows=20_000, seed=1).frame
    drifted = check_drift(split.train, concept, features, settings, model=model, baseline=split.test)
    stable = check_drift(split.train, steady, features, settings, model=model, baseline=split.test)
    assert drifted["verdict"] == "drift"
    assert drifted["performance"]["drifted"]
    assert drifted["performance"]["roc_auc_drop"] > settings.drift.performance_drop_threshold
    assert drifted["drifted_features"] == []  # the inputs did not change, only their relation to the label
    assert stable["verdict"] == "no_drift"
    assert abs(stable["performance"]["roc_auc_drop"]) < 0.02


def test_prediction_drift_uses_logged_probabilities_when_every_row_has_one(split, features, settings, model):
    current = split.test.sample(2000, replace=True, random_state=2).reset_index(drop=True)
    current[PROBABILITY] = 0.99  # the service suddenly scores everyone as a default
    result = check_drift(split.train, current, features, settings, model=model)
    assert result["prediction"]["current_source"] == "logged probability"
    assert result["prediction"]["drifted"]
    assert result["verdict"] == "drift"


def test_markdown_lists_every_feature_with_sparklines_and_no_remote_images(split, features, settings, model):
    shifted = shiftable(split, features)
    current = split.test.sample(3000, replace=True, random_state=3).reset_index(drop=True)
    current[shifted] = current[shifted] * 3 + split.train[shifted].std()
    result = check_drift(split.train, current, features, settings, model=model)
    text = render_markdown(result, "logs/predictions")
    for name in features.names:
        assert f"`{name}`" in text
    assert "❌ drift" in text and shifted in text.split("### Why")[1]
    assert any(bar in text for bar in "▁▂▃▄▅▆▇█")
    assert "http" not in text and "![" not in text


# --- reading current data ----------------------------------------------------------------------------


def test_prediction_log_records_and_flat_rows_are_both_read(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    records = [
        {
            "request_id": f"r{i}",
            "timestamp": "2026-01-01T00:00:00Z",
            "model_version": "3",
            "inputs": {"age": 30 + i, "housing": "own"},
            "outputs": {"probability": 0.1 * i, "decision": "negative"},
        }
        for i in range(3)
    ]
    (logs / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    (logs / "b.jsonl").write_text(json.dumps({"age": 50, "housing": "rent", "probability": 0.7}) + "\n")
    batch = {
        "inputs": [{"age": 61, "housing": "free"}, {"age": 62, "housing": "own"}],
        "outputs": [{"probability": 0.2}, {"probability": 0.3}],
    }
    (logs / "c.jsonl").write_text(json.dumps(batch) + "\n")
    frame, files = read_current(logs, "credit_risk")
    assert len(files) == 3
    assert frame["age"].tolist() == [30, 31, 32, 50, 61, 62]
    assert frame[PROBABILITY].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.7, 0.2, 0.3])
    assert frame["__model_version__"].iloc[0] == "3"


def test_csv_parquet_and_glob_sources(tmp_path):
    pd.DataFrame({"age": [1, 2]}).to_csv(tmp_path / "one.csv", index=False)
    pd.DataFrame({"age": [3]}).to_parquet(tmp_path / "two.parquet", index=False)
    (tmp_path / "notes.txt").write_text("not data")
    frame, _ = read_current(tmp_path, "credit_risk")
    assert sorted(frame["age"].tolist()) == [1, 2, 3]
    frame, files = read_current(str(tmp_path / "*.csv"), "credit_risk")
    assert [f.name for f in files] == ["one.csv"] and frame["age"].tolist() == [1, 2]


def test_missing_source_reads_as_no_rows_and_malformed_log_names_the_line(tmp_path):
    frame, files = read_current(tmp_path / "absent", "credit_risk")
    assert len(frame) == 0 and files == []
    (tmp_path / "bad.jsonl").write_text('{"inputs": {"age": 1}}\n{not json\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        read_current(tmp_path, "credit_risk")


def test_statistics_of_a_feature_set_without_the_sample_columns():
    # nothing depends on the sample's column names
    features = FeatureSet(
        features=[FeatureDefinition(name="x", dtype="float"), FeatureDefinition(name="c", dtype="category")]
    )
    from german_credit_scoring.drift import compare_features
    from german_credit_scoring.settings import DriftSettings

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=4000), "c": rng.choice(["p", "q"], 4000)})
    cur = pd.DataFrame({"x": rng.normal(2, 1, 4000), "c": rng.choice(["p", "q"], 4000)})
    rows, missing = compare_features(ref, cur, features.features, DriftSettings(), workers=2)
    assert [r["name"] for r in rows if r["drifted"]] == ["x"] and missing == []


def test_performance_against_the_training_rows_is_reported_not_judged(split, features, settings, model):
    # given no held-out baseline: the reference (training data) flatters the model
    from german_credit_scoring.simulate import simulate

    target, positive = settings.data.target, settings.data.positive_label
    concept = simulate(split.test, "concept", features, target, positive, rows=20_000, seed=1).frame
    result = check_drift(split.train, concept, features, settings, model=model)
    assert result["performance"]["baseline_held_out"] is False
    assert result["performance"]["roc_auc_drop"] > settings.drift.performance_drop_threshold
    assert not result["performance"]["drifted"]
    assert "no verdict is taken" in render_markdown(result)

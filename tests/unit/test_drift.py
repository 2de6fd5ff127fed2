"""Drift statistics agree with scipy; verdicts follow effect sizes; inputs of every supported shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp

from german_credit_scoring.contract import FeatureDefinition, FeatureSet
from german_credit_scoring.errors import DataError, SettingsError
from german_credit_scoring.monitoring.drift import (
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
    read_columns,
    read_current,
    render_markdown,
    sparkline,
)
from german_credit_scoring.settings import parse_settings

THR = Thresholds(psi=0.2, ks=0.1, js=0.1, alpha=0.01)


@pytest.fixture(scope="module")
def split(settings, features, sample_frame):
    from german_credit_scoring.lifecycle.ingest import prepare

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


def test_a_model_input_absent_from_current_data_is_bad_input_naming_it(split, features, settings):
    # given a current batch without one model input (whatever its name in the contract)
    absent = features.model_inputs()[-1].name
    current = split.test.drop(columns=[absent])
    # then the check refuses it (exit 2 at the command line) and names the column
    with pytest.raises(DataError, match=rf"lacks the model input column\(s\) \['{absent}'\]"):
        check_drift(split.train, current, features, settings)


def test_unrelated_columns_are_bad_input_even_below_min_rows(split, features, settings):
    # given a file whose columns have nothing to do with the contract, and few rows
    unrelated = pd.DataFrame({f"col_{i}": range(10) for i in range(3)})
    with pytest.raises(DataError, match="none of the declared features") as error:
        check_drift(split.train, unrelated, features, settings)
    assert "col_0" in str(error.value)


def test_a_sensitive_feature_the_model_does_not_use_may_be_absent(split, features, settings):
    unused = [f.name for f in features.features if f not in features.model_inputs()]
    if not unused:
        pytest.skip("every declared feature is a model input in this contract")
    result = check_drift(split.train, split.test.drop(columns=unused), features, settings)
    assert result["missing_features"] == unused
    assert all(name in result["message"] for name in unused)


@pytest.fixture(scope="module")
def model(split, features, settings):
    from german_credit_scoring.data import model_frame
    from german_credit_scoring.lifecycle.transform import build_pipeline

    pipeline = build_pipeline(
        features, settings.model.type, settings.model.hyperparameters, settings.model.seed
    )
    return pipeline.fit(model_frame(split.train, features), split.train[settings.data.target])


def test_concept_drift_is_detected_when_labels_are_present(split, features, settings, model):
    from german_credit_scoring.monitoring.simulate import simulate

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


def test_missing_source_reads_as_no_rows_and_malformed_log_lines_are_counted_by_file_and_line(tmp_path):
    frame, files = read_current(tmp_path / "absent", "credit_risk")
    assert len(frame) == 0 and files == []
    (tmp_path / "bad.jsonl").write_text('{"inputs": {"age": 1}}\n{not json\n[1, 2]\n{"inputs": {"age": 4}}\n')
    columns = read_columns(tmp_path, "credit_risk")
    # the readable records are kept, the others counted with their file and line
    assert columns.numeric("age").tolist() == [1.0, 4.0]
    assert columns.bad_records.count == 2
    assert [(Path(b["file"]).name, b["line"]) for b in columns.bad_records.examples] == [
        ("bad.jsonl", 2),
        ("bad.jsonl", 3),
    ]


def test_statistics_of_a_feature_set_without_the_sample_columns():
    # nothing depends on the sample's column names
    features = FeatureSet(
        features=[FeatureDefinition(name="x", dtype="float"), FeatureDefinition(name="c", dtype="category")]
    )
    from german_credit_scoring.monitoring.drift import compare_features
    from german_credit_scoring.settings import DriftSettings

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=4000), "c": rng.choice(["p", "q"], 4000)})
    cur = pd.DataFrame({"x": rng.normal(2, 1, 4000), "c": rng.choice(["p", "q"], 4000)})
    rows, missing = compare_features(ref, cur, features.features, DriftSettings(), workers=2)
    assert [r["name"] for r in rows if r["drifted"]] == ["x"] and missing == []


def test_performance_against_the_training_rows_is_reported_not_judged(split, features, settings, model):
    # given no held-out baseline: the reference (training data) flatters the model
    from german_credit_scoring.monitoring.simulate import simulate

    target, positive = settings.data.target, settings.data.positive_label
    concept = simulate(split.test, "concept", features, target, positive, rows=20_000, seed=1).frame
    result = check_drift(split.train, concept, features, settings, model=model)
    assert result["performance"]["baseline_held_out"] is False
    assert result["performance"]["roc_auc_drop"] > settings.drift.performance_drop_threshold
    assert not result["performance"]["drifted"]
    assert "no verdict is taken" in render_markdown(result)


# --- the fast path equals scipy ------------------------------------------------------------------------


def _distributions(rng, n):
    return [
        rng.normal(10, 2, n),
        rng.lognormal(3, 1.5, n),  # skewed
        rng.poisson(3, n).astype(float),  # discrete, many ties
        np.round(rng.normal(0, 1, n), 2),  # rounded: ties inside fine bins
        np.concatenate([[1e9, -1e9, 5e5], rng.normal(0, 1, n)])[:n],  # outliers
        np.full(n, 2.0),  # constant
    ]


@pytest.mark.parametrize(("n", "m"), [(5000, 300), (1000, 1000), (200_000, 150_000), (30, 2000)])
def test_unsorted_linear_time_comparison_equals_scipy_ks_and_sorted_bin_counts(n, m):
    from german_credit_scoring.monitoring.stats import compare_numeric_arrays

    rng = np.random.default_rng(n + m)
    for reference, current in zip(_distributions(rng, n), _distributions(rng, m), strict=True):
        for shifted in (current, current + 0.3, current * 1.5):
            result = compare_numeric_arrays(reference, shifted, 10)
            expected = ks_2samp(reference, shifted, method="asymp")
            assert result.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
            assert result.ks_p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)
            ref_sorted = np.sort(reference)
            edges = quantile_edges(ref_sorted, 10)
            assert result.reference_counts.tolist() == counts_in_bins(ref_sorted, edges).tolist()
            assert result.current_counts.tolist() == counts_in_bins(np.sort(shifted), edges).tolist()


def test_kolmogorov_chi_square_and_smirnov_tails_equal_scipy():
    from scipy.special import smirnov
    from scipy.stats import chi2, kstwo

    from german_credit_scoring.monitoring.stats import chi2_sf, kolmogorov_sf, smirnov_sf

    for n in (141, 5000, 100_000, 500_000):
        for x in [*np.geomspace(1e-4, 0.6, 12), 0.75, 0.99]:
            assert kolmogorov_sf(n, x) == pytest.approx(kstwo.sf(x, n), rel=1e-6, abs=1e-13), (n, x)
    for n, x in ((150, 0.05), (1000, 0.6), (500_000, 0.003)):
        assert smirnov_sf(n, x) == pytest.approx(smirnov(n, x), rel=1e-9)
    for dof in (1, 2, 7, 30, 200):
        for statistic in (0.01, 1.0, 5.0, 40.0, 300.0, 1500.0):
            assert chi2_sf(statistic, dof) == pytest.approx(chi2.sf(statistic, dof), rel=1e-10, abs=1e-300)


def test_holm_and_bonferroni_adjusted_p_values():
    from german_credit_scoring.monitoring.stats import adjust_p_values

    p = [0.01, 0.04, 0.03, 0.2]
    # Holm: sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1, made monotone
    assert adjust_p_values(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert adjust_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.8])
    assert adjust_p_values(p, "none") == pytest.approx(p)


# --- data quality: missing values and volume ------------------------------------------------------------


def test_a_key_feature_suddenly_30_percent_missing_is_drift_of_its_own(split, features, settings):
    # given a batch drawn from the reference rows themselves (no distribution change: the held-out
    # quarter's own sampling noise, resampled to 2,000 rows, is drift on a 45-value category) with 30%
    # of a numeric model input blanked
    name = shiftable(split, features)
    current = split.train.sample(2000, replace=True, random_state=4).reset_index(drop=True)
    current[name] = current[name].astype("float64")
    current.loc[np.random.default_rng(4).random(len(current)) < 0.3, name] = np.nan
    result = check_drift(split.train, current, features, settings)
    # then the check alarms on that alone, naming the feature and the missing-rate change
    assert result["verdict"] == "drift"
    row = next(r for r in result["features"] if r["name"] == name)
    assert row["missing_drifted"] and row["missing_rate_current"] == pytest.approx(0.3, abs=0.04)
    assert [{k: v for k, v in f.items() if k != "reasons"} for f in result["findings"]] == [
        {"kind": "missing_rate", "name": name}
    ]
    assert "missing values changed" in result["message"] and name in result["message"]
    # and the same batch without the gap does not
    steady = split.train.sample(2000, replace=True, random_state=4).reset_index(drop=True)
    assert not any(
        r["missing_drifted"] for r in check_drift(split.train, steady, features, settings)["features"]
    )


def test_volume_change_is_a_finding_with_its_threshold(split, features, settings):
    current = split.test.sample(1000, replace=True, random_state=5).reset_index(drop=True)
    expected_rows = round(1000 / (1 - settings.drift.volume_change_threshold) * 1.2)  # a larger drop
    dropped = check_drift(split.train, current, features, with_drift(settings, expected_rows=expected_rows))
    assert dropped["volume"]["drifted"] and dropped["verdict"] == "drift"
    assert any(f["kind"] == "volume" for f in dropped["findings"])
    steady = check_drift(split.train, current, features, with_drift(settings, expected_rows=1000))
    assert not steady["volume"]["drifted"]
    # the previous window's count, when the caller knows it, is the expectation
    previous = check_drift(split.train, current, features, settings, previous_rows=expected_rows)
    assert previous["volume"]["drifted"] and previous["volume"]["expected_from"] == "previous window"
    # a window that collapses below min_rows is a volume alarm, not "insufficient data"
    few = current.head(settings.drift.min_rows - 1)
    collapsed = check_drift(split.train, few, features, with_drift(settings, expected_rows=1000))
    assert collapsed["verdict"] == "drift" and collapsed["features"] == []


# --- family-wise false alarms and power ---------------------------------------------------------------


def _halves(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    half = len(frame) // 2
    return frame.iloc[order[:half]].reset_index(drop=True), frame.iloc[order[half:]].reset_index(drop=True)


def _binomial_bound(trials: int, rate: float, tail: float = 0.005) -> int:
    """The smallest k with P(Binomial(trials, rate) > k) < tail."""
    from math import comb

    cumulative = 0.0
    for k in range(trials + 1):
        cumulative += comb(trials, k) * rate**k * (1 - rate) ** (trials - k)
        if 1 - cumulative < tail:
            return k
    return trials


def test_false_alarm_rate_of_the_whole_check_is_at_most_alpha(sample_frame, features, settings):
    # given 100 random halves of the project's own data: no drift by construction
    seeds = 100
    alarms = {"holm": [], "none": []}
    for seed in range(seeds):
        reference, current = _halves(sample_frame, seed)
        for correction, hits in alarms.items():
            result = check_drift(
                reference, current, features, with_drift(settings, correction=correction), workers=1
            )
            assert result["tests"] >= len(features.names)  # every feature (and the label) is in the family
            if result["verdict"] == "drift":
                hits.append((seed, result["message"]))
    # then the corrected check alarms on at most alpha of them (binomial slack for 100 draws)
    bound = _binomial_bound(seeds, settings.drift.alpha)
    assert len(alarms["holm"]) <= bound, (alarms["holm"], f"uncorrected: {len(alarms['none'])}")
    assert len(alarms["holm"]) <= len(alarms["none"])


def test_simulated_covariate_shift_is_still_caught_after_correction(sample_frame, features, settings):
    from german_credit_scoring.monitoring.simulate import simulate

    target, positive = settings.data.target, settings.data.positive_label
    caught = []
    for seed in range(30):
        reference, rest = _halves(sample_frame, seed)
        shifted = simulate(rest, "covariate", features, target, positive, rows=len(rest), seed=seed)
        result = check_drift(reference, shifted.frame, features, settings, workers=1)
        caught.append(set(shifted.touched) <= set(result["drifted_features"]))
    assert sum(caught) >= 28, caught


# --- Parquet columns and the process ---------------------------------------------------------------------


PARALLEL_READS = """
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from german_credit_scoring.monitoring.tables import read_file_columns
path, rounds = sys.argv[1], int(sys.argv[2])
for _ in range(rounds):
    columns = read_file_columns(path)
    with ThreadPoolExecutor(2) as pool:
        sums = list(pool.map(lambda name: float(columns.numeric(name, "float").sum()), columns.names))
print(json.dumps(sums))
"""


def test_parquet_columns_read_from_two_threads_never_hang(tmp_path):
    """`mlops drift` reads a Parquet window's columns from several threads. With one pyarrow reader
    shared by the threads this hung or failed ("ReadRangeCache did not find matching cache entry")
    within a few hundred rounds, in every try; with a reader per read it never did."""
    # given a Parquet file of eight numeric columns
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=3000) for i in range(8)})
    frame.to_parquet(tmp_path / "window.parquet", index=False)
    # when its columns are read two at a time from two threads, round after round, in a process of its own
    try:
        result = subprocess.run(
            [sys.executable, "-c", PARALLEL_READS, str(tmp_path / "window.parquet"), "1000"],
            capture_output=True,
            text=True,
            timeout=90,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("reading Parquet columns from two threads hung")
    # then every round finishes, with the file's values
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.allclose(json.loads(result.stdout), frame.sum().to_list())


def test_parquet_columns_give_the_same_result_as_frames(tmp_path, split, features, settings):
    from german_credit_scoring.monitoring.tables import read_file_columns

    name = shiftable(split, features)
    current = split.test.sample(3000, replace=True, random_state=6).reset_index(drop=True)
    current[name] = current[name] + split.train[name].std()
    split.train.to_parquet(tmp_path / "reference.parquet", index=False)
    (tmp_path / "window").mkdir()
    current.iloc[:1000].to_parquet(tmp_path / "window/a.parquet", index=False)
    current.iloc[1000:].to_parquet(tmp_path / "window/b.parquet", index=False)
    from_frames = check_drift(split.train, current, features, settings)
    from_files = check_drift(
        read_file_columns(tmp_path / "reference.parquet"),
        read_columns(tmp_path / "window", "x"),
        features,
        settings,
    )
    for a, b in zip(from_frames["features"], from_files["features"], strict=True):
        assert (a["name"], a["drifted"]) == (b["name"], b["drifted"])
        for key in ("psi", "ks_statistic", "chi2_p_value", "js_distance", "p_value_adjusted"):
            if a[key] is not None or b[key] is not None:
                assert a[key] == pytest.approx(b[key], rel=1e-12, nan_ok=True), (a["name"], key)
    assert name in from_files["drifted_features"]


def test_mlops_drift_imports_no_pandas_scipy_or_sklearn(tmp_path, root, split, settings):
    import subprocess
    import sys

    split.train.to_parquet(tmp_path / "reference.parquet", index=False)
    split.test.to_parquet(tmp_path / "current.parquet", index=False)
    script = (
        "import sys\n"
        "from german_credit_scoring.monitoring.drift import drift_cli\n"
        f"code = drift_cli(['--reference', {str(tmp_path / 'reference.parquet')!r}, '--current', "
        f"{str(tmp_path / 'current.parquet')!r}, '--no-model', '--json', {str(tmp_path / 'd.json')!r}, "
        f"'--markdown', {str(tmp_path / 'd.md')!r}])\n"
        "heavy = sorted(m for m in ('pandas', 'scipy', 'sklearn', 'mlflow', 'great_expectations') if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] in {"0 []", "1 []"}, out.stdout
    assert json.loads((tmp_path / "d.json").read_text())["current_rows"] == len(split.test)


def test_a_csv_window_reads_missing_cells_as_pandas_does(tmp_path):
    """pandas (what ingest reads the training data with) is the oracle: an empty or "NA" category cell is a
    missing value, not a category of its own that would look like drift."""
    from german_credit_scoring.monitoring.tables import read_columns

    frame = pd.DataFrame({"plan": ["basic", None, "pro", "NA", ""], "amount": [1.5, None, 2.0, 3.0, 4.0]})
    frame.to_csv(tmp_path / "window.csv", index=False)
    oracle = pd.read_csv(tmp_path / "window.csv")
    columns = read_columns(str(tmp_path / "window.csv"), "target")
    counted = columns.counts("plan")
    expected = oracle["plan"].value_counts().to_dict()
    assert {k: v for k, v in counted.items() if k in expected} == expected
    assert sum(counted.values()) - sum(expected.values()) == oracle["plan"].isna().sum()  # the missing ones
    assert "" not in counted and "NA" not in counted
    assert np.isnan(columns.numeric("amount")).sum() == oracle["amount"].isna().sum()


def test_the_drift_report_is_a_function_of_its_inputs(split, features, settings):
    """reports/drift.json is a DVC output: no clock in it (the run's time is in runs/drift.json), so two
    fresh clones reproduce one dvc.lock."""
    current = split.test.sample(300, replace=True, random_state=1)
    first = check_drift(split.train, current, features, settings)
    second = check_drift(split.train, current, features, settings)
    assert json.dumps(first, sort_keys=True, default=str) == json.dumps(second, sort_keys=True, default=str)
    assert not {key for key in first if "time" in key or key.endswith("_at")}

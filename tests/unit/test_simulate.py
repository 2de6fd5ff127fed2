"""Each simulated drift kind is flagged where it acts and nowhere else; no drift raises no alarm."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from german_credit_scoring.errors import DataError, SettingsError
from german_credit_scoring.monitoring.drift import check_drift, read_current
from german_credit_scoring.monitoring.simulate import KINDS, simulate, to_log_records


@pytest.fixture(scope="module")
def split(settings, features, sample_frame):
    from german_credit_scoring.lifecycle.ingest import prepare

    return prepare(sample_frame, settings, features, "sample")


def run(split, features, settings, kind, rows=20_000, seed=0, **kwargs):
    target, positive = settings.data.target, settings.data.positive_label
    # batches that keep the inputs ("none", "concept") resample the reference itself: no input drift by
    # construction. Resampled from the smaller test split, a many-valued category (45 values, ~11 rows
    # each) carries that split's sampling noise into 100,000 rows, which is a difference, not an alarm.
    base = split.train if kind in NO_INPUT_DRIFT else split.test
    sim = simulate(base, kind, features, target, positive, rows=rows, seed=seed, **kwargs)
    return sim, check_drift(split.train, sim.frame, features, settings)


NO_INPUT_DRIFT = ("none", "concept")


def test_simulation_is_seeded(split, features, settings):
    target, positive = settings.data.target, settings.data.positive_label
    one = simulate(split.test, "covariate", features, target, positive, rows=500, seed=4).frame
    two = simulate(split.test, "covariate", features, target, positive, rows=500, seed=4).frame
    other = simulate(split.test, "covariate", features, target, positive, rows=500, seed=5).frame
    assert one.equals(two)
    assert not one.equals(other)


def chosen_columns(split, features, choice):
    """Columns picked from the project's own contract (the sample's names mean nothing to other data)."""

    def by_values(group):  # most distinct values first: a shift shows
        return sorted((f.name for f in group), key=lambda name: -split.train[name].nunique())

    if choice == "two numeric, one categorical":
        return by_values(features.numeric)[:2] + by_values(features.categorical)[:1]
    if choice == "two categorical":
        return by_values(features.categorical)[:2]
    return None  # the simulator's default: first numeric and first categorical model input


@pytest.mark.parametrize(
    ("kind", "choice"),
    [
        ("covariate", "default"),
        ("covariate", "two numeric, one categorical"),
        ("new_categories", "default"),
        ("new_categories", "two categorical"),
    ],
)
def test_feature_drift_is_flagged_on_the_touched_features_only(split, features, settings, kind, choice):
    if kind == "new_categories" and not features.categorical:
        pytest.skip("this project's contract has no categorical feature to give new categories")
    sim, result = run(split, features, settings, kind, columns=chosen_columns(split, features, choice))
    assert sim.touched
    assert sorted(result["drifted_features"]) == sorted(sim.touched)
    assert result["verdict"] == "drift"
    if kind == "new_categories":
        for name in sim.touched:
            row = next(r for r in result["features"] if r["name"] == name)
            assert all(value.startswith(f"new_{name}_") for value in row["unseen_categories"])


def test_prior_shift_is_flagged_on_the_label_not_on_the_features(split, features, settings):
    sim, result = run(split, features, settings, "prior")
    assert sim.touched == [settings.data.target]
    assert result["target"]["drifted"]
    # inputs are only resampled, so a feature can move only as far as it goes with the label
    labelled = pd.concat([split.train, split.test])
    assert set(result["drifted_features"]) <= set(label_dependent(labelled, features, settings))
    assert result["verdict"] == "drift"


def label_dependent(frame, features, settings) -> list[str]:
    """Features not independent of the label (p < 0.05: two-sample KS between the classes for a numeric
    column, chi-square for the others): only these can move when the label's prior shifts. Any
    dependence counts, however weak: 20,000 resampled rows show small ones."""
    from scipy.stats import chi2_contingency, ks_2samp

    # at the simulation's size: a many-valued category's weak dependence on the label shows in 20,000
    # resampled rows (as the drift check sees it) but not in a 2,000-row table of 45 x 2 cells
    if len(frame) < 20_000:
        frame = frame.sample(n=20_000, replace=True, random_state=0)
    positive = frame[settings.data.target].astype(str) == str(settings.data.positive_label)
    found = []
    for feature in features.features:
        values = frame[feature.name]
        if feature.is_numeric and values.nunique() > 10:
            present = values.notna()
            p_value = ks_2samp(values[present & positive], values[present & ~positive]).pvalue
        else:
            counts = pd.crosstab(values.astype(object).where(values.notna(), "(missing)"), positive)
            if counts.shape[0] < 2 or counts.shape[1] < 2:
                continue
            p_value = chi2_contingency(counts).pvalue
        if p_value < 0.05:
            found.append(feature.name)
    return found


def test_concept_drift_keeps_the_inputs_and_flips_labels(split, features, settings):
    sim, result = run(split, features, settings, "concept")
    assert sim.touched == [settings.data.target]
    assert result["drifted_features"] == []
    baseline = simulate(
        split.train, "none", features, settings.data.target, settings.data.positive_label, rows=20_000, seed=0
    ).frame
    assert (sim.frame[settings.data.target] != baseline[settings.data.target]).mean() > 0.2


def test_no_drift_batch_raises_no_alarm_over_30_seeds_at_100k_rows(split, features, settings):
    false_alarms = {}
    for seed in range(30):
        _, result = run(split, features, settings, "none", rows=100_000, seed=seed)
        flagged = result["drifted_features"] + (["target"] if result["target"]["drifted"] else [])
        if flagged:
            false_alarms[seed] = flagged
    assert false_alarms == {}


def test_unknown_kind_or_column_is_a_clear_error(split, features, settings):
    target, positive = settings.data.target, settings.data.positive_label
    with pytest.raises(SettingsError, match="unknown drift kind"):
        simulate(split.test, "sideways", features, target, positive)
    with pytest.raises(DataError, match="nope"):
        simulate(split.test, "covariate", features, target, positive, columns=["nope"])


def test_log_shape_round_trips_through_the_drift_reader(split, features, settings, tmp_path):
    sim = simulate(split.test, "none", features, settings.data.target, settings.data.positive_label, rows=50)
    records = to_log_records(sim.frame, features, settings.data.target, probabilities=[0.25] * 50)
    assert set(records[0]) == {
        "request_id",
        "timestamp",
        "model_version",
        "inputs",
        "outputs",
        settings.data.target,
    }
    assert set(records[0]["inputs"]) == set(features.names)
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    frame, _ = read_current(path, settings.data.target)
    assert len(frame) == 50
    assert frame[features.names].astype(str).equals(sim.frame[features.names].astype(str))
    assert (frame[settings.data.target] == sim.frame[settings.data.target]).all()


def test_every_kind_is_covered():
    assert set(KINDS) == {"none", "covariate", "prior", "new_categories", "concept"}

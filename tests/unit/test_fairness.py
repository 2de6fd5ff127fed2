"""Our vectorised fairness metrics agree with fairlearn, number for number."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from german_credit_scoring.errors import DataError
from german_credit_scoring.lifecycle.fairness import (
    GROUP_PREFIX,
    SUMMARY_METRICS,
    attribute_fairness,
    fairness_report,
    group_rates,
    render_markdown,
)


def random_predictions(seed: int, n: int = 5000) -> pd.DataFrame:
    """Several groups of different sizes and base rates, one with no positives, one with no negatives."""
    rng = np.random.default_rng(seed)
    groups = rng.choice(["a", "b", "c", "d", "e"], size=n, p=[0.4, 0.3, 0.2, 0.07, 0.03])
    base = pd.Series(groups).map({"a": 0.3, "b": 0.5, "c": 0.2, "d": 0.0, "e": 1.0}).to_numpy()
    y = (rng.random(n) < base).astype(int)
    score = np.clip(0.4 * y + rng.random(n) * 0.7, 0, 1)
    decision = (score > 0.45).astype(int)
    return pd.DataFrame(
        {"y_true": y, "decision": decision, "group__g": groups, "group__h": rng.integers(0, 3, n)}
    )


def fairlearn_frame(frame: pd.DataFrame, column: str) -> MetricFrame:
    return MetricFrame(
        metrics={"sr": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate, "n": count},
        y_true=frame["y_true"],
        y_pred=frame["decision"],
        sensitive_features=frame[column].astype(str),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("column", ["group__g", "group__h"])
def test_every_number_matches_fairlearn(seed, column):
    # given random decisions over several groups (one without positives, one without negatives)
    frame = random_predictions(seed)
    reference = fairlearn_frame(frame, column).by_group
    kwargs = {"sensitive_features": frame[column].astype(str)}
    y, d = frame["y_true"], frame["decision"]

    # when we compute the fairness of the attribute
    ours = attribute_fairness(y, d, frame[column])

    # then the groups, per-group rates and summaries are fairlearn's
    assert sorted(ours["groups"]) == sorted(reference.index.astype(str))
    for group, row in reference.iterrows():
        mine = ours["groups"][str(group)]
        assert mine["n"] == row["n"]
        assert mine["selection_rate"] == pytest.approx(row["sr"], abs=1e-12)
        for key, theirs in (("true_positive_rate", row["tpr"]), ("false_positive_rate", row["fpr"])):
            if mine[key] is None:  # undefined: fairlearn (via sklearn normalize="true") reports 0
                assert theirs == 0.0
            else:
                assert mine[key] == pytest.approx(theirs, abs=1e-12)
    assert ours["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, d, **kwargs)
    )
    assert ours["demographic_parity_ratio"] == pytest.approx(demographic_parity_ratio(y, d, **kwargs))
    assert ours["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, d, **kwargs))
    differences = fairlearn_frame(frame, column).difference()
    assert ours["true_positive_rate_difference"] == pytest.approx(differences["tpr"])
    assert ours["false_positive_rate_difference"] == pytest.approx(differences["fpr"])


def test_groups_without_positives_or_negatives_are_null_and_listed():
    # given a group with no actual positives (d) and one with no actual negatives (e)
    frame = random_predictions(7)

    # when
    result = attribute_fairness(frame["y_true"], frame["decision"], frame["group__g"])

    # then their undefined rates are null (not a misleading 0) and the groups are named
    assert result["groups"]["d"]["true_positive_rate"] is None
    assert result["groups"]["d"]["false_positive_rate"] is not None
    assert result["groups"]["e"]["false_positive_rate"] is None
    assert result["groups_without_positives"] == ["d"]
    assert result["groups_without_negatives"] == ["e"]
    # and the equalized odds difference still counts them as 0, as fairlearn does
    assert result["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(frame["y_true"], frame["decision"], sensitive_features=frame["group__g"])
    )


def test_hand_computed_example():
    # given two groups with known counts
    y = [1, 1, 0, 0, 1, 0, 0, 0]
    d = [1, 0, 1, 0, 1, 1, 1, 0]
    g = ["x", "x", "x", "x", "y", "y", "y", "y"]

    # when
    rates = group_rates(y, d, g)
    summary = attribute_fairness(y, d, g)

    # then x: sr 2/4, tpr 1/2, fpr 1/2; y: sr 3/4, tpr 1, fpr 2/3
    assert rates.loc["x", "selection_rate"] == 0.5
    assert rates.loc["y", "true_positive_rate"] == 1.0
    assert rates.loc["y", "false_positive_rate"] == pytest.approx(2 / 3)
    assert summary["demographic_parity_difference"] == pytest.approx(0.25)
    assert summary["demographic_parity_ratio"] == pytest.approx(0.5 / 0.75)
    assert summary["equalized_odds_difference"] == pytest.approx(0.5)


def test_nobody_selected_gives_an_undefined_ratio_like_fairlearn():
    y, d, g = [1, 0, 1, 0], [0, 0, 0, 0], ["a", "a", "b", "b"]
    ours = attribute_fairness(y, d, g)
    assert ours["demographic_parity_ratio"] is None
    assert math.isnan(demographic_parity_ratio(y, d, sensitive_features=g))
    assert ours["demographic_parity_difference"] == 0.0


def test_missing_group_values_form_their_own_group():
    result = attribute_fairness([1, 0, 1], [1, 0, 0], ["a", None, np.nan])
    assert result["groups"]["missing"]["n"] == 2


def test_report_names_missing_columns_and_bad_labels():
    frame = random_predictions(0, n=50)
    with pytest.raises(DataError, match="group__age"):
        fairness_report(frame, ["g", "age"], source="data/predictions/test.parquet")
    frame.loc[0, "decision"] = 2
    with pytest.raises(DataError, match="decision"):
        fairness_report(frame, ["g"])
    with pytest.raises(DataError, match="empty"):
        fairness_report(frame.iloc[:0], ["g"])


def test_report_covers_every_attribute_and_renders_one_table_per_attribute():
    # given predictions with two protected attributes
    frame = random_predictions(3, n=400).rename(columns={"group__g": GROUP_PREFIX + "sex"})

    # when
    result = fairness_report(frame, ["sex", "h"])
    text = render_markdown(result, len(frame))

    # then
    assert set(result) == {"sex", "h"}
    assert all(metric in result["sex"] for metric in SUMMARY_METRICS)
    assert "### `sex`" in text and "### `h`" in text
    assert text.count("| Group | n |") == 2
    assert "No actual positives in d" in text
    for line in text.splitlines():
        if line.startswith("|"):
            assert line.endswith("|")


def test_no_protected_attributes_says_so():
    assert "not assessed" in render_markdown({}, 10)


@pytest.mark.timeout(60)
def test_a_million_predictions_in_well_under_five_seconds():
    import time

    rng = np.random.default_rng(0)
    n = 1_000_000
    frame = pd.DataFrame(
        {
            "y_true": rng.integers(0, 2, n),
            "decision": rng.integers(0, 2, n),
            "group__a": rng.choice(["under_25", "25_and_over"], n),
            "group__b": rng.choice([f"g{i}" for i in range(50)], n),
        }
    )
    start = time.perf_counter()
    fairness_report(frame, ["a", "b"])
    assert time.perf_counter() - start < 2.5

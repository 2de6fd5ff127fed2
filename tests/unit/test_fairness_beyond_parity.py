"""Fairness beyond parity: intervals that cover, calibration per group, proxies, and a gate that
judges the interval's end so that a small group does not decide on noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from german_credit_scoring.contract import FeatureDefinition, FeatureSet
from german_credit_scoring.explain.proxy import proxy_analysis
from german_credit_scoring.lifecycle import gate
from german_credit_scoring.lifecycle.fairness import (
    CALIBRATION_METRIC,
    attribute_fairness,
    group_calibration,
    wilson,
)
from german_credit_scoring.settings import FairnessSettings, ProxySettings


def test_wilson_interval_covers_the_true_rate_at_its_level():
    # given many binomial samples of 30 trials at p = 0.3
    rng = np.random.default_rng(0)
    k = rng.binomial(30, 0.3, size=4000)
    # when we compute 95% Wilson intervals
    low, high = wilson(k, np.full_like(k, 30), 0.95)
    # then about 95% of them contain 0.3, and none is outside [0, 1]
    coverage = np.mean((low <= 0.3) & (high >= 0.3))
    assert 0.92 <= coverage <= 0.98
    assert low.min() >= 0 and high.max() <= 1
    # and an empty group has no interval
    assert np.isnan(wilson([0], [0])[0]).all()


def decisions(n_a: int, n_b: int, rate_a: float, rate_b: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = np.array(["a"] * n_a + ["b"] * n_b)
    d = np.concatenate([rng.random(n_a) < rate_a, rng.random(n_b) < rate_b]).astype(int)
    y = rng.integers(0, 2, n_a + n_b)
    return pd.DataFrame({"y": y, "d": d, "g": groups})


def test_summary_interval_is_wide_for_a_small_group_and_narrow_for_a_large_one():
    small = decisions(30, 300, 0.45, 0.60)
    large = decisions(3000, 3000, 0.45, 0.60)
    results = [attribute_fairness(f["y"], f["d"], f["g"]) for f in (small, large)]
    widths = []
    for result in results:
        ci = result["intervals"]["demographic_parity_difference"]
        assert ci["low"] <= result["demographic_parity_difference"] <= ci["high"]
        widths.append(ci["high"] - ci["low"])
    assert widths[0] > 3 * widths[1]


def policy_check(result: dict, interval: str) -> gate.Check:
    (check,) = gate.fairness_checks(
        {"g": result}, {"demographic_parity_difference": 0.10}, {}, interval=interval
    )
    return check


def test_gate_on_the_favourable_end_lets_a_small_noisy_group_pass_but_not_a_clear_gap():
    # given a 30-row group whose observed gap is above the limit, and the same gap on 3000 rows each
    small = attribute_fairness(*decisions(30, 300, 0.45, 0.62, seed=3)[["y", "d", "g"]].T.to_numpy())
    large = attribute_fairness(*decisions(3000, 3000, 0.45, 0.62, seed=3)[["y", "d", "g"]].T.to_numpy())
    assert small["demographic_parity_difference"] > 0.10
    # when the gate judges the point estimate, both fail
    assert not policy_check(small, "estimate").passed
    assert not policy_check(large, "estimate").passed
    # when it gives the benefit of the doubt, the noisy small group passes, the clear gap still fails
    assert policy_check(small, "benefit_of_doubt").passed
    failed = policy_check(large, "benefit_of_doubt")
    assert not failed.passed
    # and the detail says which groups and how much
    assert "in a (n=3000)" in failed.detail and "in b (n=3000)" in failed.detail
    assert "low end" in failed.detail
    # burden of proof is at least as strict as the estimate
    assert policy_check(large, "burden_of_proof").value >= large["demographic_parity_difference"]


def test_calibration_per_group_finds_the_miscalibrated_group_and_its_gap():
    rng = np.random.default_rng(1)
    n = 20_000
    groups = rng.choice(["fair", "off"], size=n)
    p = rng.uniform(0.05, 0.7, size=n)
    true_p = np.where(groups == "off", np.clip(p + 0.2, 0, 1), p)
    y = (rng.random(n) < true_p).astype(int)
    result = group_calibration(y, p, groups, bins=10, min_rows=30)
    assert result["worst_group"] == "off"
    assert result[CALIBRATION_METRIC] == pytest.approx(0.2, abs=0.02)
    assert result["groups"]["fair"]["calibration_error"] < 0.03
    gaps = [b["gap"] for b in result["groups"]["off"]["bins"] if b["judged"]]
    assert np.mean(gaps) == pytest.approx(0.2, abs=0.03)
    assert result["interval"]["low"] <= result["interval"]["high"]


def test_calibration_is_reported_with_the_attribute_and_the_gate_can_bound_it():
    rng = np.random.default_rng(2)
    n = 4000
    groups = rng.choice(["x", "y"], size=n)
    p = rng.uniform(0, 1, size=n)
    y = (rng.random(n) < np.where(groups == "y", p * 0.5, p)).astype(int)
    result = attribute_fairness(y, (p > 0.5).astype(int), groups, scores=p, settings=FairnessSettings())
    assert result["calibration"]["worst_group"] == "y"
    (check,) = gate.fairness_checks({"g": result}, {CALIBRATION_METRIC: 0.1}, {})
    assert not check.passed and "worst calibrated group y" in check.detail


def proxy_frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, FeatureSet]:
    rng = np.random.default_rng(seed)
    group = rng.choice(["p", "q"], size=n)
    frame = pd.DataFrame(
        {
            "title": np.where(group == "p", "mr", "ms"),  # carries the group exactly
            "noise": rng.normal(size=n),
            "colour": rng.choice(["red", "blue"], size=n),
            "grp": group,
        }
    )
    features = FeatureSet(
        features=[
            FeatureDefinition(name="title", dtype="category", allowed_values=["mr", "ms"]),
            FeatureDefinition(name="noise", dtype="float"),
            FeatureDefinition(name="colour", dtype="category", allowed_values=["blue", "red"]),
            FeatureDefinition(name="grp", dtype="category", allowed_values=["p", "q"], sensitive=True),
        ]
    )
    return frame, features


def test_proxy_analysis_finds_the_input_that_carries_the_attribute():
    frame, features = proxy_frame(600)
    result = proxy_analysis(frame, features, frame["grp"], ProxySettings(folds=5, top_features=3))
    assert result["proxy_auc"] > 0.99
    assert result["top_features"][0]["feature"] == "title"
    assert {c["feature"] for c in result["top_features"]} == {"title", "noise", "colour"}  # never grp


def test_proxy_analysis_without_a_carrier_is_near_chance():
    frame, features = proxy_frame(600, seed=1)
    frame = frame.drop(columns="title")
    features = FeatureSet(features=[f for f in features.features if f.name != "title"])
    result = proxy_analysis(frame, features, frame["grp"], ProxySettings(folds=5))
    assert result["interval"]["low"] < 0.5 + 0.05 and result["proxy_auc"] < 0.6


def test_proxy_analysis_with_one_usable_group_says_so():
    frame, features = proxy_frame(40)
    groups = pd.Series(["p"] * 38 + ["q"] * 2)
    result = proxy_analysis(frame, features, groups, ProxySettings(folds=5))
    assert result["proxy_auc"] is None and result["groups_left_out"] == ["q"]


def test_calibration_and_proxy_bounds_are_check_kinds_a_risk_tier_can_require():
    summary = {"max_group_calibration_error": 0.3, "proxy_auc": 0.95, "demographic_parity_difference": 0.1}
    checks = gate.fairness_checks(
        {"sex": summary},
        {"max_group_calibration_error": 0.1, "proxy_auc": 0.9, "demographic_parity_difference": 0.2},
        {},
    )
    kinds = {check.name: (check.kind, check.passed) for check in checks}
    assert kinds == {
        "max_group_calibration_error[sex]": ("calibration", False),
        "proxy_auc[sex]": ("proxy", False),
        "demographic_parity_difference[sex]": ("fairness", True),
    }
    from german_credit_scoring.governance.policy import CHECK_KINDS

    assert {"calibration", "proxy"} <= set(CHECK_KINDS)

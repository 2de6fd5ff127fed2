"""Retraining triggers: each fires on its own evidence, intervals (not points) decide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from german_credit_scoring.monitoring.labels import Interval, PerformanceReport, WindowPerformance
from german_credit_scoring.monitoring.triggers import evaluate
from german_credit_scoring.settings import TriggerSettings

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _window(
    auc: Interval, labelled: int, parity: Interval | None = None, group: str = "g"
) -> WindowPerformance:
    none = Interval(estimate=None, low=None, high=None)
    return WindowPerformance(
        start="2026-05-01",
        end="2026-05-30",
        predictions=labelled,
        labelled=labelled,
        coverage=1.0,
        positives=labelled // 3,
        roc_auc=auc,
        recall=none,
        expected_cost=none,
        parity_difference={group: parity} if parity else {},
    )


def _performance(*windows: WindowPerformance) -> PerformanceReport:
    from german_credit_scoring.monitoring.labels import OutcomeCounts

    return PerformanceReport(
        generated_at=NOW.isoformat(),
        store="s",
        classes=["a", "b"],
        positive_label="a",
        confidence=0.95,
        counts=OutcomeCounts(),
        windows=list(windows),
    )


def _by_name(report):
    return {t.name: t for t in report.triggers}


def test_nothing_fires_without_evidence():
    report = evaluate(TriggerSettings(), now=NOW)
    assert not report.fired and report.fired_names == []
    assert {t.name for t in report.triggers} == {
        "feature_drift",
        "prediction_drift",
        "performance_drop",
        "fairness_drop",
        "new_labelled_rows",
        "model_age",
    }


def test_drift_fires_with_the_drifted_features_and_window():
    drift = {
        "verdict": "drift",
        "drifted_features": ["f1", "f2"],
        "prediction": {"drifted": True, "psi": 0.4, "current_source": "logged probability"},
        "thresholds": {"prediction_psi_threshold": 0.2},
        "window": {"start": "2026-05-25", "end": "2026-05-31", "model_version": "v1"},
    }
    found = _by_name(evaluate(TriggerSettings(), drift=drift, now=NOW))
    assert found["feature_drift"].fired and found["feature_drift"].observed == 2
    assert "f1, f2" in found["feature_drift"].detail and "2026-05-25" in found["feature_drift"].window
    assert found["prediction_drift"].fired and found["prediction_drift"].observed == 0.4
    # too little data is no evidence either way
    quiet = _by_name(evaluate(TriggerSettings(), drift={"verdict": "insufficient_data"}, now=NOW))
    assert not quiet["feature_drift"].fired and quiet["feature_drift"].observed is None


def test_a_performance_drop_fires_only_when_the_whole_interval_is_below_the_limit():
    settings = TriggerSettings(max_performance_drop=0.05)
    baseline = {"roc_auc": 0.77}
    wide = _performance(_window(Interval(estimate=0.6, low=0.4, high=0.8), labelled=30))
    narrow = _performance(_window(Interval(estimate=0.6, low=0.57, high=0.63), labelled=3000))
    assert not _by_name(evaluate(settings, performance=wide, baseline=baseline, now=NOW))[
        "performance_drop"
    ].fired
    found = _by_name(evaluate(settings, performance=narrow, baseline=baseline, now=NOW))["performance_drop"]
    assert found.fired and abs(found.threshold - 0.72) < 1e-9 and found.window == "2026-05-01 to 2026-05-30"


def test_fairness_age_and_label_volume():
    settings = TriggerSettings(max_fairness_gap=0.2, min_new_labelled_rows=100, max_model_age_days=30)
    unfair = _performance(
        _window(Interval(estimate=0.7, low=0.6, high=0.8), 150, Interval(estimate=0.4, low=0.3, high=0.5))
    )
    found = _by_name(evaluate(settings, performance=unfair, packaged_at=NOW - timedelta(days=31), now=NOW))
    assert found["fairness_drop"].fired and found["fairness_drop"].observed == 0.4
    assert found["new_labelled_rows"].fired and found["new_labelled_rows"].observed == 150
    assert found["model_age"].fired and found["model_age"].observed == 31.0
    # labels from before the model was packaged are not new to it
    later = _by_name(evaluate(settings, performance=unfair, packaged_at=NOW - timedelta(days=1), now=NOW))
    assert not later["new_labelled_rows"].fired and not later["model_age"].fired
    switched_off = evaluate(TriggerSettings(max_fairness_gap=None, max_model_age_days=None), now=NOW)
    assert {t.name for t in switched_off.triggers}.isdisjoint({"fairness_drop", "model_age"})


def test_the_report_names_the_fired_triggers_in_markdown():
    drift = {"verdict": "drift", "drifted_features": ["f1"]}
    report = evaluate(TriggerSettings(), drift=drift, now=NOW)
    assert report.fired_names == ["feature_drift"]
    assert "Retraining triggered by: feature_drift" in report.markdown()

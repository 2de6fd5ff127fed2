"""Explanations in review: global importance ranks what drives the model, the worst cases are the
costliest errors with reasons toward the wrong side, and an unexplainable model says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from german_credit_scoring.contract import FeatureDefinition, FeatureSet
from german_credit_scoring.data import model_frame
from german_credit_scoring.explain.global_importance import ExplainReport, explain_model, importance_plot
from german_credit_scoring.lifecycle.transform import build_pipeline
from german_credit_scoring.settings import CostMatrix

FEATURES = FeatureSet(
    features=[
        FeatureDefinition(name="strong", dtype="float", description="drives the outcome"),
        FeatureDefinition(name="weak", dtype="float"),
        FeatureDefinition(name="noise", dtype="float"),
        FeatureDefinition(name="kind", dtype="category", allowed_values=["a", "b", "c"]),
        FeatureDefinition(name="group", dtype="category", allowed_values=["x", "y"], sensitive=True),
    ]
)


def data(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "strong": rng.normal(size=n),
            "weak": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "kind": rng.choice(["a", "b", "c"], size=n),
            "group": rng.choice(["x", "y"], size=n),
        }
    )
    logit = 2.0 * frame["strong"] + 0.5 * frame["weak"] + frame["kind"].map({"a": 0.0, "b": 0.3, "c": -0.3})
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, labels


@pytest.fixture(scope="module")
def fitted():
    frame, labels = data()
    pipeline = build_pipeline(FEATURES, "logistic_regression", {"max_iter": 1000}, 0, include_sensitive=True)
    pipeline.fit(model_frame(frame, FEATURES, True), labels)
    return pipeline, frame, labels


FN_DEARER = CostMatrix(false_negative=5, false_positive=1)


def report(pipeline, frame, labels, cost=FN_DEARER, k=6):
    scores = pipeline.predict_proba(model_frame(frame, FEATURES, True))[:, 1]
    return explain_model(pipeline, frame, FEATURES, True, labels, scores, 1 / 6, cost, "v1", k, 3), scores


def test_importance_ranks_the_driving_input_first_and_noise_last(fitted):
    explained, _ = report(*fitted)
    order = [row.feature for row in explained.importance]
    assert order[0] == "strong"
    assert order.index("weak") < order.index("noise")
    assert sum(row.share for row in explained.importance) == pytest.approx(1.0)
    assert importance_plot(explained)[0]["feature"] == "strong"


def test_worst_cases_are_the_costliest_errors_with_reasons_toward_the_wrong_side(fitted):
    pipeline, frame, labels = fitted
    explained, scores = report(pipeline, frame, labels)
    cases = explained.worst_cases
    assert len(cases) == 6
    # a missed positive costs 5, a false alarm 1: every case is a missed positive, surest first
    assert {c.error for c in cases} == {"false_negative"}
    assert [c.score for c in cases] == sorted(c.score for c in cases)
    assert all(labels[c.row] == 1 and scores[c.row] < 1 / 6 for c in cases)
    for case in cases:
        assert case.reasons and all(r.contribution < 0 for r in case.reasons)  # pushed toward "no"
        assert "group" not in {r.feature for r in case.reasons}  # sensitive: never a reason
    # with false alarms the dearer error, the cases turn around
    flipped, _ = report(pipeline, frame, labels, CostMatrix(false_negative=1, false_positive=5))
    assert {c.error for c in flipped.worst_cases} == {"false_positive"}
    assert all(r.contribution > 0 for c in flipped.worst_cases for r in c.reasons)


def test_the_record_round_trips_and_an_unexplainable_model_says_why(fitted, tmp_path):
    explained, _ = report(*fitted)
    explained.write(tmp_path / "explain.json")
    assert ExplainReport.read(tmp_path / "explain.json") == explained

    class Opaque:
        def __getitem__(self, index):
            return self

    frame, labels = data(50)
    result = explain_model(Opaque(), frame, FEATURES, True, labels, np.zeros(50), 0.5, CostMatrix(), "v2")
    assert result.unavailable and result.importance == [] and result.rows == 50

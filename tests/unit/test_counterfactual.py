"""Counterfactual hints: one input changed within the contract turns a record's decision.

Models are fitted here on the project's own data (whatever it is), as the service would load them; every
hint is checked against the fitted scikit-learn pipeline called on the changed record through pandas, not
through the scorer's fast path the hints were searched with.
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest

from german_credit_scoring import data
from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.explain.counterfactual import (
    FLOAT_RESOLUTION,
    NONE_TURNS,
    NOTHING_TO_CHANGE,
    Counterfactuals,
    changeable,
)
from german_credit_scoring.lifecycle import transform
from german_credit_scoring.lifecycle.scoring import Scorer

MODEL_TYPES = ["logistic_regression", "hist_gradient_boosting"]
ROWS = 40  # records hinted per model
BRUTE_FORCE_MAX = 50_000  # whole numbers an int input's range may hold for the exhaustive check


def fitted(settings, features, sample_frame, model_type: str, hyperparameters: dict):
    frame = data.model_frame(sample_frame, features)
    labels = data.positive_indicator(sample_frame[settings.data.target], settings.data.positive_label)
    return transform.build_pipeline(features, model_type, hyperparameters, settings.model.seed).fit(
        frame, labels
    )


def scorer_of(pipeline, settings, features: FeatureSet) -> Scorer:
    return Scorer(
        pipeline=pipeline,
        features=features,
        include_sensitive=settings.data.use_protected_as_features,
        threshold=settings.decision_threshold,
        positive_label=str(settings.data.positive_label),
        negative_label=f"not_{settings.data.positive_label}",
        version="unit",
    )


@pytest.fixture(scope="module", params=MODEL_TYPES)
def model(request, settings, features, sample_frame):
    model_type = request.param
    hyperparameters = settings.model.hyperparameters
    if model_type != settings.model.type:
        hyperparameters = getattr(settings.model, model_type).model_dump()
    pipeline = fitted(settings, features, sample_frame, model_type, hyperparameters)
    return model_type, pipeline, scorer_of(pipeline, settings, features)


def with_contract(scorer: Scorer, features: FeatureSet) -> Scorer:
    """The same loaded scorer under another contract (its explainer tables are not built again)."""
    other = copy.copy(scorer)
    other.features = features
    return other


def columns_of(scorer: Scorer, frame) -> dict[str, list]:
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return {name: [_native(r.get(name)) for r in records] for name in scorer.input_names}


def _native(value):
    return value.item() if isinstance(value, np.generic) else value


def pipeline_probability(pipeline, scorer: Scorer, record: dict) -> float:
    """The fitted pipeline's own probability of one record (pandas, scikit-learn's transformer)."""
    return float(pipeline.predict_proba(scorer.frame({k: [v] for k, v in record.items()}))[0, 1])


def near_threshold(scorer: Scorer, frame, rows: int = ROWS):
    """The ``rows`` records whose probability lies nearest the threshold, both decisions (whatever the
    data's balance): the ones a change of one input can turn."""
    probabilities = np.asarray(scorer.column_probabilities(columns_of(scorer, frame)))
    order = np.argsort(np.abs(probabilities - scorer.threshold), kind="stable")[:rows]
    return frame.iloc[np.sort(order)]


def hinted(scorer: Scorer, sample_frame, top_k: int = 3, hints_for: str = "any"):
    rows = near_threshold(scorer, sample_frame)
    columns = columns_of(scorer, rows)
    scores = scorer.score_columns(columns)
    hints = Counterfactuals(scorer, top_k, hints_for).hints(columns, scores.probabilities, scores.decisions)
    return columns, scores, hints


def test_every_hint_turns_the_decision_and_stays_within_the_contract(model, settings, features, sample_frame):
    model_type, pipeline, scorer = model
    columns, scores, hints = hinted(scorer, sample_frame)
    given = [h for record in hints for h in record.hints]
    assert given, f"{model_type}: no record of {ROWS} got a hint"
    # every hinted record, changed as its hint says, scored by the fitted pipeline through pandas at once
    changed_records = [
        {**{name: columns[name][row] for name in scorer.input_names}, hint.feature: hint.suggested}
        for row, record in enumerate(hints)
        for hint in record.hints
    ]
    by_pipeline = iter(
        pipeline.predict_proba(
            scorer.frame({n: [r[n] for r in changed_records] for n in scorer.input_names})
        )[:, 1]
    )
    for row, record in enumerate(hints):
        assert record is not None  # hints_for "any": every record is hinted or says why not
        assert len(record.hints) <= 3
        assert len({h.feature for h in record.hints}) == len(record.hints)  # one hint per input
        assert [h.effort for h in record.hints] == sorted(h.effort for h in record.hints)
        assert (record.unavailable is None) == bool(record.hints)
        original = {name: columns[name][row] for name in scorer.input_names}
        for hint in record.hints:
            feature = features.get(hint.feature)
            # never an input the person cannot or may not change
            assert changeable(feature) is None
            assert hint.value == original[hint.feature] and hint.suggested != hint.value
            if feature.is_numeric:
                assert feature.min <= hint.suggested <= feature.max
                if feature.dtype == "int":
                    assert type(hint.suggested) is int
                assert math.isclose(
                    hint.effort, abs(hint.suggested - hint.value) / (feature.max - feature.min), abs_tol=1e-12
                )
            else:
                assert hint.suggested in feature.allowed_values and hint.effort == 1.0
            # the model itself, through pandas: the stated probability, and the other decision
            changed = {**original, hint.feature: hint.suggested}
            probability = float(next(by_pipeline))
            assert probability == pytest.approx(hint.probability, abs=1e-12)
            # and to the last bit what the service answers for the changed record alone
            alone = scorer.column_probabilities({name: [value] for name, value in changed.items()})
            assert hint.probability == float(alone[0])
            assert (probability >= scorer.threshold) != (scores.decisions[row] == scorer.positive_label)
            assert hint.decision != scores.decisions[row]


def test_a_numeric_hint_is_the_closest_turning_value_of_a_monotone_model(settings, features, sample_frame):
    """A logistic regression's score is monotone in each numeric input: the turning values in one
    direction start at one boundary, which the hint must be (whole numbers searched exhaustively)."""
    pipeline = fitted(
        settings,
        features,
        sample_frame,
        "logistic_regression",
        settings.model.logistic_regression.model_dump(),
    )
    scorer = scorer_of(pipeline, settings, features)
    columns, scores, hints = hinted(scorer, sample_frame, top_k=50)
    checked = 0
    for row, record in enumerate(hints):
        positive = scores.decisions[row] == scorer.positive_label
        original = {name: columns[name][row] for name in scorer.input_names}
        for hint in record.hints:
            feature = features.get(hint.feature)
            if not feature.is_numeric:
                continue
            low, high = feature.min, feature.max
            if feature.dtype == "int" and high - low <= BRUTE_FORCE_MAX:
                values = np.arange(math.ceil(low), math.floor(high) + 1)
                trial = {name: [original[name]] * values.size for name in scorer.input_names}
                trial[hint.feature] = [int(v) for v in values]
                turned = (scorer.column_probabilities(trial) >= scorer.threshold) != positive
                distances = np.abs(values - hint.value)[turned]
                assert abs(hint.suggested - hint.value) == distances.min()
            else:  # a float: one resolution step back towards the record's value does not turn
                step = FLOAT_RESOLUTION * (high - low) * np.sign(hint.value - hint.suggested)
                back = {**original, hint.feature: hint.suggested + step}
                assert (pipeline_probability(pipeline, scorer, back) >= scorer.threshold) == positive
            checked += 1
    if not checked:
        pytest.skip("no numeric input of this contract got a hint")


def test_immutable_inputs_are_never_suggested(model, settings, features, sample_frame):
    _, _, scorer = model
    _, _, hints = hinted(scorer, sample_frame)
    suggested = {h.feature for record in hints for h in record.hints}
    assert suggested
    # given: the data owners mark every input a hint changed as immutable
    marked = FeatureSet(
        features=[f.model_copy(update={"immutable": f.name in suggested}) for f in features.features]
    )
    # when: the same records are hinted again
    _, _, again = hinted(with_contract(scorer, marked), sample_frame)
    # then: none of them is suggested any more
    assert not suggested & {h.feature for record in again for h in record.hints}
    # and when every input is immutable, each record says so
    frozen = FeatureSet(features=[f.model_copy(update={"immutable": True}) for f in features.features])
    _, _, none = hinted(with_contract(scorer, frozen), sample_frame)
    assert {(tuple(r.hints), r.unavailable) for r in none} == {((), NOTHING_TO_CHANGE)}


def test_only_records_with_the_chosen_decision_get_hints(model, settings, features, sample_frame):
    _, _, scorer = model
    for hints_for in ("positive", "negative"):
        _, scores, hints = hinted(scorer, sample_frame, hints_for=hints_for)
        for decision, record in zip(scores.decisions, hints, strict=True):
            wanted = (decision == scorer.positive_label) == (hints_for == "positive")
            assert (record is not None) == wanted
    label = Counterfactuals(scorer, 3, "negative").out_of_scope()
    assert repr(scorer.negative_label) in label and "serving.hints_for" in label


def stub_scorer(features: FeatureSet, probability):
    """A scorer that answers ``probability(columns)`` for any records (the search's only model call)."""
    return SimpleNamespace(
        input_names=[f.name for f in features.features if not f.sensitive],
        features=features,
        threshold=0.5,
        positive_label="yes",
        negative_label="no",
        column_probabilities=probability,
    )


def sample_columns(scorer, sample_frame, rows: int = 5) -> dict[str, list]:
    return columns_of(scorer, sample_frame.head(rows))


def test_a_record_no_single_change_turns_gets_the_reason(features, sample_frame):
    scorer = stub_scorer(features, lambda columns: np.full(len(next(iter(columns.values()))), 0.9))
    columns = sample_columns(scorer, sample_frame)
    hints = Counterfactuals(scorer, 3, "any").hints(columns, [0.9] * 5, ["yes"] * 5)
    assert [(r.hints, r.unavailable) for r in hints] == [([], NONE_TURNS)] * 5


def test_a_failing_model_leaves_the_decision_with_the_reason(features, sample_frame):
    def broken(columns):
        raise RuntimeError("scoring backend unavailable")

    scorer = stub_scorer(features, broken)
    columns = sample_columns(scorer, sample_frame)
    hints = Counterfactuals(scorer, 3, "positive").hints(
        columns, [0.9, 0.1] * 2 + [0.9], ["yes", "no"] * 2 + ["yes"]
    )
    assert [r is None for r in hints] == [False, True, False, True, False]
    assert {r.unavailable for r in hints if r is not None} == {
        "no counterfactual hint: scoring backend unavailable"
    }

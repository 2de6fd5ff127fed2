"""Reason codes of a fairness mixture (fairlearn ``ExponentiatedGradient`` served as ``MixtureClassifier``).

What is explained is the mixture's weighted mean member log-odds m(x) = sum_i w_i f_i(x) / sum_i w_i,
with the ``shap`` package as the oracle on every member; a record where m(x) leans against the
mixture's decision gets no reasons, saying why. Data: the made-up lending set of the mitigation tests,
where gender drives defaults through a proxy, so fairlearn mixes more than one member.
"""

from __future__ import annotations

import numpy as np
import pytest

from german_credit_scoring.data import model_frame
from german_credit_scoring.explain.contributions import (
    ExplanationUnavailable,
    MixtureContributions,
    PipelineExplainer,
    contributions,
    default_baseline,
)
from german_credit_scoring.explain.mitigation import MixtureClassifier, fit_servable
from german_credit_scoring.explain.reasons import phrase
from german_credit_scoring.lifecycle.scoring import Scorer
from german_credit_scoring.lifecycle.transform import build_transformer
from german_credit_scoring.settings import parse_settings
from tests.unit.test_compare_and_mitigation import FEATURES, POSITIVE, biased, settings_for
from tests.unit.test_explain_contributions import assert_never_reasons

MODEL_TYPES = ["logistic_regression", "hist_gradient_boosting"]
SMALL_TREES = {"max_iter": 15, "max_leaf_nodes": 8}  # fairlearn fits a model per iteration: kept quick


def mixture_settings(tmp_path, model_type: str, include_sensitive: bool = False):
    raw = settings_for(tmp_path, mitigation="exponentiated_gradient").model_dump(mode="json")
    raw["model"]["type"] = model_type
    if model_type == "hist_gradient_boosting":
        raw["model"][model_type].update(SMALL_TREES)
    raw["data"]["use_protected_as_features"] = include_sensitive
    return parse_settings(raw)


def fit_mixture(tmp_path, model_type: str, include_sensitive: bool = False, rows: int = 1500):
    settings = mixture_settings(tmp_path, model_type, include_sensitive)
    train = biased(rows, 1)
    transformer = build_transformer(FEATURES, include_sensitive).fit(
        model_frame(train, FEATURES, include_sensitive)
    )
    pipeline = fit_servable(transformer, train, FEATURES, settings, "exponentiated_gradient")
    mixture = pipeline[-1]
    # a real mixture: fairlearn kept more than one member, each with weight > 0
    assert isinstance(mixture, MixtureClassifier)
    assert len(mixture.predictors) > 1 and (np.asarray(mixture.weights) > 0).all()
    return settings, pipeline


def weighted_mean_log_odds(mixture, matrix) -> np.ndarray:
    """m(x), computed here from the members' own decision_function (not the explainer's)."""
    weights = np.asarray(mixture.weights, dtype=float)
    members = np.array([np.ravel(member.decision_function(matrix)) for member in mixture.predictors])
    return weights @ members / weights.sum()


@pytest.fixture(scope="module", params=MODEL_TYPES)
def mixed(request, tmp_path_factory):
    settings, pipeline = fit_mixture(tmp_path_factory.mktemp("mixture"), request.param)
    test = model_frame(biased(600, 2), FEATURES)
    return request.param, settings, pipeline, test


def _scorer(pipeline, settings, include_sensitive: bool = False) -> Scorer:
    return Scorer(
        pipeline,
        FEATURES,
        include_sensitive,
        threshold=settings.decision_threshold,
        positive_label=POSITIVE,
        negative_label="repaid",
        version="t",
    )


def test_mixture_contributions_reproduce_the_weighted_mean_member_log_odds(mixed):
    # given a fitted fairness mixture and rows it has not seen
    model_type, _, pipeline, test = mixed
    mixture = pipeline[-1]
    member_type = "LogisticRegression" if model_type == "logistic_regression" else "HistGradientBoosting"
    assert all(type(member).__name__.startswith(member_type) for member in mixture.predictors)
    # when its rows are explained per input feature
    explainer = PipelineExplainer(pipeline, list(test.columns))
    assert isinstance(explainer.explainer, MixtureContributions)
    matrix = explainer.transformer_matrix(test)
    explanation = explainer.explain(matrix)
    # then base value + contributions is m(x), the weighted mean of the members' log-odds, row by row
    expected = weighted_mean_log_odds(mixture, matrix)
    np.testing.assert_allclose(explanation.margins, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        explanation.base_value + explanation.contributions.sum(axis=1), expected, rtol=0, atol=1e-6
    )
    # and the members disagree (else the weights would not matter), so m(x) is no single member's
    members = np.array([np.ravel(member.decision_function(matrix)) for member in mixture.predictors])
    assert np.abs(members - members[0]).max() > 1e-3
    # the batch API (global importance) explains the same quantity
    base, values = contributions(pipeline, test)
    np.testing.assert_allclose(base + values.sum(axis=1), expected, rtol=0, atol=1e-6)


def test_mixture_contributions_are_the_weighted_shap_values_of_its_members(mixed):
    import shap

    model_type, _, pipeline, test = mixed
    mixture = pipeline[-1]
    explainer = PipelineExplainer(pipeline, list(test.columns))
    matrix = explainer.transformer_matrix(test.head(200))
    weights = np.asarray(mixture.weights, dtype=float) / np.sum(mixture.weights)
    # the oracle: shap on each member, weighted by the mixture's weights
    expected = np.zeros_like(matrix)
    expected_base = 0.0
    for weight, member in zip(weights, mixture.predictors, strict=True):
        if model_type == "logistic_regression":
            # the documented baseline is the background: feature-independent shap.LinearExplainer
            baseline = default_baseline(explainer.transformer)
            oracle = shap.LinearExplainer(member, (baseline, np.zeros((baseline.size, baseline.size))))
        else:
            oracle = shap.TreeExplainer(member)  # path-dependent TreeSHAP, raw (log-odds) output
        expected += weight * np.asarray(oracle.shap_values(matrix))
        expected_base += weight * float(np.ravel(oracle.expected_value)[0])
    np.testing.assert_allclose(explainer.column_contributions(matrix), expected, rtol=0, atol=1e-6)
    assert explainer.base_value == pytest.approx(expected_base, abs=1e-6)
    # per input feature (what reasons are made of)
    grouped = explainer.transformer.group(expected)
    np.testing.assert_allclose(explainer.contributions(matrix), grouped, rtol=0, atol=1e-6)


def test_the_scorer_gives_reasons_only_where_the_members_lean_with_the_mixtures_decision(mixed):
    # given a served mixture and records, some of which its members' mean log-odds lean against
    _, settings, pipeline, test = mixed
    scorer = _scorer(pipeline, settings)
    assert scorer.unexplainable is None and scorer.fast is None  # its score is its own predict_proba
    assert scorer.fast_matrix is not None  # on the verified numpy matrix its explanation reuses
    columns = {name: test[name].tolist() for name in scorer.input_names}
    # when scored with reasons on (as the service and ``mlops score`` do)
    scores = scorer.score_columns(columns, top_k=3)
    as_json = scorer.score_columns(columns, top_k=3, as_json=True)
    # then every decision is the pipeline's own: predict_proba >= threshold
    probabilities = pipeline.predict_proba(test)[:, 1]
    assert scores.probabilities == probabilities.tolist()
    positive = probabilities >= settings.decision_threshold
    assert scores.decisions == [POSITIVE if p else "repaid" for p in positive]
    assert as_json.decisions == scores.decisions
    # and reasons go exactly to the records where m(x) leans the way of the decision
    matrix = np.asarray(pipeline[0].transform(test), dtype=float)
    agree = (weighted_mean_log_odds(pipeline[-1], matrix) > 0) == positive
    assert agree.any() and (~agree).any(), "expected records on both sides"
    _, values = contributions(pipeline, test)
    for row in range(len(test)):
        reasons, why = scores.reasons[row], scores.unexplained[row]
        if not agree[row]:
            assert reasons == [] and as_json.reasons[row] == b"[]"
            assert why and "members disagree with its decision" in why and "no faithful reasons" in why
            continue
        assert why is None
        sign = 1 if positive[row] else -1
        assert len(reasons) == min(3, int((sign * values[row] > 0).sum()))
        pushed = [sign * r["contribution"] for r in reasons]
        assert all(p > 0 for p in pushed) and pushed == sorted(pushed, reverse=True)
        for reason in reasons:
            i = scorer.input_names.index(reason["feature"])
            assert reason["contribution"] == pytest.approx(values[row, i], abs=1e-9)
            assert reason["phrase"] == phrase(FEATURES.get(reason["feature"]))
    assert sum(len(r) > 0 for r in scores.reasons) > 0
    # the service's batched /predict explains decisions made elsewhere the same way
    reasons, missing = scorer.explain(columns, scores.decisions, 3)
    assert reasons == scores.reasons and missing == scores.unexplained


def test_sensitive_features_are_never_a_mixtures_reasons(tmp_path):
    sensitive = [f.name for f in FEATURES.features if f.sensitive]
    for model_type in MODEL_TYPES:
        # given mixtures allowed to use the sensitive feature as an input
        settings, pipeline = fit_mixture(tmp_path / model_type, model_type, include_sensitive=True, rows=1000)
        scorer = _scorer(pipeline, settings, include_sensitive=True)
        assert set(sensitive) <= set(scorer.input_names)
        test = model_frame(biased(400, 3), FEATURES, include_sensitive=True)
        # then it contributes to m(x), but with every feature a reason it is never one
        assert_never_reasons(scorer, pipeline, test, sensitive)


def test_a_mixture_with_a_member_without_an_exact_explainer_still_decides(mixed):
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    # given a mixture one of whose members has no exact explainer
    _, settings, pipeline, test = mixed
    mixture = pipeline[-1]
    matrix = np.asarray(pipeline[0].transform(test), dtype=float)
    tree = DecisionTreeClassifier(max_depth=2).fit(matrix, mixture.predictors[0].predict(matrix))
    members = [*mixture.predictors[:-1], tree]
    odd = MixtureClassifier(members, mixture.weights, mixture.threshold).fit(None, None)
    other = Pipeline([("transform", pipeline[0]), ("model", odd)])
    with pytest.raises(ExplanationUnavailable, match="DecisionTreeClassifier"):
        PipelineExplainer(other, list(test.columns))
    # when scored with reasons on, every record keeps its decision and says why it has none
    scorer = _scorer(other, settings)
    columns = {name: test[name].head(5).tolist() for name in scorer.input_names}
    scores = scorer.score_columns(columns, top_k=3)
    assert scores.probabilities == other.predict_proba(test.head(5))[:, 1].tolist()
    assert scores.reasons == [[]] * 5 and all("DecisionTreeClassifier" in why for why in scores.unexplained)


def test_a_mixtures_worst_cases_list_no_reasons_where_its_members_lean_against_it(mixed):
    # given a served mixture's test records, every error listed
    from german_credit_scoring.explain.global_importance import explain_model
    from german_credit_scoring.settings import CostMatrix

    _, settings, pipeline, test = mixed
    frame = biased(600, 2)
    labels = (frame["outcome"] == POSITIVE).to_numpy().astype(int)
    scores = pipeline.predict_proba(test)[:, 1]
    threshold = settings.decision_threshold
    # when the evaluation's explanation lists its costliest errors
    report = explain_model(
        pipeline, frame, FEATURES, False, labels, scores, threshold, CostMatrix(), "t", k=len(frame)
    )
    # then a case whose members' mean log-odds lean against the mixture's decision has no reasons
    # (as the service serves it), and the others keep theirs
    matrix = pipeline[0].transform(test)
    leaning = (weighted_mean_log_odds(pipeline[-1], matrix) > 0) != (scores >= threshold)
    cases = {case.row: case for case in report.worst_cases}
    withheld = [row for row in cases if leaning[row]]
    assert withheld, "the data must hold an error whose members lean against the mixture"
    assert all(cases[row].reasons == [] for row in withheld)
    assert any(case.reasons for row, case in cases.items() if not leaning[row])

"""Ways forward when the fairness gate refuses a model: fairlearn's mitigations as settings.

``fairness.mitigation`` in params.yaml changes how the candidate is trained; ``fairness.compare_variants``
trains further variants beside it for review (``mlops compare``), so reviewers see cost, AUC and each
fairness figure of every option on the same test rows.

=======================  ======  ==============================================  ===================
method                   stage   what it does                                    servable
=======================  ======  ==============================================  ===================
reweighing               pre     sample weights P(g)P(y)/P(g,y) (Kamiran &        yes (same Pipeline)
                                 Calders): group and outcome independent in the
                                 weighted training data. fairlearn has no
                                 reweighing; the weights are one line of counts.
correlation_remover      pre     fairlearn ``CorrelationRemover``: inputs made    no: needs the
                                 linearly uncorrelated with the protected groups  protected attribute
                                                                                  at prediction time
exponentiated_gradient   in      fairlearn ``ExponentiatedGradient`` with         yes (the mixture is
                                 ``DemographicParity`` or ``EqualizedOdds``       an estimator)
threshold_optimizer      post    fairlearn ``ThresholdOptimizer`` on the          no: thresholds per
                                 candidate's scores: a threshold per group        group need the
                                                                                  attribute; unlawful
                                                                                  in US credit (ECOA/
                                                                                  Reg B disparate
                                                                                  treatment)
=======================  ======  ==============================================  ===================

Groups are the intersection of every protected attribute's ``group__<attribute>`` column.

Reason codes of a served ``exponentiated_gradient`` model: its score is a step function of its
members' hard decisions, so no per-feature contributions add up to it. What is explained instead is
the mixture's weighted mean member log-odds ``m(x) = sum_i w_i f_i(x) / sum_i w_i`` (``f_i``: member
``i``'s ``decision_function``), exactly: base value and contributions are the same weighted mean of
each member's exact ones (``explain.contributions.MixtureContributions``). Reasons are withheld, with
``reasons_unavailable`` saying so, for a record where ``m(x) > 0`` (the members' own decision point)
disagrees with the mixture's decision (its weighted vote): its members disagree with it and no
faithful reasons exist.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.data import model_frame, positive_indicator
from german_credit_scoring.errors import DataError
from german_credit_scoring.lifecycle.transform import build_estimator
from german_credit_scoring.settings import Settings

GROUP_PREFIX = "group__"
SERVABLE = frozenset({"none", "reweighing", "exponentiated_gradient"})
NOTES = {
    "reweighing": "pre-processing: training rows reweighed so group and outcome are independent",
    "correlation_remover": "pre-processing (fairlearn CorrelationRemover); comparison only: "
    "needs the protected attribute at prediction time",
    "exponentiated_gradient": "in-processing (fairlearn ExponentiatedGradient, {constraint})",
    "threshold_optimizer": "post-processing (fairlearn ThresholdOptimizer, {constraint}); comparison "
    "only: group-specific thresholds need the protected attribute, unlawful in US credit (ECOA/Reg B)",
}


def sensitive_frame(frame: pd.DataFrame, settings: Settings, source: str = "data") -> pd.DataFrame:
    """The ``group__`` columns of every protected attribute (fairlearn intersects them)."""
    columns = [GROUP_PREFIX + name for name in settings.data.protected_names]
    if not columns:
        raise DataError("mitigation needs protected attributes: data.protected_attributes is empty")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: columns {missing} are missing; the features stage writes them")
    return frame[columns].astype(str).reset_index(drop=True)


def reweighing_weights(labels: np.ndarray, groups: pd.DataFrame) -> np.ndarray:
    """Kamiran & Calders: w(g, y) = P(g) P(y) / P(g, y), so g and y are independent once weighted."""
    key = groups.astype(str).agg("|".join, axis=1).to_numpy()
    frame = pd.DataFrame({"g": key, "y": np.asarray(labels)})
    n = len(frame)
    p_g = frame["g"].map(frame["g"].value_counts() / n)
    p_y = frame["y"].map(frame["y"].value_counts() / n)
    p_gy = frame.groupby(["g", "y"])["y"].transform("size") / n
    return (p_g * p_y / p_gy).to_numpy(dtype=float)


class MixtureClassifier(ClassifierMixin, BaseEstimator):
    """fairlearn's ExponentiatedGradient result as a deterministic scikit-learn estimator.

    ``predict_proba`` is the probability that fairlearn's randomized classifier decides positive
    (``sum_i weight_i * predictor_i.predict(x)``), rescaled piecewise-linearly so that fairlearn's
    decision point 0.5 lands on ``threshold`` (the project's decision threshold): the service's
    "score >= threshold" then takes the mixture's majority decision, and the model keeps the same
    Pipeline shape as every other candidate.

    It has no ``decision_function`` on purpose: the scorer would take ``expit`` of one as the served
    score. Its explained log-odds m(x) come from ``explain.contributions.MixtureContributions.log_odds``.
    """

    def __init__(self, predictors=None, weights=None, threshold: float = 0.5):
        self.predictors = predictors
        self.weights = weights
        self.threshold = threshold

    def fit(self, X, y):  # fitted by from_reduction; present for the estimator protocol
        self.classes_ = np.array([0, 1])
        return self

    @classmethod
    def from_reduction(cls, reduction, threshold: float) -> MixtureClassifier:
        weights = np.asarray(reduction.weights_, dtype=float)
        keep = weights > 0
        model = cls(
            [p for p, k in zip(reduction.predictors_, keep, strict=True) if k], weights[keep], threshold
        )
        model.classes_ = np.array([0, 1])
        return model

    def predict_proba(self, X):
        votes = np.zeros(np.shape(X)[0])
        for predictor, weight in zip(self.predictors, self.weights, strict=True):
            votes += weight * np.asarray(predictor.predict(X), dtype=float)
        votes /= self.weights.sum()
        t = self.threshold
        score = np.where(votes < 0.5, votes * 2 * t, t + (votes - 0.5) * 2 * (1 - t))
        return np.column_stack([1 - score, score])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= self.threshold).astype(int)


def _cost_weighted_estimator(settings: Settings):
    """The configured estimator with class weights from the cost matrix, so its own 0.5 decision is
    the cost-optimal one (what fairlearn's reductions constrain)."""
    cost = settings.evaluation.cost
    params = dict(settings.model.hyperparameters)
    params["class_weight"] = {0: cost.false_positive or 1e-9, 1: cost.false_negative or 1e-9}
    if settings.model.type == "hist_gradient_boosting":
        params["class_weight"] = None  # HistGradientBoosting takes sample weights from the reduction only
    return build_estimator(settings.model.type, params, settings.model.seed)


def _constraint(name: str):
    from fairlearn.reductions import DemographicParity, EqualizedOdds

    return DemographicParity() if name == "demographic_parity" else EqualizedOdds()


def fit_servable(
    transformer, frame: pd.DataFrame, features: FeatureSet, settings: Settings, method: str
) -> Pipeline:
    """A mitigated candidate with the serving Pipeline shape: ``Pipeline(transform, model)``."""
    if method not in SERVABLE:
        raise DataError(f"fairness.mitigation {method!r} cannot be served; use one of {sorted(SERVABLE)}")
    include = settings.data.use_protected_as_features
    labels = positive_indicator(frame[settings.data.target], settings.data.positive_label)
    matrix = transformer.transform(model_frame(frame, features, include))
    if method == "none":
        estimator = build_estimator(settings.model.type, settings.model.hyperparameters, settings.model.seed)
        estimator.fit(matrix, labels)
    elif method == "reweighing":
        estimator = build_estimator(settings.model.type, settings.model.hyperparameters, settings.model.seed)
        estimator.fit(
            matrix, labels, sample_weight=reweighing_weights(labels, sensitive_frame(frame, settings))
        )
    else:
        from fairlearn.reductions import ExponentiatedGradient

        reduction = ExponentiatedGradient(
            _cost_weighted_estimator(settings), _constraint(settings.fairness.constraint)
        )
        with warnings.catch_warnings():  # fairlearn 0.15 on pandas 3: deprecation noise per iteration
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            reduction.fit(matrix, labels, sensitive_features=sensitive_frame(frame, settings))
        estimator = MixtureClassifier.from_reduction(reduction, settings.decision_threshold)
    return Pipeline([("transform", transformer), ("model", estimator)])


@dataclass
class Variant:
    """A variant's test scores and decisions (``decisions`` may differ from ``score >= threshold``)."""

    name: str
    scores: np.ndarray
    decisions: np.ndarray
    threshold: float
    servable: bool
    note: str


def variant(
    method: str,
    candidate: Pipeline,
    train: pd.DataFrame,
    test: pd.DataFrame,
    features: FeatureSet,
    settings: Settings,
) -> Variant:
    """Train one mitigation variant on ``train`` and score ``test`` (both feature tables)."""
    include = settings.data.use_protected_as_features
    threshold = settings.decision_threshold
    note = NOTES[method].format(constraint=settings.fairness.constraint)
    test_inputs = model_frame(test, features, include)
    if method in SERVABLE:
        pipeline = fit_servable(_clone_transformer(candidate), train, features, settings, method)
        scores = pipeline.predict_proba(test_inputs)[:, 1]
        return Variant(method, scores, (scores >= threshold).astype(int), threshold, True, note)
    labels = positive_indicator(train[settings.data.target], settings.data.positive_label)
    train_groups, test_groups = sensitive_frame(train, settings), sensitive_frame(test, settings)
    if method == "threshold_optimizer":
        from fairlearn.postprocessing import ThresholdOptimizer

        constraint = settings.fairness.constraint
        optimizer = ThresholdOptimizer(
            estimator=candidate, constraints=constraint, objective="balanced_accuracy_score",
            prefit=True, predict_method="predict_proba",
        )  # fmt: skip
        optimizer.fit(model_frame(train, features, include), labels, sensitive_features=train_groups)
        probability = optimizer._pmf_predict(test_inputs, sensitive_features=test_groups)[:, 1]
        return Variant(method, probability, (probability >= 0.5).astype(int), 0.5, False, note)
    if method == "correlation_remover":
        from fairlearn.preprocessing import CorrelationRemover

        transformer = candidate[0]

        def with_groups(frame: pd.DataFrame, groups: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
            matrix = np.asarray(transformer.transform(model_frame(frame, features, include)), dtype=float)
            dummies = pd.get_dummies(groups, dtype=float).reindex(columns=dummy_columns, fill_value=0.0)
            return np.hstack([matrix, dummies.to_numpy()]), list(
                range(matrix.shape[1], matrix.shape[1] + dummies.shape[1])
            )

        dummy_columns = pd.get_dummies(train_groups, dtype=float).columns
        train_matrix, ids = with_groups(train, train_groups)
        remover = CorrelationRemover(sensitive_feature_ids=ids)
        remover.fit(train_matrix)
        estimator = build_estimator(settings.model.type, settings.model.hyperparameters, settings.model.seed)
        estimator.fit(remover.transform(train_matrix), labels)
        test_matrix, _ = with_groups(test, test_groups)
        scores = estimator.predict_proba(remover.transform(test_matrix))[:, 1]
        return Variant(method, scores, (scores >= threshold).astype(int), threshold, False, note)
    raise DataError(f"unknown mitigation {method!r}")


def _clone_transformer(candidate: Pipeline) -> Any:
    """The candidate's fitted transformer (the features stage's), shared by every variant."""
    return candidate[0]

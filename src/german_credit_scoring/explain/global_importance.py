"""Explanations in review: what drives the model overall, and why it got its costliest test cases wrong.

Global importance is the mean absolute contribution of each input feature over the test rows, in the
model's own units (log-odds of the positive class), from the exact per-feature contributions of
``explain/contributions.py`` (linear: coefficient x distance from the baseline; trees: TreeSHAP).
The worst cases are the test errors with the highest cost (``evaluation.cost``), the most confidently
wrong first, each with the reasons that pushed it to the wrong side. Sensitive features are never
reasons (they are not model inputs unless ``data.use_protected_as_features``, and even then are left
out of the reasons).

One writer (the evaluate stage) and readers that take the typed record :class:`ExplainReport` from
``reports/explain.json``: the pull-request comment, ``mlops compare`` and the model card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from german_credit_scoring import io
from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.data import model_frame
from german_credit_scoring.settings import CostMatrix

UNITS = "log-odds of the positive class"


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureImportance(Record):
    feature: str
    mean_abs_contribution: float
    share: float  # of the sum over features
    mean_contribution: float


class Reason(Record):
    feature: str
    value: str
    contribution: float
    description: str = ""


class WorstCase(Record):
    row: int  # position in the test table
    error: Literal["false_negative", "false_positive"]
    cost: float
    score: float
    reasons: list[Reason]


class ExplainReport(Record):
    model_version: str
    units: str = UNITS
    rows: int
    base_value: float | None = None
    importance: list[FeatureImportance] = []
    worst_cases: list[WorstCase] = []
    unavailable: str | None = None  # why the model could not be explained exactly

    def write(self, path: Path | str) -> None:
        io.write_json(path, self.model_dump(mode="json"))

    @classmethod
    def read(cls, path: Path | str) -> ExplainReport:
        return cls.model_validate(io.read_json(path))


def contribution_matrix(pipeline, frame: pd.DataFrame) -> tuple[float, np.ndarray, list[str]]:
    """``(base_value, contributions (n, inputs), input names)`` of a model frame; raises when unexplainable."""
    from german_credit_scoring.explain.contributions import contributions

    names = list(frame.columns)
    base, values = contributions(pipeline, frame, names)
    return float(base), np.asarray(values, dtype=np.float64), names


def importance_of(contributions: np.ndarray, names: list[str]) -> list[FeatureImportance]:
    """Mean |contribution| per input feature, largest first."""
    mean_abs = np.abs(contributions).mean(axis=0) if len(contributions) else np.zeros(len(names))
    mean = contributions.mean(axis=0) if len(contributions) else np.zeros(len(names))
    total = float(mean_abs.sum()) or 1.0
    rows = [
        FeatureImportance(
            feature=name, mean_abs_contribution=float(a), share=float(a / total), mean_contribution=float(m)
        )
        for name, a, m in zip(names, mean_abs, mean, strict=True)
    ]
    return sorted(rows, key=lambda r: -r.mean_abs_contribution)


def worst_cases(
    frame: pd.DataFrame,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    cost: CostMatrix,
    contributions: np.ndarray,
    features: FeatureSet,
    k: int = 5,
    reasons: int = 3,
    withheld: np.ndarray | None = None,
) -> list[WorstCase]:
    """The ``k`` costliest errors, most confidently wrong first, with the reasons toward the wrong side.

    ``withheld`` marks rows whose explanation leans against their decision (a fairness mixture's, see
    ``PipelineExplainer.leans_against``): listed with no reasons, as the service serves them."""
    labels = np.asarray(labels).astype(bool)
    decisions = np.asarray(scores) >= threshold
    false_negative = labels & ~decisions
    false_positive = ~labels & decisions
    error_cost = np.where(
        false_negative, cost.false_negative, np.where(false_positive, cost.false_positive, 0.0)
    )
    wrong = np.nonzero(false_negative | false_positive)[0]
    if k == 0 or wrong.size == 0:
        return []
    margin = np.abs(np.asarray(scores)[wrong] - threshold)
    order = wrong[np.lexsort((-margin, -error_cost[wrong]))][:k]
    names = list(frame.columns)
    sensitive = {f.name for f in features.features if f.sensitive}
    described = {f.name: f.description for f in features.features}
    allowed = np.array([name not in sensitive for name in names])
    out = []
    for row in order:
        # a missed positive was pushed down (negative contributions), a false alarm up
        toward = -1.0 if false_negative[row] else 1.0
        pushed = contributions[row] * toward
        candidates = [j for j in np.argsort(-pushed) if allowed[j] and pushed[j] > 0][:reasons]
        if withheld is not None and withheld[row]:
            candidates = []
        out.append(
            WorstCase(
                row=int(row),
                error="false_negative" if false_negative[row] else "false_positive",
                cost=float(error_cost[row]),
                score=float(scores[row]),
                reasons=[
                    Reason(
                        feature=names[j],
                        value=_shown(frame.iloc[row, j]),
                        contribution=float(contributions[row, j]),
                        description=described.get(names[j], ""),
                    )
                    for j in candidates
                ],
            )
        )
    return out


def _shown(value) -> str:
    """A value as a reviewer reads it: 4 rather than 4.0 for whole numbers, "missing" for NaN."""
    if isinstance(value, float | np.floating):
        if value != value:
            return "missing"
        if float(value).is_integer():
            return str(int(value))
    return str(value)


def explain_model(
    pipeline,
    test: pd.DataFrame,
    features: FeatureSet,
    include_sensitive: bool,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    cost: CostMatrix,
    model_version: str,
    k: int = 5,
    reasons: int = 3,
) -> ExplainReport:
    """The whole record for one model on the test rows; an unexplainable model says why, never raises."""
    from german_credit_scoring.explain.contributions import PipelineExplainer

    frame = model_frame(test, features, include_sensitive)
    names = list(frame.columns)
    try:
        explainer = PipelineExplainer(pipeline, names)
        explanation = explainer.explain_frame(frame)
    except Exception as error:  # ExplanationUnavailable or an estimator it does not know: said, not fatal
        reason = str(error) or type(error).__name__
        return ExplainReport(model_version=model_version, rows=len(frame), unavailable=reason)
    values = np.asarray(explanation.contributions, dtype=np.float64)
    withheld = explainer.leans_against(explanation.margins, np.asarray(scores) >= threshold)
    return ExplainReport(
        model_version=model_version,
        rows=len(frame),
        base_value=float(explanation.base_value),
        importance=importance_of(values, names),
        worst_cases=worst_cases(
            frame, labels, scores, threshold, cost, values, features, k, reasons, withheld=withheld
        ),
    )


def importance_plot(report: ExplainReport) -> list[dict[str, float | str]]:
    """Rows for DVC's bar chart (plots/importance.json)."""
    return [
        {"feature": r.feature, "mean_abs_contribution": r.mean_abs_contribution} for r in report.importance
    ]

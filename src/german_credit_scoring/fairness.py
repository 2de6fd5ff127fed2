"""Group fairness of the model's decisions, per protected attribute.

The numbers are defined exactly as fairlearn defines them (``MetricFrame`` with ``selection_rate``,
``true_positive_rate``, ``false_positive_rate``; ``demographic_parity_difference``/``ratio`` and
``equalized_odds_difference``, method ``between_groups``) so that a reviewer can reproduce them with
fairlearn; the tests check that they agree. They are computed here with one ``bincount`` per count
instead of one scikit-learn call per group, because fairlearn takes seconds on a million rows.

One deliberate difference in *presentation*: a group with no actual positives has no true positive
rate (and one with no actual negatives no false positive rate). We report those rates as ``null``
per group, where fairlearn (through scikit-learn's ``normalize="true"``) reports 0. The summary
differences still follow fairlearn and count an undefined rate as 0, which is the conservative choice
for a gate; the groups concerned are listed so a reviewer sees why a difference is large.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from german_credit_scoring.errors import DataError

GROUP_PREFIX = "group__"
MISSING_GROUP = "missing"

# Summary metrics computed for every attribute; the gate's max_fairness / min_fairness refer to these.
SUMMARY_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "true_positive_rate_difference",
    "false_positive_rate_difference",
)


def _binary(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool:
        return array.astype(np.int8)
    if array.size and not np.isin(array, (0, 1)).all():
        found = pd.unique(array[~np.isin(array, (0, 1))])[:5].tolist()
        raise DataError(f"column {name!r} must contain only 0/1, found {found}")
    return array.astype(np.int8, copy=False)


def group_rates(y_true: Any, decision: Any, groups: Any) -> pd.DataFrame:
    """Per group: n, actual positives/negatives, selection rate, TPR and FPR (NaN when undefined).

    Vectorised: the groups are factorised once and every count is a ``np.bincount``.
    """
    y = _binary(y_true, "y_true")
    d = _binary(decision, "decision")
    labels = pd.Series(groups).astype(object)
    labels = labels.where(labels.notna(), MISSING_GROUP).astype(str)
    if not (len(y) == len(d) == len(labels)):
        raise DataError(f"y_true, decision and groups differ in length: {len(y)}, {len(d)}, {len(labels)}")
    if len(y) == 0:
        raise DataError("no predictions to assess: the prediction table is empty")
    codes, uniques = pd.factorize(labels.to_numpy(), sort=True)
    k = len(uniques)
    n = np.bincount(codes, minlength=k)
    positives = np.bincount(codes, weights=y, minlength=k)
    selected = np.bincount(codes, weights=d, minlength=k)
    true_pos = np.bincount(codes, weights=y & d, minlength=k)
    false_pos = np.bincount(codes, weights=(1 - y) & d, minlength=k)
    negatives = n - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.where(positives > 0, true_pos / positives, np.nan)
        fpr = np.where(negatives > 0, false_pos / negatives, np.nan)
    return pd.DataFrame(
        {
            "n": n.astype(np.int64),
            "positives": positives.astype(np.int64),
            "negatives": negatives.astype(np.int64),
            "selection_rate": selected / n,
            "true_positive_rate": tpr,
            "false_positive_rate": fpr,
        },
        index=pd.Index([str(u) for u in uniques], name="group"),
    )


def _spread(values: np.ndarray) -> float:
    return float(values.max() - values.min())


def summarise(rates: pd.DataFrame) -> dict[str, float | None]:
    """fairlearn's between-groups summaries from the per-group table (undefined rates count as 0)."""
    selection = rates["selection_rate"].to_numpy(dtype=float)
    tpr = np.nan_to_num(rates["true_positive_rate"].to_numpy(dtype=float), nan=0.0)
    fpr = np.nan_to_num(rates["false_positive_rate"].to_numpy(dtype=float), nan=0.0)
    top = selection.max()
    tpr_difference, fpr_difference = _spread(tpr), _spread(fpr)
    return {
        "demographic_parity_difference": _spread(selection),
        "demographic_parity_ratio": None if top == 0 else float(selection.min() / top),
        "equalized_odds_difference": max(tpr_difference, fpr_difference),
        "true_positive_rate_difference": tpr_difference,
        "false_positive_rate_difference": fpr_difference,
    }


def _clean(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    return value


def attribute_fairness(y_true: Any, decision: Any, groups: Any) -> dict[str, Any]:
    """The JSON-ready result for one protected attribute."""
    rates = group_rates(y_true, decision, groups)
    result: dict[str, Any] = {
        "groups": {
            group: {column: _clean(value) for column, value in row.items()}
            for group, row in rates.to_dict(orient="index").items()
        },
    }
    result.update(summarise(rates))
    result["groups_without_positives"] = rates.index[rates["positives"] == 0].tolist()
    result["groups_without_negatives"] = rates.index[rates["negatives"] == 0].tolist()
    result["smallest_group"] = int(rates["n"].min())
    return result


def fairness_report(
    predictions: pd.DataFrame,
    attributes: list[str],
    y_true: str = "y_true",
    decision: str = "decision",
    source: str = "predictions",
) -> dict[str, dict[str, Any]]:
    """Fairness of the decisions for every protected attribute (columns ``group__<attribute>``)."""
    needed = [y_true, decision, *(GROUP_PREFIX + name for name in attributes)]
    missing = [column for column in needed if column not in predictions.columns]
    if missing:
        raise DataError(
            f"{source}: columns {missing} are missing (have {list(predictions.columns)}); "
            "the evaluate stage writes one group__<attribute> column per protected attribute"
        )
    y = predictions[y_true].to_numpy()
    d = predictions[decision].to_numpy()
    return {name: attribute_fairness(y, d, predictions[GROUP_PREFIX + name]) for name in attributes}


SMALL_GROUP = 30  # below this many rows a group's rates are flagged as noisy in the report


def render_markdown(result: dict[str, dict[str, Any]], n: int) -> str:
    """The fairness section of the pull-request comment (one table per attribute)."""
    from german_credit_scoring.markdown import render

    return render(
        "fairness.md.j2",
        attributes=result,
        n=n,
        summary_metrics=SUMMARY_METRICS,
        small_group=SMALL_GROUP,
    )

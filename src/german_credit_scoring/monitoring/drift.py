"""Drift monitoring: is the data the model sees today still like the data it was trained on?

Compares a *current* batch (by default the service's prediction logs) with the training reference
snapshot, per declared feature, and for the model's scores and, when labels are back, its accuracy.

Verdicts are taken on **effect sizes** (PSI, Kolmogorov-Smirnov statistic, Jensen-Shannon distance)
with thresholds from ``params.yaml``; p-values are reported beside them and also have to be small
(``drift.alpha``) **after a family-wise correction** across every test of the check
(``drift.correction``: Holm by default), so that checking twenty features at once does not turn
twenty chances of noise into an alarm. At 100k rows a p-value flags differences too small to
matter, at 200 rows an effect size alone flags sampling noise: requiring both keeps the alarm
meaningful at any batch size.

Beyond distributions, three things are findings of their own: a change in a feature's share of
missing values (``drift.missing_rate_threshold``), a change in the window's volume
(``drift.expected_rows``, ``drift.volume_change_threshold``), and log records that cannot be read
(counted and reported by file and line). Current data that lacks a model input, or whose columns
are not the contract's, is bad input (exit 2), never a pass.

Statistics live in :mod:`german_credit_scoring.monitoring.stats` (numpy only, exact, equal to
scipy); columns are read one at a time through pyarrow (:mod:`german_credit_scoring.monitoring.tables`),
so ``mlops drift`` imports neither pandas, scipy nor scikit-learn unless a model must score rows.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from german_credit_scoring import io, paths
from german_credit_scoring.contract import FeatureDefinition, FeatureSet, load_features
from german_credit_scoring.errors import DataError, ProjectError, SettingsError
from german_credit_scoring.monitoring.stats import (
    PSI_EPSILON,
    adjust_p_values,
    chi_square,
    compare_numeric_arrays,
    counts_in_bins,
    js_distance,
    ks_sorted,
    psi,
    quantile_edges,
    two_proportion_p,
)
from german_credit_scoring.monitoring.tables import (
    LOG_SUFFIXES,
    MISSING,
    PROBABILITY,
    TABLE_SUFFIXES,
    BadRecords,
    Columns,
    read_columns,
    read_file_columns,
    read_log_rows,
    resolve_sources,
)
from german_credit_scoring.settings import DriftSettings, Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = [  # the statistics moved to monitoring.stats; these names stay importable from here
    "LOG_SUFFIXES",
    "MISSING",
    "PROBABILITY",
    "PSI_EPSILON",
    "TABLE_SUFFIXES",
    "check_drift",
    "chi_square",
    "compare_categorical",
    "compare_features",
    "compare_numeric",
    "counts_in_bins",
    "drift_cli",
    "find_model",
    "js_distance",
    "ks_sorted",
    "load_model",
    "psi",
    "quantile_edges",
    "read_current",
    "render_markdown",
    "resolve_sources",
    "run_drift",
    "score",
    "sparkline",
]

DRIFT_JSON = paths.DRIFT_RESULT
DRIFT_MD = paths.DRIFT_MD

SPARK = "▁▂▃▄▅▆▇█"
DISPLAY_BINS = 12
MAX_CATEGORY_BARS = 16
THRESHOLD_KEYS = {"psi_threshold", "ks_threshold", "js_threshold", "alpha", "missing_rate_threshold"}
# Rows scored by the model per side: score distributions and ROC AUC are precise to ~0.003 at this
# size, and scoring millions of rows through the pipeline would cost more than everything else.
MAX_SCORED_ROWS = 200_000


def sparkline(values: Iterable[float], scale: float | None = None) -> str:
    """Unicode bars (▁..█); zero is a blank-looking lowest bar so an empty bin is visible as such."""
    values = [0.0 if v is None or not math.isfinite(v) else float(v) for v in values]
    top = scale if scale else max(values, default=0.0)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(
        " " if v <= 0 else SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values
    )


# --------------------------------------------------------------------------------------------------
# Per-feature comparison
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    psi: float
    ks: float
    js: float
    alpha: float
    missing_rate: float = 0.1

    def as_dict(self) -> dict[str, float]:
        return {
            "psi_threshold": self.psi,
            "ks_threshold": self.ks,
            "js_threshold": self.js,
            "alpha": self.alpha,
            "missing_rate_threshold": self.missing_rate,
        }


def thresholds_for(name: str, drift: DriftSettings) -> Thresholds:
    override = drift.per_feature.get(name, {})
    return Thresholds(
        psi=float(override.get("psi_threshold", drift.psi_threshold)),
        ks=float(override.get("ks_threshold", drift.ks_threshold)),
        js=float(override.get("js_threshold", drift.js_threshold)),
        alpha=float(override.get("alpha", drift.alpha)),
        missing_rate=float(override.get("missing_rate_threshold", drift.missing_rate_threshold)),
    )


def check_per_feature(drift: DriftSettings, features: FeatureSet, target: str = "") -> None:
    """``drift.per_feature`` may only name declared features (or prediction, the target) and known keys."""
    names = set(features.names) | {"prediction", target}
    for name, override in drift.per_feature.items():
        if name not in names:
            raise SettingsError(
                f"params.yaml drift.per_feature: {name!r} is not a feature in the feature definitions"
            )
        unknown = set(override) - THRESHOLD_KEYS
        if unknown:
            raise SettingsError(
                f"params.yaml drift.per_feature.{name}: unknown keys {sorted(unknown)}; "
                f"use {sorted(THRESHOLD_KEYS)}"
            )


def _numeric(values: Any) -> np.ndarray:
    if hasattr(values, "to_numpy") and hasattr(values, "dtype"):  # a pandas Series
        import pandas as pd

        values = pd.to_numeric(values, errors="coerce")
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(values, dtype="float64")


def _finite(values: np.ndarray) -> tuple[np.ndarray, int]:
    """The finite values and how many were missing (NaN, null or +-inf)."""
    finite = np.isfinite(values)
    if finite.all():
        return values, 0
    return values[finite], int(len(values) - np.count_nonzero(finite))


def _missing_rate(
    row: dict[str, Any], ref_missing: int, ref_total: int, cur_missing: int, cur_total: int
) -> None:
    """Share of missing values on each side, its change and the two-proportion test of it."""
    row["missing_rate_reference"] = ref_missing / ref_total if ref_total else None
    row["missing_rate_current"] = cur_missing / cur_total if cur_total else None
    row["missing_rate_change"] = (
        row["missing_rate_current"] - row["missing_rate_reference"] if ref_total and cur_total else None
    )
    row["missing_p_value"] = two_proportion_p(ref_missing, ref_total, cur_missing, cur_total)


def decide(
    row: dict[str, Any], p_adjusted: float | None = None, missing_p_adjusted: float | None = None
) -> None:
    """Verdict of one row from its effect sizes and (family-wise adjusted) p-values.

    Distribution drift: an effect size above its threshold and a significant test; missing-rate
    drift: the share of missing values moved by more than ``missing_rate_threshold`` and the move
    is significant. Without adjusted p-values the raw ones decide (a family of one).
    """
    thr = row["thresholds"]
    alpha = thr["alpha"]
    p_adjusted = row["p_value"] if p_adjusted is None else p_adjusted
    missing_p_adjusted = row["missing_p_value"] if missing_p_adjusted is None else missing_p_adjusted
    row["p_value_adjusted"] = p_adjusted
    row["missing_p_value_adjusted"] = missing_p_adjusted
    effects = list(row["effects"])
    significant = p_adjusted is not None and p_adjusted < alpha
    row["distribution_drifted"] = bool(effects) and significant
    reasons = list(effects)
    if effects and not significant:
        reasons.append(f"but not significant (adjusted p {_p(p_adjusted)} >= {alpha:g}): sampling noise")
    change = row.get("missing_rate_change")
    row["missing_drifted"] = bool(
        change is not None
        and abs(change) > thr["missing_rate_threshold"]
        and missing_p_adjusted is not None
        and missing_p_adjusted < alpha
    )
    if row["missing_drifted"]:
        reasons.append(
            f"missing values {row['missing_rate_reference']:.1%} -> {row['missing_rate_current']:.1%} "
            f"({change:+.1%}, more than {thr['missing_rate_threshold']:.0%})"
        )
    row["reasons"] = reasons
    row["drifted"] = row["distribution_drifted"] or row["missing_drifted"]
    row["verdict"] = "drift" if row["drifted"] else "no_drift"


def _p(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def compare_numeric(name: str, reference: Any, current: Any, bins: int, thr: Thresholds) -> dict[str, Any]:
    """PSI on reference-quantile bins, KS, chi-square on the same bins, missing rates, histogram.

    Non-finite values (NaN, missing, +-inf) are missing: excluded from the distribution tests and
    counted in the missing rate. The feature's p-value is the smaller of the KS and chi-square
    p-values, doubled (Bonferroni over the feature's two tests)."""
    ref_all, cur_all = _numeric(reference), _numeric(current)
    ref, ref_missing = _finite(ref_all)
    cur, cur_missing = _finite(cur_all)
    cmp = compare_numeric_arrays(ref, cur, bins)
    value_psi = psi(cmp.reference_counts, cmp.current_counts)
    chi2_stat, chi2_p = chi_square(cmp.reference_counts, cmp.current_counts)
    effects = []
    if value_psi > thr.psi:
        effects.append(f"PSI {value_psi:.3f} > {thr.psi:g}")
    if cmp.ks_statistic > thr.ks:
        effects.append(f"KS {cmp.ks_statistic:.3f} > {thr.ks:g}")
    tests = [p for p in (cmp.ks_p_value, chi2_p) if p is not None and math.isfinite(p)]
    ref_total, cur_total = max(cmp.display_reference.sum(), 1), max(cmp.display_current.sum(), 1)
    row: dict[str, Any] = {
        "name": name,
        "kind": "numeric",
        "effects": effects,
        "psi": value_psi,
        "ks_statistic": cmp.ks_statistic,
        "ks_p_value": cmp.ks_p_value,
        "chi2_statistic": chi2_stat,
        "chi2_p_value": chi2_p,
        "p_value": min(1.0, 2 * min(tests)) if tests else None,
        "js_distance": js_distance(cmp.reference_counts, cmp.current_counts),
        "mean_reference": float(ref.mean()) if len(ref) else None,
        "mean_current": float(cur.mean()) if len(cur) else None,
        "unseen_categories": {},
        "thresholds": thr.as_dict(),
        "histogram": {
            "edges": cmp.display_edges.tolist(),
            "reference": (cmp.display_reference / ref_total).tolist(),
            "current": (cmp.display_current / cur_total).tolist(),
        },
    }
    _missing_rate(row, ref_missing, len(ref_all), cur_missing, len(cur_all))
    decide(row)
    return row


def _category_counts(values: Any) -> dict[str, int]:
    if isinstance(values, dict):
        return {str(k): int(v) for k, v in values.items()}
    counts = values.value_counts(dropna=False, sort=False)
    out: dict[str, int] = {}
    for key, count in counts.items():
        missing = key is None or (isinstance(key, float) and math.isnan(key)) or str(key) in {"<NA>", "NaT"}
        label = MISSING if missing else str(key)
        out[label] = out.get(label, 0) + int(count)
    return out


def compare_categorical(
    name: str,
    reference: Any,
    current: Any,
    thr: Thresholds,
    allowed: Iterable[str] | None = None,
) -> dict[str, Any]:
    """PSI, chi-square and Jensen-Shannon over categories (missing is a category of its own).

    ``reference`` and ``current`` are pandas Series or value -> count mappings. A category never
    seen in the reference (nor declared) is listed under ``unseen_categories``; it takes part in
    every statistic, so a large unseen share is drift by itself.
    """
    ref_counts_map = _category_counts(reference)
    cur_counts_map = _category_counts(current)
    known = set(ref_counts_map) | set(allowed or ())
    order = sorted(ref_counts_map, key=lambda k: (-ref_counts_map[k], k))
    order += sorted(set(allowed or ()) - set(ref_counts_map))
    unseen = {
        k: v for k, v in sorted(cur_counts_map.items(), key=lambda kv: (-kv[1], kv[0])) if k not in known
    }
    order += list(unseen)
    ref_counts = np.array([ref_counts_map.get(k, 0) for k in order], dtype=float)
    cur_counts = np.array([cur_counts_map.get(k, 0) for k in order], dtype=float)
    value_psi = psi(ref_counts, cur_counts)
    value_js = js_distance(ref_counts, cur_counts)
    chi2_stat, chi2_p = chi_square(ref_counts, cur_counts)
    effects = []
    if value_psi > thr.psi:
        effects.append(f"PSI {value_psi:.3f} > {thr.psi:g}")
    if value_js > thr.js:
        effects.append(f"JS {value_js:.3f} > {thr.js:g}")
    n_ref, n_cur = int(ref_counts.sum()), int(cur_counts.sum())
    row: dict[str, Any] = {
        "name": name,
        "kind": "categorical",
        "effects": effects,
        "psi": value_psi,
        "ks_statistic": None,
        "ks_p_value": None,
        "chi2_statistic": chi2_stat,
        "chi2_p_value": chi2_p,
        "p_value": chi2_p,
        "js_distance": value_js,
        "unseen_categories": unseen,
        "unseen_rate_current": sum(unseen.values()) / max(n_cur, 1),
        "thresholds": thr.as_dict(),
        "histogram": {
            "categories": order,
            "reference": (ref_counts / max(n_ref, 1)).tolist(),
            "current": (cur_counts / max(n_cur, 1)).tolist(),
        },
    }
    _missing_rate(row, ref_counts_map.get(MISSING, 0), n_ref, cur_counts_map.get(MISSING, 0), n_cur)
    decide(row)
    return row


def as_columns(data: Any, label: str) -> Columns:
    """A pandas frame or already opened :class:`Columns`."""
    return data if isinstance(data, Columns) else Columns.from_frame(data, label)


def compare_features(
    reference: Any,
    current: Any,
    features: Iterable[FeatureDefinition],
    drift: DriftSettings,
    workers: int | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every declared feature present in both tables, in parallel threads (numpy and pyarrow release
    the GIL); one column at a time is read, so a window never has to fit in memory as a table.

    Returns the per-feature results in contract order (decided per feature, before the family-wise
    correction that :func:`check_drift` applies) and the features absent from the current data.
    """
    features = list(features)
    reference, current = as_columns(reference, "reference"), as_columns(current, "current")
    missing = [f.name for f in features if f.name not in current]
    absent_in_reference = [f.name for f in features if f.name not in reference]
    if absent_in_reference:
        raise DataError(f"reference data lacks the declared features {absent_in_reference}")
    todo = [f for f in features if f.name in current]

    def one(feature: FeatureDefinition) -> dict[str, Any]:
        thr = thresholds_for(feature.name, drift)
        if feature.is_numeric:
            expected = f"{feature.dtype} (feature {feature.name!r} in the contract)"
            return compare_numeric(
                feature.name,
                reference.numeric(feature.name, expected),
                current.numeric(feature.name, expected),
                drift.bins,
                thr,
            )
        return compare_categorical(
            feature.name,
            reference.counts(feature.name),
            current.counts(feature.name),
            thr,
            feature.allowed_values,
        )

    workers = workers or min(len(todo), os.cpu_count() or 1) or 1
    if workers == 1:
        results = [one(f) for f in todo]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, todo))
    return results, missing


# --------------------------------------------------------------------------------------------------
# Model: prediction drift and concept drift
# --------------------------------------------------------------------------------------------------


def find_model(explicit: Path | None = None) -> Path | None:
    """The approved model if there is one, else the candidate (drift before the first approval)."""
    if explicit is not None:
        if not explicit.is_file():
            raise DataError(f"{explicit}: model file not found")
        return explicit
    for candidate in (paths.APPROVED_MODEL, paths.CANDIDATE_MODEL):
        if candidate.is_file():
            return candidate
    return None


def load_model(path: Path):
    import joblib

    try:
        model = joblib.load(path)
    except Exception as error:  # joblib's own message is the useful part
        raise DataError(f"{path}: cannot load the model: {error}") from None
    if isinstance(model, dict):
        model = model.get("pipeline") or model.get("model")
    if not hasattr(model, "predict_proba"):
        raise DataError(f"{path}: expected a fitted scikit-learn model with predict_proba")
    return model


def _at_most(frame: pd.DataFrame, rows: int = MAX_SCORED_ROWS) -> pd.DataFrame:
    """A seeded random subset when the frame is larger than ``rows`` (same subset on every run)."""
    if len(frame) <= rows:
        return frame
    index = np.sort(np.random.default_rng(0).choice(len(frame), size=rows, replace=False))
    return frame.iloc[index]


def score(model, frame: pd.DataFrame, features: FeatureSet, positive_label: str) -> np.ndarray:
    """Probability of the positive class, with the model's own input columns."""
    from german_credit_scoring.data import model_frame

    columns = list(getattr(model, "feature_names_in_", []))
    include_sensitive = any(f.sensitive and f.name in columns for f in features.features)
    inputs = model_frame(frame, features, include_sensitive=include_sensitive)
    if columns:
        inputs = inputs[[c for c in columns if c in inputs.columns]]
    probabilities = model.predict_proba(inputs)
    classes = [str(c) for c in getattr(model, "classes_", [0, 1])]
    if str(positive_label) in classes:
        index = classes.index(str(positive_label))
    else:
        index = classes.index("1") if "1" in classes else len(classes) - 1
    return probabilities[:, index].astype(float)


def _frame_for_model(
    columns: Columns, features: FeatureSet, extra: list[str], source: str, labelled: str | None = None
) -> pd.DataFrame:
    """At most MAX_SCORED_ROWS rows (of those with a label, if ``labelled``) as a typed pandas frame."""
    names = [f.name for f in features.features] + [n for n in extra if n not in features.names]
    frame = columns.to_pandas(names)
    if labelled is not None:
        frame = frame[frame[labelled].notna()]
    return numeric_to_contract(_at_most(frame).reset_index(drop=True), features, source)


def compare_predictions(
    reference_scores: np.ndarray, current_scores: np.ndarray, drift: DriftSettings, source: str
) -> dict[str, Any]:
    """The score distribution is a numeric feature whose PSI threshold is the prediction one."""
    override = drift.per_feature.get("prediction", {})
    thr = Thresholds(
        psi=float(override.get("psi_threshold", drift.prediction_psi_threshold)),
        ks=float(override.get("ks_threshold", 1.0)),  # the decision is on PSI unless a KS bound is set
        js=1.0,
        alpha=float(override.get("alpha", drift.alpha)),
        missing_rate=1.0,
    )
    result = compare_numeric("prediction", reference_scores, current_scores, drift.bins, thr)
    result["kind"] = "prediction"
    result["current_source"] = source
    return result


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return None
    return float(roc_auc_score(labels, scores))


def _expected_cost(labels: np.ndarray, scores: np.ndarray, settings: Settings) -> float:
    decisions = scores >= settings.decision_threshold
    cost = settings.evaluation.cost
    fn = np.sum((labels == 1) & ~decisions)
    fp = np.sum((labels == 0) & decisions)
    return float((fn * cost.false_negative + fp * cost.false_positive) / max(len(labels), 1))


def compare_performance(
    baseline_labels: np.ndarray,
    baseline_scores: np.ndarray,
    current_labels: np.ndarray,
    current_scores: np.ndarray,
    settings: Settings,
    baseline_name: str,
    held_out: bool = True,
) -> dict[str, Any]:
    """Concept drift: the same model ranks today's outcomes worse than the baseline's.

    Only a held-out baseline decides: on its own training rows a model looks better than it is, so a
    drop measured against them is partly optimism; it is then reported, not judged.
    """
    base_auc, cur_auc = _auc(baseline_labels, baseline_scores), _auc(current_labels, current_scores)
    base_cost = _expected_cost(baseline_labels, baseline_scores, settings)
    cur_cost = _expected_cost(current_labels, current_scores, settings)
    drop = None if base_auc is None or cur_auc is None else base_auc - cur_auc
    limit = settings.drift.performance_drop_threshold
    drifted = held_out and drop is not None and drop > limit
    return {
        "baseline": baseline_name,
        "baseline_held_out": held_out,
        "labelled_rows": len(current_labels),
        "roc_auc_baseline": base_auc,
        "roc_auc_current": cur_auc,
        "roc_auc_drop": drop,
        "expected_cost_baseline": base_cost,
        "expected_cost_current": cur_cost,
        "expected_cost_change": cur_cost - base_cost,
        "positive_rate_baseline": float(np.mean(baseline_labels)) if len(baseline_labels) else None,
        "positive_rate_current": float(np.mean(current_labels)) if len(current_labels) else None,
        "threshold": limit,
        "drifted": drifted,
        "verdict": "drift" if drifted else "no_drift",
        "reasons": [f"ROC AUC dropped by {drop:.3f} > {limit:g}"] if drifted else [],
    }


# --------------------------------------------------------------------------------------------------
# Reading the current data
# --------------------------------------------------------------------------------------------------


def read_log(path: Path, target: str) -> pd.DataFrame:
    """Rows of one prediction log as a frame (unreadable lines are skipped: see ``read_columns``)."""
    import pandas as pd

    return pd.DataFrame.from_records(read_log_rows(Path(path), target, BadRecords()))


def read_current(source: str | Path, target: str) -> tuple[pd.DataFrame, list[Path]]:
    """All current rows from a file, folder or glob (CSV, Parquet, JSON Lines prediction logs) as a
    pandas frame; the drift check itself reads columns one at a time with :func:`read_columns`."""
    columns = read_columns(source, target)
    return columns.to_pandas(columns.names), columns.files


# --------------------------------------------------------------------------------------------------
# The whole check
# --------------------------------------------------------------------------------------------------


def check_schema(current: Columns, features: FeatureSet) -> tuple[list[str], list[str]]:
    """Bad input, raised: current data whose columns are not the contract's, or that lacks a model
    input. Returns the declared features it lacks that the model does not use (reported, not
    checked) and the columns the contract does not declare (reported)."""
    shown = [c for c in current.names if not c.startswith("__")]
    if not current.names:
        return [], []
    bad = current.bad_records
    unreadable = (
        f"; {bad.count} record(s) could not be read: "
        + ", ".join(f"{Path(b['file']).name}:{b['line']} ({b['error']})" for b in bad.examples[:5])
        if bad.count
        else ""
    )
    present = [name for name in features.names if name in current]
    if not present:
        raise DataError(
            f"the current data has none of the declared features {features.names} "
            f"(its columns: {shown[:20]}): it does not follow the contract in features/features.yaml"
            f"{unreadable}"
        )
    inputs = [f.name for f in features.model_inputs() if f.name not in current]
    if inputs:
        raise DataError(
            f"the current data lacks the model input column(s) {inputs} declared in "
            f"features/features.yaml (its columns: {shown[:30]}); every model input must be logged"
            f"{unreadable}"
        )
    absent = [name for name in features.names if name not in current]
    known = set(features.names)
    undeclared = [c for c in shown if c not in known]
    return absent, undeclared


def volume_finding(rows: int, drift: DriftSettings, previous_rows: int | None = None) -> dict[str, Any]:
    """The window's row count against the expected one (the previous window's, else
    ``drift.expected_rows``): a change of more than ``drift.volume_change_threshold`` is a finding."""
    expected = previous_rows if previous_rows is not None else drift.expected_rows
    out: dict[str, Any] = {
        "current_rows": rows,
        "expected_rows": expected,
        "expected_from": "previous window" if previous_rows is not None else "drift.expected_rows",
        "change": None,
        "threshold": drift.volume_change_threshold,
        "drifted": False,
        "reasons": [],
    }
    if expected:
        change = rows / expected - 1.0
        out["change"] = change
        if abs(change) > drift.volume_change_threshold:
            out["drifted"] = True
            out["reasons"] = [
                f"{rows:,} rows against {expected:,} expected ({change:+.0%}, more than "
                f"±{drift.volume_change_threshold:.0%})"
            ]
    return out


def _label_counts(columns: Columns, target: str) -> dict[str, int]:
    if target not in columns:
        return {}
    counts = columns.counts(target)
    counts.pop(MISSING, None)
    return counts


def check_drift(
    reference: Any,
    current: Any,
    features: FeatureSet,
    settings: Settings,
    model=None,
    baseline: Any = None,
    baseline_name: str = "reference",
    workers: int | None = None,
    previous_rows: int | None = None,
) -> dict[str, Any]:
    """Compare ``current`` with ``reference`` (pandas frames or :class:`Columns`); the result is what
    reports/drift.json holds.

    ``model`` (optional) scores the reference for prediction drift, and scores current rows that
    carry no logged probability. ``baseline`` (default: the reference) holds the labelled rows
    against which the current performance is compared when current labels are present.
    ``previous_rows`` (the last window's row count) sets the expected volume when given.
    Raises :class:`DataError` for bad input (see :func:`check_schema`).
    """
    drift, data = settings.drift, settings.data
    check_per_feature(drift, features, data.target)
    reference, current = as_columns(reference, "reference"), as_columns(current, "current")
    result: dict[str, Any] = {
        "verdict": "no_drift",
        "message": "",
        "reference_rows": len(reference),
        "current_rows": len(current),
        "min_rows": drift.min_rows,
        "thresholds": {
            "psi_threshold": drift.psi_threshold,
            "ks_threshold": drift.ks_threshold,
            "js_threshold": drift.js_threshold,
            "alpha": drift.alpha,
            "correction": drift.correction,
            "missing_rate_threshold": drift.missing_rate_threshold,
            "volume_change_threshold": drift.volume_change_threshold,
            "expected_rows": drift.expected_rows,
            "prediction_psi_threshold": drift.prediction_psi_threshold,
            "performance_drop_threshold": drift.performance_drop_threshold,
            "bins": drift.bins,
            "per_feature": drift.per_feature,
        },
        "tests": 0,
        "findings": [],
        "features": [],
        "drifted_features": [],
        "missing_features": [],
        "undeclared_columns": [],
        "volume": None,
        "bad_records": current.bad_records.as_dict(),
        "prediction": None,
        "target": None,
        "performance": None,
    }
    missing, undeclared = check_schema(current, features)
    result["missing_features"], result["undeclared_columns"] = missing, undeclared
    volume = volume_finding(len(current), drift, previous_rows)
    result["volume"] = volume
    if volume["drifted"]:
        result["findings"].append({"kind": "volume", "name": "rows", "reasons": volume["reasons"]})
    if len(current) < drift.min_rows:
        result["verdict"] = "drift" if volume["drifted"] else "insufficient_data"
        result["message"] = (
            f"only {len(current)} current rows, fewer than drift.min_rows = {drift.min_rows}: "
            "too few to tell drift from noise; no verdict on the distributions was taken"
        )
        if volume["drifted"]:
            result["message"] = f"volume drifted: {volume['reasons'][0]}; " + result["message"]
        result["bad_records"] = current.bad_records.as_dict()
        if current.bad_records.count:
            result["message"] += (
                f" ({current.bad_records.count} problem(s) in log records, listed in the report)"
            )
        return result

    rows, _ = compare_features(reference, current, features.features, drift, workers)
    result["features"] = rows

    # Prediction drift: logged probabilities if every current row has one, else the model's scores.
    if model is not None:
        reference_frame = _frame_for_model(reference, features, [], "reference")
        reference_scores = score(model, reference_frame, features, data.positive_label)
        logged = current.numeric(PROBABILITY, "a probability") if PROBABILITY in current else None
        if logged is not None and np.isfinite(logged).all():
            current_scores, source = logged, "logged probability"
        elif not missing:
            current_frame = _frame_for_model(current, features, [], "current")
            current_scores = score(model, current_frame, features, data.positive_label)
            source = (
                "model score"
                if len(current) <= MAX_SCORED_ROWS
                else f"model score ({MAX_SCORED_ROWS:,} rows)"
            )
        else:
            current_scores, source = None, ""
        if current_scores is not None:
            result["prediction"] = compare_predictions(reference_scores, current_scores, drift, source)

    # Label (prior) drift and concept drift, when the outcomes are known.
    current_labels = _label_counts(current, data.target)
    labelled = sum(current_labels.values())
    if labelled >= drift.min_rows:
        reference_labels = _label_counts(reference, data.target)
        if reference_labels:
            thr = thresholds_for(data.target, drift)
            target = compare_categorical(data.target, reference_labels, current_labels, thr)
            target["kind"] = "target"
            result["target"] = target
        if model is not None and not missing:
            base = reference if baseline is None else as_columns(baseline, baseline_name)
            if _label_counts(base, data.target):
                base_rows = _frame_for_model(base, features, [data.target], baseline_name, data.target)
                cur_rows = _frame_for_model(current, features, [data.target], "current", data.target)
                positive = str(data.positive_label)
                result["performance"] = compare_performance(
                    (base_rows[data.target].astype(str) == positive).to_numpy(dtype=np.int8),
                    score(model, base_rows, features, data.positive_label),
                    (cur_rows[data.target].astype(str) == positive).to_numpy(dtype=np.int8),
                    score(model, cur_rows, features, data.positive_label),
                    settings,
                    baseline_name,
                    baseline is not None,
                )
                result["performance"]["labelled_rows"] = labelled
    elif labelled:
        result["message"] = (
            f"{labelled} labelled current rows (fewer than {drift.min_rows}): performance was not compared"
        )

    # One family: every p-value of this check, corrected together, then every verdict decided. A
    # missing-rate test joins only where either side has missing values (else p = 1 by construction
    # and it would only dilute the others).
    tested = [*rows, *(r for r in (result["prediction"], result["target"]) if r is not None)]
    with_missing = [
        i for i, row in enumerate(rows) if row["missing_rate_reference"] or row["missing_rate_current"]
    ]
    family = [row["p_value"] for row in tested] + [rows[i]["missing_p_value"] for i in with_missing]
    adjusted = adjust_p_values(family, drift.correction)
    missing_adjusted = dict(zip(with_missing, adjusted[len(tested) :], strict=True))
    for i, row in enumerate(tested):
        decide(row, adjusted[i], missing_adjusted.get(i, 1.0) if i < len(rows) else None)
        if row["kind"] == "prediction" or row["kind"] == "target":
            row["missing_drifted"], row["drifted"] = False, row["distribution_drifted"]
            row["verdict"] = "drift" if row["drifted"] else "no_drift"
    result["tests"] = len(family)

    for row in rows:
        if row["distribution_drifted"]:
            result["findings"].append(
                {"kind": "distribution", "name": row["name"], "reasons": row["effects"]}
            )
        if row["missing_drifted"]:
            result["findings"].append(
                {"kind": "missing_rate", "name": row["name"], "reasons": row["reasons"][-1:]}
            )
    result["drifted_features"] = [r["name"] for r in rows if r["drifted"]]

    parts = []
    if result["drifted_features"]:
        parts.append(
            f"{len(result['drifted_features'])} feature(s) drifted: {', '.join(result['drifted_features'])}"
        )
    missing_rate = [r["name"] for r in rows if r["missing_drifted"]]
    if missing_rate:
        parts.append(f"missing values changed in {', '.join(missing_rate)}")
    if volume["drifted"]:
        parts.append(f"volume changed: {volume['reasons'][0]}")
    for key, label in (
        ("prediction", "prediction distribution"),
        ("target", "label distribution"),
        ("performance", "model performance (concept drift)"),
    ):
        if result[key] is not None and result[key]["drifted"]:
            parts.append(f"{label} drifted")
            result["findings"].append({"kind": key, "name": key, "reasons": result[key]["reasons"]})
    drifted = bool(result["findings"])
    result["verdict"] = "drift" if drifted else "no_drift"
    if not result["message"]:
        result["message"] = "; ".join(parts) if parts else "no feature, prediction or performance drift"
    if missing:
        result["message"] += f" (not in the current data, not checked: {', '.join(missing)})"
    result["bad_records"] = current.bad_records.as_dict()  # values found unusable while reading count too
    if current.bad_records.count:
        result["message"] += f" ({current.bad_records.count} problem(s) in log records, listed in the report)"
    return result


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------


def _spark_pair(row: dict[str, Any]) -> tuple[str, str]:
    hist = row.get("histogram") or {}
    ref, cur = list(hist.get("reference", [])), list(hist.get("current", []))
    if row.get("kind") in {"categorical", "target"} and len(ref) > MAX_CATEGORY_BARS:
        ref, cur = ref[:MAX_CATEGORY_BARS], cur[:MAX_CATEGORY_BARS]
    top = max([*ref, *cur, 0.0])
    return sparkline(ref, top), sparkline(cur, top)


def render_markdown(result: dict[str, Any], source: str = "") -> str:
    from german_credit_scoring.markdown import render

    rows = []
    for row in [*result["features"], *(r for r in (result["prediction"], result["target"]) if r)]:
        ref_spark, cur_spark = _spark_pair(row)
        rows.append({**row, "spark_reference": ref_spark, "spark_current": cur_spark})
    return render("drift.md.j2", result=result, rows=rows, source=source)


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def numeric_to_contract(frame: pd.DataFrame, features: FeatureSet, source: str) -> pd.DataFrame:
    """Numeric features as float64; a value that is not a number is bad input, not a missing value."""
    import pandas as pd

    frame = frame.copy(deep=False)
    for feature in features.numeric:
        if feature.name not in frame.columns:
            continue
        column = frame[feature.name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            continue
        converted = pd.to_numeric(column, errors="coerce")
        bad = converted.isna() & column.notna()
        if bad.any():
            examples = column[bad].astype(str).unique()[:3].tolist()
            raise DataError(
                f"{source}: column {feature.name!r}: expected {feature.dtype}, found non-numeric values {examples}"
            )
        frame[feature.name] = converted.astype("float64")
    return frame


def run_drift(
    settings: Settings,
    features: FeatureSet,
    current_source: str | Path | None = None,
    reference_path: Path = paths.REFERENCE,
    model_path: Path | None = None,
    use_model: bool = True,
    json_path: Path = DRIFT_JSON,
    markdown_path: Path = DRIFT_MD,
    previous_rows: int | None = None,
) -> dict[str, Any]:
    """Read, compare, write reports/drift.json and reports/drift.md; returns the result.

    Bad input raises :class:`DataError` before anything is written: the last good report stays."""
    source = str(current_source or settings.drift.current)
    if not Path(reference_path).is_file():
        raise DataError(f"{reference_path}: reference snapshot not found (run the ingest stage first)")
    reference = read_file_columns(Path(reference_path))
    current = read_columns(source, settings.data.target)
    check_schema(current, features)  # before the model is loaded: bad input fails fast
    model, model_file = None, None
    if use_model:
        model_file = find_model(model_path)
        if model_file is not None:
            model = load_model(model_file)
    baseline, baseline_name = None, str(reference_path)
    if model is not None and paths.TEST.is_file() and Path(reference_path) == paths.REFERENCE:
        # held-out rows: the reference is the training data, on which the model looks better than it is
        baseline, baseline_name = read_file_columns(paths.TEST), str(paths.TEST)
    result = check_drift(
        reference,
        current,
        features,
        settings,
        model=model,
        baseline=baseline,
        baseline_name=baseline_name,
        previous_rows=previous_rows,
    )
    result["reference"] = str(reference_path)
    files = current.files
    result["current"] = {"source": source, "files": [str(f) for f in files[:50]], "file_count": len(files)}
    result["model"] = str(model_file) if model_file else None
    if not files:
        result["message"] += f" (no CSV, Parquet or JSON Lines files found at {source!r})"
    io.write_json(json_path, result)
    io.write_text(markdown_path, render_markdown(result, source))
    return result


def drift_cli(argv: list[str]) -> int:
    """``mlops drift``: exit 0 no drift or insufficient data, 1 drift, 2 bad input."""
    from german_credit_scoring.stage import EXIT_BAD_INPUT, EXIT_FAILED_CHECK, EXIT_OK, configure_logging

    parser = argparse.ArgumentParser(prog="mlops drift", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=paths.PARAMS, help="settings file (params.yaml)")
    parser.add_argument("--current", help="file, folder or glob of current data (default: drift.current)")
    parser.add_argument("--reference", type=Path, default=paths.REFERENCE, help="reference snapshot")
    parser.add_argument(
        "--model", type=Path, help="model for prediction drift (default: approved, else candidate)"
    )
    parser.add_argument("--no-model", action="store_true", help="skip prediction and performance drift")
    parser.add_argument("--json", type=Path, default=DRIFT_JSON, help="where to write the JSON result")
    parser.add_argument("--markdown", type=Path, default=DRIFT_MD, help="where to write the Markdown report")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = load_settings(args.params)
        features = load_features(settings.features)
        result = run_drift(
            settings,
            features,
            current_source=args.current,
            reference_path=args.reference,
            model_path=args.model,
            use_model=not args.no_model,
            json_path=args.json,
            markdown_path=args.markdown,
        )
    except ProjectError as error:
        log.error("drift cannot run: %s", error)
        return EXIT_BAD_INPUT
    print(f"drift: {result['verdict']}: {result['message']}")
    print(f"wrote {args.json} and {args.markdown}")
    return EXIT_FAILED_CHECK if result["verdict"] == "drift" else EXIT_OK

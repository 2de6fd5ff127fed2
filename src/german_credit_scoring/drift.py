"""Drift monitoring: is the data the model sees today still like the data it was trained on?

Compares a *current* batch (by default the service's prediction logs) with the training reference
snapshot, per declared feature, and for the model's scores and, when labels are back, its accuracy.

Verdicts are taken on **effect sizes** (PSI, Kolmogorov-Smirnov statistic, Jensen-Shannon distance)
with thresholds from ``params.yaml``; p-values are reported beside them and also have to be small
(``drift.alpha``): at 100k rows a p-value flags differences too small to matter, at 200 rows an effect
size alone flags sampling noise. Requiring both keeps the alarm meaningful at any batch size.

Every statistic is vectorised numpy over sorted arrays: the reference and current columns are sorted
once, and KS, the reference-quantile PSI bins and the display histogram all come from binary searches
into those sorted arrays.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from german_credit_scoring import io, paths
from german_credit_scoring.contract import FeatureDefinition, FeatureSet, load_features
from german_credit_scoring.errors import DataError, ProjectError, SettingsError
from german_credit_scoring.settings import DriftSettings, Settings, load_settings

log = logging.getLogger(__name__)

DRIFT_JSON = paths.DRIFT_RESULT
DRIFT_MD = paths.DRIFT_MD

# Frequencies are floored at this value before logs are taken (an empty bin would make PSI infinite).
PSI_EPSILON = 1e-4
# Column that carries the model's probability in a flattened current frame.
PROBABILITY = "__probability__"
MISSING = "__missing__"
SPARK = "▁▂▃▄▅▆▇█"
DISPLAY_BINS = 12
MAX_CATEGORY_BARS = 16
THRESHOLD_KEYS = {"psi_threshold", "ks_threshold", "js_threshold", "alpha"}
LOG_SUFFIXES = (".jsonl", ".json", ".ndjson")
# Rows scored by the model per side: score distributions and ROC AUC are precise to ~0.003 at this
# size, and scoring millions of rows through the pipeline would cost more than everything else.
MAX_SCORED_ROWS = 200_000
TABLE_SUFFIXES = (".csv", ".parquet", ".pq", *LOG_SUFFIXES)


# --------------------------------------------------------------------------------------------------
# Statistics (pure, numpy)
# --------------------------------------------------------------------------------------------------


def psi(reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population Stability Index over aligned bins: sum((c - r) * ln(c / r)) of floored frequencies."""
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    if ref.sum() == 0 or cur.sum() == 0:
        return float("nan")
    r = np.maximum(ref / ref.sum(), epsilon)
    c = np.maximum(cur / cur.sum(), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Jensen-Shannon distance with natural logs, as ``scipy.spatial.distance.jensenshannon`` (and
    Evidently) compute it: 0 for identical distributions, sqrt(ln 2) ~ 0.833 for disjoint ones."""
    p = np.asarray(reference_counts, dtype=float)
    q = np.asarray(current_counts, dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    return float(math.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


def chi_square(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Pearson chi-square test of homogeneity on a 2 x K table (no continuity correction).

    Equal to ``scipy.stats.chi2_contingency(table, correction=False)`` after dropping empty columns.
    """
    from scipy.stats import chi2

    table = np.vstack([np.asarray(reference_counts, float), np.asarray(current_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return statistic, float(chi2.sf(statistic, dof))


def ks_sorted(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> tuple[float, float]:
    """Two-sample KS on already sorted, NaN-free arrays: (statistic, asymptotic two-sided p-value).

    The empirical CDFs only step at sample points, so the largest gap is found at the last copy of
    each distinct value of either sample; each CDF there is a position in its own sorted array.
    Matches ``scipy.stats.ks_2samp(a, b, method="asymp")``.
    """
    from scipy.stats import kstwo

    n, m = len(reference_sorted), len(current_sorted)
    if n == 0 or m == 0:
        return float("nan"), float("nan")
    gaps = []
    for own, other, own_n, other_n in (
        (reference_sorted, current_sorted, n, m),
        (current_sorted, reference_sorted, m, n),
    ):
        last = np.flatnonzero(np.append(own[1:] != own[:-1], True))  # last index of each distinct value
        own_cdf = (last + 1) / own_n
        other_cdf = np.searchsorted(other, own[last], side="right") / other_n
        gaps.append(np.max(np.abs(own_cdf - other_cdf)))
    statistic = float(max(gaps))
    big, small = max(n, m), min(n, m)
    en = big * small / (big + small)
    p_value = float(np.clip(kstwo.sf(statistic, np.round(en)), 0.0, 1.0))
    return statistic, p_value


def quantile_edges(reference_sorted: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at reference quantiles; repeated values collapse, so a discrete feature gets
    one bin per distinct value rather than empty bins."""
    if len(reference_sorted) == 0:
        return np.array([])
    positions = (np.arange(1, bins) * len(reference_sorted)) // bins
    edges = np.unique(reference_sorted[np.clip(positions, 0, len(reference_sorted) - 1)])
    return edges[edges < reference_sorted[-1]]  # no bin above the reference maximum: it would be empty


def counts_in_bins(sorted_values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
    """Counts in (-inf, e1], (e1, e2], ..., (ek, inf) for a sorted array: k + 1 binary searches."""
    cuts = np.searchsorted(sorted_values, inner_edges, side="right")
    return np.diff(np.concatenate([[0], cuts, [len(sorted_values)]]))


def display_histogram(
    reference_sorted: np.ndarray, current_sorted: np.ndarray, bins: int = DISPLAY_BINS
) -> dict[str, Any]:
    """Equal-width bins over the reference range (outliers land in the end bins), as fractions."""
    if len(reference_sorted) == 0:
        return {"edges": [], "reference": [], "current": []}
    low, high = float(reference_sorted[0]), float(reference_sorted[-1])
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    inner = edges[1:-1]
    ref = counts_in_bins(reference_sorted, inner)
    cur = counts_in_bins(current_sorted, inner)
    return {
        "edges": edges.tolist(),
        "reference": (ref / max(ref.sum(), 1)).tolist(),
        "current": (cur / max(cur.sum(), 1)).tolist(),
    }


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

    def as_dict(self) -> dict[str, float]:
        return {
            "psi_threshold": self.psi,
            "ks_threshold": self.ks,
            "js_threshold": self.js,
            "alpha": self.alpha,
        }


def alpha_of(drift: DriftSettings) -> float:
    return float(drift.alpha)


def thresholds_for(name: str, drift: DriftSettings) -> Thresholds:
    override = drift.per_feature.get(name, {})
    return Thresholds(
        psi=float(override.get("psi_threshold", drift.psi_threshold)),
        ks=float(override.get("ks_threshold", drift.ks_threshold)),
        js=float(override.get("js_threshold", drift.js_threshold)),
        alpha=float(override.get("alpha", alpha_of(drift))),
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


def _numeric(values: pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(values, pd.Series):
        values = pd.to_numeric(values, errors="coerce")
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return np.asarray(values, dtype="float64")


def compare_numeric(
    name: str, reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray, bins: int, thr: Thresholds
) -> dict[str, Any]:
    """PSI on reference-quantile bins, KS, chi-square on the same bins, missing rates, histogram."""
    ref_all, cur_all = _numeric(reference), _numeric(current)
    ref_nan, cur_nan = np.isnan(ref_all), np.isnan(cur_all)
    ref = np.sort(ref_all[~ref_nan]) if ref_nan.any() else np.sort(ref_all)
    cur = np.sort(cur_all[~cur_nan]) if cur_nan.any() else np.sort(cur_all)
    edges = quantile_edges(ref, bins)
    ref_counts, cur_counts = counts_in_bins(ref, edges), counts_in_bins(cur, edges)
    value_psi = psi(ref_counts, cur_counts)
    ks_stat, ks_p = ks_sorted(ref, cur)
    chi2_stat, chi2_p = chi_square(ref_counts, cur_counts)
    reasons = []
    if value_psi > thr.psi:
        reasons.append(f"PSI {value_psi:.3f} > {thr.psi:g}")
    if ks_stat > thr.ks:
        reasons.append(f"KS {ks_stat:.3f} > {thr.ks:g}")
    significant = min(ks_p, chi2_p) < thr.alpha
    drifted = bool(reasons) and significant
    if reasons and not significant:
        reasons.append(f"but not significant (p >= {thr.alpha:g}): sampling noise")
    return {
        "name": name,
        "kind": "numeric",
        "drifted": drifted,
        "verdict": "drift" if drifted else "no_drift",
        "reasons": reasons,
        "psi": value_psi,
        "ks_statistic": ks_stat,
        "ks_p_value": ks_p,
        "chi2_statistic": chi2_stat,
        "chi2_p_value": chi2_p,
        "js_distance": js_distance(ref_counts, cur_counts),
        "missing_rate_reference": float(ref_nan.mean()) if len(ref_all) else None,
        "missing_rate_current": float(cur_nan.mean()) if len(cur_all) else None,
        "mean_reference": float(ref.mean()) if len(ref) else None,
        "mean_current": float(cur.mean()) if len(cur) else None,
        "unseen_categories": {},
        "thresholds": thr.as_dict(),
        "histogram": display_histogram(ref, cur),
    }


def _category_counts(values: pd.Series) -> dict[str, int]:
    counts = values.value_counts(dropna=False, sort=False)
    out: dict[str, int] = {}
    for key, count in counts.items():
        label = (
            MISSING
            if key is None or (isinstance(key, float) and math.isnan(key)) or key is pd.NA
            else str(key)
        )
        out[label] = out.get(label, 0) + int(count)
    return out


def compare_categorical(
    name: str,
    reference: pd.Series,
    current: pd.Series,
    thr: Thresholds,
    allowed: Iterable[str] | None = None,
) -> dict[str, Any]:
    """PSI, chi-square and Jensen-Shannon over categories (missing is a category of its own).

    A category never seen in the reference (nor declared) is listed under ``unseen_categories``; it
    takes part in every statistic, so a large unseen share is drift by itself.
    """
    ref_counts_map = _category_counts(reference)
    cur_counts_map = _category_counts(current)
    known = set(ref_counts_map) | set(allowed or ())
    order = sorted(ref_counts_map, key=lambda k: (-ref_counts_map[k], k))
    order += sorted(set(allowed or ()) - set(ref_counts_map))
    unseen = {k: v for k, v in sorted(cur_counts_map.items(), key=lambda kv: -kv[1]) if k not in known}
    order += list(unseen)
    ref_counts = np.array([ref_counts_map.get(k, 0) for k in order], dtype=float)
    cur_counts = np.array([cur_counts_map.get(k, 0) for k in order], dtype=float)
    value_psi = psi(ref_counts, cur_counts)
    value_js = js_distance(ref_counts, cur_counts)
    chi2_stat, chi2_p = chi_square(ref_counts, cur_counts)
    reasons = []
    if value_psi > thr.psi:
        reasons.append(f"PSI {value_psi:.3f} > {thr.psi:g}")
    if value_js > thr.js:
        reasons.append(f"JS {value_js:.3f} > {thr.js:g}")
    significant = chi2_p < thr.alpha
    drifted = bool(reasons) and significant
    if reasons and not significant:
        reasons.append(f"but not significant (p >= {thr.alpha:g}): sampling noise")
    n_ref, n_cur = max(ref_counts.sum(), 1), max(cur_counts.sum(), 1)
    return {
        "name": name,
        "kind": "categorical",
        "drifted": drifted,
        "verdict": "drift" if drifted else "no_drift",
        "reasons": reasons,
        "psi": value_psi,
        "ks_statistic": None,
        "ks_p_value": None,
        "chi2_statistic": chi2_stat,
        "chi2_p_value": chi2_p,
        "js_distance": value_js,
        "missing_rate_reference": ref_counts_map.get(MISSING, 0) / n_ref,
        "missing_rate_current": cur_counts_map.get(MISSING, 0) / n_cur,
        "unseen_categories": unseen,
        "unseen_rate_current": sum(unseen.values()) / n_cur,
        "thresholds": thr.as_dict(),
        "histogram": {
            "categories": order,
            "reference": (ref_counts / n_ref).tolist(),
            "current": (cur_counts / n_cur).tolist(),
        },
    }


def compare_features(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Iterable[FeatureDefinition],
    drift: DriftSettings,
    workers: int | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every declared feature present in both frames, in parallel threads (numpy releases the GIL).

    Returns the per-feature results in contract order and the features absent from the current data.
    """
    features = list(features)
    missing = [f.name for f in features if f.name not in current.columns]
    absent_in_reference = [f.name for f in features if f.name not in reference.columns]
    if absent_in_reference:
        raise DataError(f"reference data lacks the declared features {absent_in_reference}")
    todo = [f for f in features if f.name in current.columns]

    def one(feature: FeatureDefinition) -> dict[str, Any]:
        thr = thresholds_for(feature.name, drift)
        if feature.is_numeric:
            return compare_numeric(
                feature.name, reference[feature.name], current[feature.name], drift.bins, thr
            )
        return compare_categorical(
            feature.name, reference[feature.name], current[feature.name], thr, feature.allowed_values
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


def compare_predictions(
    reference_scores: np.ndarray, current_scores: np.ndarray, drift: DriftSettings, source: str
) -> dict[str, Any]:
    """The score distribution is a numeric feature whose PSI threshold is the prediction one."""
    override = drift.per_feature.get("prediction", {})
    thr = Thresholds(
        psi=float(override.get("psi_threshold", drift.prediction_psi_threshold)),
        ks=float(override.get("ks_threshold", 1.0)),  # the decision is on PSI unless a KS bound is set
        js=1.0,
        alpha=float(override.get("alpha", alpha_of(drift))),
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


def resolve_sources(source: str | Path) -> list[Path]:
    """A file, a folder (every table or log file under it) or a glob pattern; sorted for stable output."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        found = [Path(p) for p in glob.glob(text, recursive=True)]
    else:
        path = Path(text)
        if path.is_file():
            return [path]
        if path.is_dir():
            found = [p for p in path.rglob("*") if p.is_file()]
        else:
            return []
    return sorted(p for p in found if p.is_file() and _is_table(p))


def _is_table(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and (name.endswith(TABLE_SUFFIXES) or name.endswith(".csv.gz"))


def _flatten_record(record: dict[str, Any], target: str) -> list[dict[str, Any]]:
    """A prediction-log record (inputs/outputs) or a flat row -> flat rows with ``PROBABILITY``."""
    if "inputs" not in record:
        row = dict(record)
        if "probability" in row and PROBABILITY not in row:
            row[PROBABILITY] = row.pop("probability")
        return [row]
    inputs, outputs = record.get("inputs"), record.get("outputs") or {}
    if isinstance(inputs, dict):
        inputs, outputs = [inputs], [outputs] if isinstance(outputs, dict) else outputs
    if not isinstance(outputs, list):
        outputs = [outputs] * len(inputs)
    if isinstance(outputs, list) and len(outputs) == 1 and len(inputs) > 1 and isinstance(outputs[0], dict):
        # a batch record whose outputs hold lists: {"probability": [...], "decision": [...]}
        first = outputs[0]
        if isinstance(first.get("probability"), list):
            outputs = [{"probability": p} for p in first["probability"]]
    rows = []
    for i, item in enumerate(inputs):
        row = dict(item)
        out = outputs[i] if i < len(outputs) and isinstance(outputs[i], dict) else {}
        if "probability" in out:
            row[PROBABILITY] = out["probability"]
        for key in ("model_version", "timestamp", "request_id"):
            if key in record:
                row[f"__{key}__"] = record[key]
        if target in record and target not in row:
            row[target] = record[target]
        rows.append(row)
    return rows


def read_log(path: Path, target: str) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        text = handle.read()
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of records
        try:
            records = json.loads(text)
        except ValueError as error:
            raise DataError(f"{path}: not valid JSON: {error}") from None
    else:
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as error:
                raise DataError(f"{path}:{number}: not a JSON object: {error.msg}") from None
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {number} is a {type(record).__name__}, expected a JSON object")
        rows.extend(_flatten_record(record, target))
    return pd.DataFrame.from_records(rows)


def read_current(source: str | Path, target: str) -> tuple[pd.DataFrame, list[Path]]:
    """All current rows from a file, folder or glob (CSV, Parquet, JSON Lines prediction logs)."""
    from german_credit_scoring.data import read_table

    files = resolve_sources(source)
    frames = []
    for path in files:
        name = path.name.lower()
        if name.endswith(LOG_SUFFIXES):
            frame = read_log(path, target)
        else:
            frame = read_table(path)
            if "probability" in frame.columns and PROBABILITY not in frame.columns:
                frame = frame.rename(columns={"probability": PROBABILITY})
        if len(frame):
            frames.append(frame)
    if not frames:
        return pd.DataFrame(), files
    return (frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)), files


# --------------------------------------------------------------------------------------------------
# The whole check
# --------------------------------------------------------------------------------------------------


def _labels(frame: pd.DataFrame, target: str, positive_label: str) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and the mask of rows that have one."""
    if target not in frame.columns:
        return np.zeros(0, dtype=np.int8), np.zeros(len(frame), dtype=bool)
    column = frame[target]
    known = column.notna().to_numpy()
    labels = (column[known].astype(str) == str(positive_label)).to_numpy(dtype=np.int8)
    return labels, known


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: FeatureSet,
    settings: Settings,
    model=None,
    baseline: pd.DataFrame | None = None,
    baseline_name: str = "reference",
    workers: int | None = None,
) -> dict[str, Any]:
    """Compare ``current`` with ``reference``; the result is what reports/drift.json holds.

    ``model`` (optional) scores the reference for prediction drift, and scores current rows that
    carry no logged probability. ``baseline`` (default: the reference) holds the labelled rows
    against which the current performance is compared when current labels are present.
    """
    drift, data = settings.drift, settings.data
    check_per_feature(drift, features, data.target)
    result: dict[str, Any] = {
        "verdict": "no_drift",
        "message": "",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reference_rows": len(reference),
        "current_rows": len(current),
        "min_rows": drift.min_rows,
        "thresholds": {
            "psi_threshold": drift.psi_threshold,
            "ks_threshold": drift.ks_threshold,
            "js_threshold": drift.js_threshold,
            "alpha": alpha_of(drift),
            "prediction_psi_threshold": drift.prediction_psi_threshold,
            "performance_drop_threshold": drift.performance_drop_threshold,
            "bins": drift.bins,
            "per_feature": drift.per_feature,
        },
        "features": [],
        "drifted_features": [],
        "missing_features": [],
        "prediction": None,
        "target": None,
        "performance": None,
    }
    if len(current) < drift.min_rows:
        result["verdict"] = "insufficient_data"
        result["message"] = (
            f"only {len(current)} current rows, fewer than drift.min_rows = {drift.min_rows}: "
            "too few to tell drift from noise; no verdict on drift was taken"
        )
        return result

    rows, missing = compare_features(reference, current, features.features, drift, workers)
    if len(missing) == len(features.features):
        raise DataError(
            f"the current data has none of the declared features {features.names} "
            f"(its columns: {[c for c in current.columns if not str(c).startswith('__')][:20]})"
        )
    result["features"] = rows
    result["missing_features"] = missing
    result["drifted_features"] = [r["name"] for r in rows if r["drifted"]]

    # Prediction drift: logged probabilities if every current row has one, else the model's scores.
    if model is not None:
        reference_scores = score(model, _at_most(reference), features, data.positive_label)
        logged = current[PROBABILITY] if PROBABILITY in current.columns else None
        if logged is not None and logged.notna().all():
            current_scores, source = _numeric(logged), "logged probability"
        elif not missing:
            current_scores = score(model, _at_most(current), features, data.positive_label)
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
    current_labels, known = _labels(current, data.target, data.positive_label)
    if len(current_labels) >= drift.min_rows:
        ref_labels, ref_known = _labels(reference, data.target, data.positive_label)
        if len(ref_labels):
            thr = thresholds_for(data.target, drift)
            target = compare_categorical(
                data.target,
                reference[data.target][ref_known].astype(str),
                current[data.target][known].astype(str),
                thr,
            )
            target["kind"] = "target"
            result["target"] = target
        if model is not None and not missing:
            base = reference if baseline is None else baseline
            base_labels, base_known = _labels(base, data.target, data.positive_label)
            if len(base_labels):
                base_rows, cur_rows = _at_most(base[base_known]), _at_most(current[known])
                base_labels = _labels(base_rows, data.target, data.positive_label)[0]
                cur_labels = _labels(cur_rows, data.target, data.positive_label)[0]
                base_scores = score(model, base_rows, features, data.positive_label)
                cur_scores = score(model, cur_rows, features, data.positive_label)
                result["performance"] = compare_performance(
                    base_labels,
                    base_scores,
                    cur_labels,
                    cur_scores,
                    settings,
                    baseline_name,
                    baseline is not None,
                )
                result["performance"]["labelled_rows"] = len(current_labels)
    elif len(current_labels):
        result["message"] = (
            f"{len(current_labels)} labelled current rows (fewer than {drift.min_rows}): "
            "performance was not compared"
        )

    drifted = bool(result["drifted_features"])
    parts = []
    if result["drifted_features"]:
        parts.append(
            f"{len(result['drifted_features'])} feature(s) drifted: {', '.join(result['drifted_features'])}"
        )
    for key, label in (
        ("prediction", "prediction distribution"),
        ("target", "label distribution"),
        ("performance", "model performance (concept drift)"),
    ):
        if result[key] is not None and result[key]["drifted"]:
            drifted = True
            parts.append(f"{label} drifted")
    result["verdict"] = "drift" if drifted else "no_drift"
    if not result["message"]:
        result["message"] = "; ".join(parts) if parts else "no feature, prediction or performance drift"
    if missing:
        result["message"] += f" (not in the current data, not checked: {', '.join(missing)})"
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
    """Numeric features as float64; a value that is not a number is bad input, not a missing value.

    Categorical columns are left as read (any dtype is counted as text): converting a million
    Arrow strings to Python objects would cost more than the whole drift check.
    """
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
) -> dict[str, Any]:
    """Read, compare, write reports/drift.json and reports/drift.md; returns the result."""
    from german_credit_scoring.data import read_table

    source = str(current_source or settings.drift.current)
    if not Path(reference_path).is_file():
        raise DataError(f"{reference_path}: reference snapshot not found (run the ingest stage first)")
    reference = read_table(reference_path)
    current, files = read_current(source, settings.data.target)
    if len(current):
        current = numeric_to_contract(current, features, source)
    model, model_file = None, None
    if use_model:
        model_file = find_model(model_path)
        if model_file is not None:
            model = load_model(model_file)
    baseline, baseline_name = None, str(reference_path)
    if paths.TEST.is_file() and Path(reference_path) == paths.REFERENCE:
        # held-out rows: the reference is the training data, on which the model looks better than it is
        baseline, baseline_name = read_table(paths.TEST), str(paths.TEST)
    result = check_drift(
        reference, current, features, settings, model=model, baseline=baseline, baseline_name=baseline_name
    )
    result["reference"] = str(reference_path)
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

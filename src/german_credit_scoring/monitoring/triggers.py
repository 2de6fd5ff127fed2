"""Retraining triggers: one pure function turns the monitoring results into typed evidence.

``evaluate`` takes the drift result (reports/drift.json), the production performance
(reports/performance.json), the test metrics of the model in production (metrics/evaluate.json) and
when that model was packaged (its lineage), and returns a ``TriggerReport``: per trigger of
``monitoring.triggers`` its name, whether it fired, what was observed, the threshold and the window.
``mlops triggers`` writes it to reports/triggers.json and reports/triggers.md, the evidence the
retraining pull request's body names.

Performance and fairness triggers judge the confidence interval, not the point: a drop fires only when
the whole interval is worse than the limit, so a small labelled window does not raise an alarm.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from german_credit_scoring import io, paths
from german_credit_scoring.monitoring.labels import PERFORMANCE_JSON, PerformanceReport
from german_credit_scoring.settings import TriggerSettings

TRIGGERS_JSON = Path("reports/triggers.json")
TRIGGERS_MD = Path("reports/triggers.md")
HIGHER_IS_BETTER = {"roc_auc": True, "recall": True, "expected_cost": False}


class TriggerEvidence(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    fired: bool
    observed: float | str | None
    threshold: float | str | None
    window: str | None = None
    detail: str = ""


class TriggerReport(BaseModel):
    """reports/triggers.json: one writer (``mlops triggers``), read by ``mlops retrain-pr``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generated_at: str
    fired: bool
    fired_names: list[str] = Field(default_factory=list)
    triggers: list[TriggerEvidence] = Field(default_factory=list)

    def markdown(self) -> str:
        def show(value: Any) -> str:
            if value is None:
                return "n/a"
            return f"{value:.4g}" if isinstance(value, float) else str(value)

        head = (
            f"**Retraining triggered by: {', '.join(self.fired_names)}**"
            if self.fired
            else "No retraining trigger fired."
        )
        lines = [
            "## Retraining triggers",
            "",
            head,
            "",
            "| trigger | fired | observed | threshold | window | evidence |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {t.name} | {'**yes**' if t.fired else 'no'} | {show(t.observed)} | {show(t.threshold)} | "
            f"{t.window or ''} | {t.detail} |"
            for t in self.triggers
        ]
        return "\n".join(lines) + "\n"


def _drift_window(drift: dict[str, Any]) -> str | None:
    window = drift.get("window") or {}
    if window.get("start"):
        return f"{window['start']} to {window['end']} (model {window.get('model_version')})"
    return None


def evaluate(
    settings: TriggerSettings,
    drift: dict[str, Any] | None = None,
    performance: PerformanceReport | None = None,
    baseline: dict[str, float] | None = None,
    packaged_at: datetime | None = None,
    now: datetime | None = None,
) -> TriggerReport:
    """Pure: every configured trigger with its evidence; missing inputs are reported as not fired."""
    now = now or datetime.now(UTC)
    found: list[TriggerEvidence] = []
    drift_usable = bool(drift) and drift.get("verdict") in ("drift", "no_drift")
    window = _drift_window(drift) if drift else None
    if settings.feature_drift:
        drifted = list(drift.get("drifted_features") or []) if drift_usable else []
        found.append(
            TriggerEvidence(
                name="feature_drift",
                fired=bool(drifted),
                observed=len(drifted) if drift_usable else None,
                threshold="any feature drifted",
                window=window,
                detail=", ".join(drifted) if drifted else (drift or {}).get("verdict", "no drift report"),
            )
        )
    if settings.prediction_drift:
        prediction = (drift or {}).get("prediction") if drift_usable else None
        found.append(
            TriggerEvidence(
                name="prediction_drift",
                fired=bool(prediction and prediction.get("drifted")),
                observed=(prediction or {}).get("psi"),
                threshold=((drift or {}).get("thresholds") or {}).get("prediction_psi_threshold"),
                window=window,
                detail=(prediction or {}).get("current_source", "")
                if prediction
                else "no prediction comparison",
            )
        )
    latest = None
    if performance is not None:
        labelled = [w for w in performance.windows if w.labelled]
        latest = labelled[-1] if labelled else None
    if settings.max_performance_drop is not None:
        metric = settings.performance_metric
        base = (baseline or {}).get(metric)
        interval = getattr(latest, metric) if latest is not None else None
        fired, detail, limit = False, "no labelled window", None
        if base is None:
            detail = f"no test {metric} for the production model"
        elif interval is not None and interval.low is not None:
            higher = HIGHER_IS_BETTER[metric]
            limit = base - settings.max_performance_drop if higher else base + settings.max_performance_drop
            fired = interval.high < limit if higher else interval.low > limit
            detail = (
                f"{metric} {interval.estimate:.3f} [{interval.low:.3f}, {interval.high:.3f}] "
                f"on {latest.labelled} labelled rows vs test {base:.3f}"
            )
        elif latest is not None:
            detail = f"{latest.labelled} labelled rows: no interval for {metric}"
        found.append(
            TriggerEvidence(
                name="performance_drop",
                fired=fired,
                observed=interval.estimate if interval is not None else None,
                threshold=limit,
                window=f"{latest.start} to {latest.end}" if latest else None,
                detail=detail,
            )
        )
    if settings.max_fairness_gap is not None:
        worst_name, worst = None, None
        for name, gap in (latest.parity_difference if latest else {}).items():
            if gap.low is not None and (worst is None or gap.low > worst.low):
                worst_name, worst = name, gap
        found.append(
            TriggerEvidence(
                name="fairness_drop",
                fired=bool(worst and worst.low > settings.max_fairness_gap),
                observed=worst.estimate if worst else None,
                threshold=settings.max_fairness_gap,
                window=f"{latest.start} to {latest.end}" if latest else None,
                detail=(
                    f"demographic parity difference ({worst_name}) lower bound {worst.low:.3f}"
                    if worst
                    else "no protected attributes with the outcomes"
                ),
            )
        )
    if settings.min_new_labelled_rows is not None:
        new_rows = 0
        if performance is not None:
            since = packaged_at.date().isoformat() if packaged_at else ""
            new_rows = sum(w.labelled for w in performance.windows if w.end >= since)
        found.append(
            TriggerEvidence(
                name="new_labelled_rows",
                fired=new_rows >= settings.min_new_labelled_rows,
                observed=new_rows,
                threshold=settings.min_new_labelled_rows,
                window=f"since {packaged_at.date().isoformat()}" if packaged_at else None,
                detail="matured, labelled production rows the model has not been trained on",
            )
        )
    if settings.max_model_age_days is not None:
        age = (now - packaged_at).total_seconds() / 86400 if packaged_at else None
        found.append(
            TriggerEvidence(
                name="model_age",
                fired=age is not None and age > settings.max_model_age_days,
                observed=round(age, 1) if age is not None else None,
                threshold=settings.max_model_age_days,
                window=None,
                detail=f"packaged {packaged_at.isoformat()}" if packaged_at else "packaging time unknown",
            )
        )
    fired = [t.name for t in found if t.fired]
    return TriggerReport(
        generated_at=now.isoformat(timespec="seconds"), fired=bool(fired), fired_names=fired, triggers=found
    )


def triggers_cli(argv: list[str]) -> int:
    from german_credit_scoring.monitoring.commands import EXIT_OK, guarded
    from german_credit_scoring.monitoring.lineage import load_lineage
    from german_credit_scoring.settings import load_settings

    parser = argparse.ArgumentParser(prog="mlops triggers", description="evaluate the retraining triggers")
    parser.add_argument("--params", type=Path, default=paths.PARAMS)
    parser.add_argument("--drift", type=Path, default=paths.DRIFT_RESULT)
    parser.add_argument("--performance", type=Path, default=PERFORMANCE_JSON)
    parser.add_argument(
        "--baseline", type=Path, default=paths.EVALUATE_METRICS, help="production's test metrics"
    )
    parser.add_argument("--json", type=Path, default=TRIGGERS_JSON)
    parser.add_argument("--markdown", type=Path, default=TRIGGERS_MD)
    args = parser.parse_args(argv)

    def body() -> int:
        settings = load_settings(args.params)
        drift = io.read_json(args.drift) if args.drift.is_file() else None
        performance = (
            PerformanceReport.model_validate(io.read_json(args.performance))
            if args.performance.is_file()
            else None
        )
        baseline = (io.read_json(args.baseline).get("overall") or {}) if args.baseline.is_file() else None
        lineage = load_lineage()
        entry = lineage.versions.get(lineage.production or "")
        packaged_at = datetime.fromisoformat(entry.packaged_at) if entry and entry.packaged_at else None
        report = evaluate(settings.monitoring.triggers, drift, performance, baseline, packaged_at)
        io.write_json(args.json, report.model_dump(mode="json"))
        io.write_text(args.markdown, report.markdown())
        print(
            f"triggers: {', '.join(report.fired_names) or 'none fired'} (wrote {args.json}, {args.markdown})"
        )
        return EXIT_OK

    return guarded("triggers", body)

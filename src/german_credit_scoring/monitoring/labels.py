"""Outcomes come back: ``mlops labels FILE...`` ingests outcome files and measures production.

An outcome file (CSV, JSON Lines or Parquet) has, per row, a key and the label (``data.target``):

- ``request_id`` (and ``record``, the position in a batch request, default 0), or
- the entity key column (``data.entity_key``): joined with the latest logged prediction whose input
  carries that key (hashed the same way when the contract marks it identifying),

optionally ``observed_at`` (when the outcome became known; default: ingestion time) and protected
attributes (``data.protected_attributes``; the service does not see them, outcomes may bring them).

Every row is accounted for (``OutcomeCounts``): malformed lines, labels outside the declared classes
and rows without a key are rejected and listed by file and line; valid rows are kept in the store
(``outcomes/ingested=<day>/``), also those whose prediction is not (yet) in the store (``unmatched``,
joined again on every later run). Joined, a prediction with several outcomes is a ``duplicate`` (same
label: used once) or a ``conflict`` (different labels: ``monitoring.labels.conflict`` drop or latest);
an outcome that came after ``late_after_days`` is ``late`` (still used); one whose prediction is younger
than ``maturity_days`` is ``immature`` (not yet used); matured predictions without an outcome make a
window ``partial`` (its coverage is reported).

Performance on matured, labelled predictions per window of ``window_days`` (ROC AUC with a bootstrap
interval, recall with a Wilson interval, expected cost per decision with the project's cost matrix and
a bootstrap interval) and per protected group (selection rate and recall with Wilson intervals, the
demographic parity difference with a bootstrap interval): a small window has a wide interval, and
the triggers judge the interval, not the point.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io as _io
import json
import logging
import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from german_credit_scoring import io, paths
from german_credit_scoring.errors import DataError
from german_credit_scoring.monitoring.store import OUTCOMES, LineProblem, Store, read_window
from german_credit_scoring.settings import Settings

log = logging.getLogger(__name__)

PERFORMANCE_JSON = Path("reports/performance.json")
PERFORMANCE_MD = Path("reports/performance.md")
OBSERVED_AT = "observed_at"
MAX_LISTED = 100


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OutcomeCounts(Frozen):
    """What happened to every outcome row read; nothing is silently dropped."""

    rows_read: int = 0
    accepted: int = 0
    malformed: int = 0
    unknown_label: int = 0
    missing_key: int = 0
    unmatched: int = 0  # kept: the prediction is not (yet) in the store
    duplicates: int = 0
    conflicts: int = 0
    conflicts_dropped: int = 0
    late: int = 0
    immature: int = 0
    ambiguous_entity: int = 0
    used: int = 0


class Interval(Frozen):
    estimate: float | None
    low: float | None
    high: float | None


class GroupPerformance(Frozen):
    attribute: str
    group: str
    n: int
    selection_rate: Interval
    recall: Interval


class WindowPerformance(Frozen):
    start: str
    end: str
    predictions: int  # matured predictions logged in the window
    labelled: int
    coverage: float  # labelled / predictions (a partial window has < 1)
    positives: int
    roc_auc: Interval
    recall: Interval
    expected_cost: Interval
    groups: list[GroupPerformance] = Field(default_factory=list)
    parity_difference: dict[str, Interval] = Field(default_factory=dict)


class PerformanceReport(Frozen):
    """reports/performance.json: written by ``mlops labels``, read by the triggers."""

    generated_at: str
    store: str
    classes: list[str]
    positive_label: str
    confidence: float
    counts: OutcomeCounts
    problems: list[LineProblem] = Field(default_factory=list)
    problem_count: int = 0
    windows: list[WindowPerformance] = Field(default_factory=list)
    labelled_rows_total: int = 0


# --------------------------------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------------------------------


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a proportion (sane at 0, 1 and small n)."""
    if n == 0:
        return Interval(estimate=None, low=None, high=None)
    z, p = _z(confidence), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(estimate=p, low=max(0.0, centre - half), high=min(1.0, centre + half))


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC by ranks (ties averaged); None without both classes."""
    from scipy.stats import rankdata

    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def bootstrap(
    statistic, arrays: tuple[np.ndarray, ...], draws: int, confidence: float, seed: int
) -> Interval:
    """Percentile bootstrap interval of ``statistic(*arrays)`` (resampling rows)."""
    n = len(arrays[0])
    estimate = statistic(*arrays) if n else None
    if not n or estimate is None:
        return Interval(estimate=estimate, low=None, high=None)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        index = rng.integers(0, n, n)
        value = statistic(*(a[index] for a in arrays))
        if value is not None:
            values.append(value)
    if len(values) < draws // 2:
        return Interval(estimate=estimate, low=None, high=None)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(estimate=float(estimate), low=float(low), high=float(high))


# --------------------------------------------------------------------------------------------------
# Reading outcome files
# --------------------------------------------------------------------------------------------------


def _rows_of(path: Path, problems: list[LineProblem]) -> list[tuple[int, dict[str, Any]]]:
    """(line, row) of a CSV (line 1 is the header), JSON Lines or Parquet file."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pandas as pd

        frame = pd.read_parquet(path)
        return [(i + 1, r) for i, r in enumerate(frame.to_dict("records"))]
    text = path.read_text(encoding="utf-8", errors="replace")
    out: list[tuple[int, dict[str, Any]]] = []
    if name.endswith((".jsonl", ".ndjson", ".json")):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                problems.append(LineProblem(file=str(path), line=number, problem=f"not a JSON line: {error}"))
                continue
            if not isinstance(record, dict):
                problems.append(LineProblem(file=str(path), line=number, problem="not a JSON object"))
                continue
            out.append((number, record))
        return out
    if not name.endswith((".csv", ".txt")):
        raise DataError(f"{path}: outcomes are read from .csv, .jsonl or .parquet files")
    reader = csv.reader(_io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: empty file (expected a header row)")
    for record in reader:
        number = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            problems.append(
                LineProblem(
                    file=str(path),
                    line=number,
                    problem=f"{len(record)} fields, the header has {len(header)}",
                )
            )
            continue
        out.append((number, {k: (v if v != "" else None) for k, v in zip(header, record, strict=True)}))
    return out


def parse_outcomes(
    path: Path, settings: Settings, classes: list[str], ingested_at: str, redactor=None
) -> tuple[list[dict[str, Any]], list[LineProblem], Counter]:
    """Valid outcome rows (normalised) and every rejected line with its reason."""
    data = settings.data
    problems: list[LineProblem] = []
    counts: Counter = Counter()
    rows = _rows_of(path, problems)
    counts["malformed"] += len(problems)
    counts["rows_read"] += len(rows) + len(problems)
    accepted = []
    protected = data.protected_names
    for number, record in rows:
        label = record.get(data.target)
        label = None if label is None else str(label)
        if label is None or label not in classes:
            counts["unknown_label"] += 1
            problems.append(
                LineProblem(
                    file=str(path),
                    line=number,
                    problem=f"{data.target} = {label!r} is not one of the declared classes {classes}",
                )
            )
            continue
        out: dict[str, Any] = {"label": label, "source": f"{path.name}:{number}", "ingested_at": ingested_at}
        request = record.get("request_id")
        entity = record.get(data.entity_key) if data.entity_key else None
        if request not in (None, ""):
            out["request_id"] = str(request)
            try:
                out["record"] = int(record.get("record") or 0)
            except (TypeError, ValueError):
                counts["malformed"] += 1
                problems.append(
                    LineProblem(
                        file=str(path),
                        line=number,
                        problem=f"record {record.get('record')!r} is not an integer",
                    )
                )
                continue
        elif entity not in (None, ""):
            key = redactor.redact({data.entity_key: entity}).get(data.entity_key) if redactor else entity
            out["entity"] = str(key)
        else:
            counts["missing_key"] += 1
            wanted = "request_id" + (f" or {data.entity_key}" if data.entity_key else "")
            problems.append(LineProblem(file=str(path), line=number, problem=f"no key: needs {wanted}"))
            continue
        observed = record.get(OBSERVED_AT)
        if observed not in (None, ""):
            try:
                out[OBSERVED_AT] = _parse_time(str(observed)).isoformat()
            except ValueError:
                counts["malformed"] += 1
                problems.append(
                    LineProblem(
                        file=str(path), line=number, problem=f"{OBSERVED_AT} {observed!r} is not a time"
                    )
                )
                continue
        for name in protected:
            if record.get(name) is not None:
                out[name] = record[name]
        accepted.append(out)
    counts["accepted"] += len(accepted)
    return accepted, problems, counts


def _parse_time(text: str) -> datetime:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def declared_classes(settings: Settings, reference: Path = paths.REFERENCE) -> list[str]:
    """The target's classes: those of the training reference, or of the dataset before the first ingest
    (the positive label is always among them)."""
    import pandas as pd

    classes = {settings.data.positive_label}
    if Path(reference).is_file():
        column = pd.read_parquet(reference, columns=[settings.data.target])[settings.data.target]
    else:
        from german_credit_scoring.monitoring.dataset import read_dataset

        frame = read_dataset(settings)
        column = frame[settings.data.target] if settings.data.target in frame.columns else pd.Series([])
    classes |= {str(v) for v in column.dropna().unique()}
    if len(classes) < 2:
        raise DataError(
            f"{reference}: the target {settings.data.target!r}'s classes are unknown (run the ingest stage)"
        )
    return sorted(classes)


def store_outcomes(store: Store, rows: list[dict[str, Any]], content: bytes, day: date) -> str:
    """Keep accepted rows in the store; the same file ingested twice lands in the same part."""
    name = f"part-{hashlib.sha256(content).hexdigest()[:16]}.jsonl"
    text = "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in rows)
    store.write_bytes(text.encode("utf-8"), OUTCOMES, f"ingested={day.isoformat()}", name)
    return name


def stored_outcomes(store: Store) -> list[dict[str, Any]]:
    rows = []
    for name in store.files(OUTCOMES):
        for line in store.read_bytes(name).decode("utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


# --------------------------------------------------------------------------------------------------
# Join and performance
# --------------------------------------------------------------------------------------------------


def join(
    predictions: list[dict[str, Any]],
    outcomes: list[dict[str, Any]],
    settings: Settings,
    now: datetime,
    counts: Counter,
    problems: list[LineProblem] | None = None,
) -> list[dict[str, Any]]:
    """One resolved outcome per prediction (duplicates, conflicts, late and immature counted; an
    outcome without a logged prediction is listed in ``problems`` by its file and line)."""
    labels = settings.monitoring.labels
    by_request = {(p["__request_id__"], int(p["__record__"])): p for p in predictions}
    by_entity: dict[str, dict[str, Any]] = {}
    if settings.data.entity_key:
        for p in sorted(predictions, key=lambda p: p["__timestamp__"]):
            if p.get(settings.data.entity_key) is not None:
                key = str(p[settings.data.entity_key])
                if key in by_entity:
                    counts["ambiguous_entity"] += 1
                by_entity[key] = p  # the latest prediction for that entity
    grouped: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for outcome in outcomes:
        if "request_id" in outcome:
            prediction = by_request.get((outcome["request_id"], int(outcome.get("record", 0))))
        else:
            prediction = by_entity.get(outcome.get("entity", ""))
        if prediction is None:
            counts["unmatched"] += 1
            if problems is not None:
                file, _, line = str(outcome.get("source", "?:0")).rpartition(":")
                key = outcome.get("request_id") or outcome.get("entity")
                problems.append(
                    LineProblem(
                        file=file,
                        line=int(line) if line.isdigit() else 0,
                        problem=f"no logged prediction for {key!r} (kept, joined again on later runs)",
                    )
                )
            continue
        key = (prediction["__request_id__"], int(prediction["__record__"]))
        grouped.setdefault(key, []).append(outcome)
    joined = []
    maturity = timedelta(days=labels.maturity_days)
    for key, found in grouped.items():
        prediction = by_request[key]
        found = sorted(found, key=lambda o: (o.get(OBSERVED_AT) or o["ingested_at"], o["ingested_at"]))
        distinct = {o["label"] for o in found}
        if len(distinct) > 1:
            counts["conflicts"] += 1
            if labels.conflict == "drop":
                counts["conflicts_dropped"] += 1
                continue
        elif len(found) > 1:
            counts["duplicates"] += len(found) - 1
        outcome = found[-1]
        predicted_at = _parse_time(prediction["__timestamp__"])
        if predicted_at > now - maturity:
            counts["immature"] += 1
            continue
        observed = _parse_time(outcome.get(OBSERVED_AT) or outcome["ingested_at"])
        if observed - predicted_at > timedelta(days=labels.late_after_days):
            counts["late"] += 1
        row = {**prediction, "__label__": outcome["label"]}
        for name in settings.data.protected_names:
            if outcome.get(name) is not None:
                row[name] = outcome[name]
        joined.append(row)
    counts["used"] += len(joined)
    return joined


def window_start(day: date, window_days: int) -> date:
    return date.fromordinal(day.toordinal() - day.toordinal() % window_days)


def performance(
    joined: list[dict[str, Any]], predictions: list[dict[str, Any]], settings: Settings, now: datetime
) -> list[WindowPerformance]:
    """Per window: metrics on the matured labelled predictions, with intervals, and per group."""
    import pandas as pd

    from german_credit_scoring.data import protected_groups

    labels, data, cost = settings.monitoring.labels, settings.data, settings.evaluation.cost
    size = labels.window_days
    matured = [
        p
        for p in predictions
        if _parse_time(p["__timestamp__"]) <= now - timedelta(days=labels.maturity_days)
    ]
    logged = Counter(window_start(_parse_time(p["__timestamp__"]).date(), size) for p in matured)
    by_window: dict[date, list[dict[str, Any]]] = {}
    for row in joined:
        by_window.setdefault(window_start(_parse_time(row["__timestamp__"]).date(), size), []).append(row)
    out = []
    for start in sorted(by_window):
        rows = by_window[start]
        y = np.array([r["__label__"] == data.positive_label for r in rows], dtype=np.int8)
        score = np.array([float(r["probability"]) for r in rows])
        flagged = np.array([str(r.get("decision")) == data.positive_label for r in rows], dtype=np.int8)

        def expected_cost(y_: np.ndarray, flagged_: np.ndarray) -> float:
            fn = np.sum((y_ == 1) & (flagged_ == 0))
            fp = np.sum((y_ == 0) & (flagged_ == 1))
            return float((cost.false_negative * fn + cost.false_positive * fp) / len(y_))

        seed = labels.seed + start.toordinal()
        groups, parity = [], {}
        frame = pd.DataFrame(rows)
        for attribute in data.protected_attributes:
            if attribute.name not in frame.columns:
                continue
            group = protected_groups(frame, attribute).astype(str).to_numpy()
            for value in sorted(set(group)):
                mask = group == value
                positives = y[mask] == 1
                groups.append(
                    GroupPerformance(
                        attribute=attribute.name,
                        group=value,
                        n=int(mask.sum()),
                        selection_rate=wilson(int(flagged[mask].sum()), int(mask.sum()), labels.confidence),
                        recall=wilson(
                            int(flagged[mask][positives].sum()), int(positives.sum()), labels.confidence
                        ),
                    )
                )
            codes = np.unique(group, return_inverse=True)[1]

            def gap(flagged_: np.ndarray, codes_: np.ndarray) -> float | None:
                rates = [flagged_[codes_ == g].mean() for g in np.unique(codes_)]
                return float(max(rates) - min(rates)) if len(rates) > 1 else None

            parity[attribute.name] = bootstrap(
                gap, (flagged, codes), labels.bootstrap, labels.confidence, seed
            )
        out.append(
            WindowPerformance(
                start=start.isoformat(),
                end=(start + timedelta(days=size - 1)).isoformat(),
                predictions=logged.get(start, len(rows)),
                labelled=len(rows),
                coverage=len(rows) / max(logged.get(start, len(rows)), 1),
                positives=int(y.sum()),
                roc_auc=bootstrap(auc, (y, score), labels.bootstrap, labels.confidence, seed),
                recall=wilson(int(flagged[y == 1].sum()), int(y.sum()), labels.confidence),
                expected_cost=bootstrap(
                    expected_cost, (y, flagged), labels.bootstrap, labels.confidence, seed
                ),
                groups=groups,
                parity_difference=parity,
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------


def ingest_labels(
    files: list[Path],
    settings: Settings,
    store: Store,
    classes: list[str],
    features=None,
    now: datetime | None = None,
) -> PerformanceReport:
    """Validate and store the outcome files, then join every stored outcome with the logged predictions."""
    from german_credit_scoring.monitoring.prediction_log import Redactor

    now = now or datetime.now(UTC)
    redactor = Redactor.from_settings(features, settings.monitoring.store) if features is not None else None
    counts: Counter = Counter()
    problems: list[LineProblem] = []
    for path in files:
        if not Path(path).is_file():
            raise DataError(f"{path}: outcome file not found")
        rows, file_problems, file_counts = parse_outcomes(
            Path(path), settings, classes, now.isoformat(timespec="seconds"), redactor
        )
        counts.update(file_counts)
        problems.extend(file_problems)
        if rows:
            store_outcomes(store, rows, Path(path).read_bytes(), now.date())
    retention = settings.monitoring.store.retention_days
    predictions = read_window(store, now.date() - timedelta(days=retention), now.date())
    problems.extend(predictions.problems)
    outcomes = stored_outcomes(store)
    joined = join(predictions.rows, outcomes, settings, now, counts, problems)
    windows = performance(joined, predictions.rows, settings, now)
    known = set(OutcomeCounts.model_fields)
    return PerformanceReport(
        generated_at=now.isoformat(timespec="seconds"),
        store=store.url,
        classes=classes,
        positive_label=settings.data.positive_label,
        confidence=settings.monitoring.labels.confidence,
        counts=OutcomeCounts(**{k: v for k, v in counts.items() if k in known}),
        problems=problems[:MAX_LISTED],
        problem_count=len(problems),
        windows=windows,
        labelled_rows_total=len(joined),
    )


def _fmt(interval: Interval, digits: int = 3) -> str:
    if interval.estimate is None:
        return "n/a"
    if interval.low is None:
        return f"{interval.estimate:.{digits}f}"
    return f"{interval.estimate:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def render_markdown(report: PerformanceReport) -> str:
    c = report.counts
    lines = [
        "## Production performance (matured outcomes)",
        "",
        f"{c.rows_read} outcome rows read: {c.accepted} accepted, {c.malformed} malformed, "
        f"{c.unknown_label} with a label outside {report.classes}, {c.missing_key} without a key; "
        f"{c.unmatched} without a logged prediction (kept, joined again later), {c.duplicates} duplicates, "
        f"{c.conflicts} conflicts ({c.conflicts_dropped} dropped), {c.late} late, {c.immature} not matured; "
        f"{c.used} used.",
        "",
        f"Intervals: {report.confidence:.0%} (Wilson for rates, bootstrap for ROC AUC, cost and parity).",
        "",
        "| window | labelled / logged | positives | ROC AUC | recall | expected cost |",
        "|---|---|---|---|---|---|",
    ]
    for w in report.windows:
        lines.append(
            f"| {w.start} to {w.end} | {w.labelled} / {w.predictions} ({w.coverage:.0%}) | {w.positives} | "
            f"{_fmt(w.roc_auc)} | {_fmt(w.recall)} | {_fmt(w.expected_cost)} |"
        )
    if report.windows and report.windows[-1].groups:
        last = report.windows[-1]
        lines += [
            "",
            f"Groups, window {last.start}:",
            "",
            "| attribute | group | n | selection rate | recall |",
        ]
        lines.append("|---|---|---|---|---|")
        lines += [
            f"| {g.attribute} | {g.group} | {g.n} | {_fmt(g.selection_rate)} | {_fmt(g.recall)} |"
            for g in last.groups
        ]
        lines += [""] + [
            f"- demographic parity difference ({name}): {_fmt(value)}"
            for name, value in last.parity_difference.items()
        ]
    if report.problem_count:
        lines += ["", f"{report.problem_count} lines could not be used:"]
        lines += [f"- `{p.file}:{p.line}`: {p.problem}" for p in report.problems[:20]]
    return "\n".join(lines) + "\n"


def labels_cli(argv: list[str]) -> int:
    from german_credit_scoring.contract import load_features
    from german_credit_scoring.monitoring.commands import EXIT_OK, guarded
    from german_credit_scoring.settings import load_settings

    parser = argparse.ArgumentParser(
        prog="mlops labels", description="ingest outcome files; production performance"
    )
    parser.add_argument("files", nargs="*", type=Path, help="outcome files (CSV, JSON Lines, Parquet)")
    parser.add_argument("--params", type=Path, default=paths.PARAMS, help="settings file (params.yaml)")
    parser.add_argument("--store", help="store URL (default: monitoring.store.url)")
    parser.add_argument("--json", type=Path, default=PERFORMANCE_JSON)
    parser.add_argument("--markdown", type=Path, default=PERFORMANCE_MD)
    args = parser.parse_args(argv)

    def body() -> int:
        settings = load_settings(args.params)
        store = Store(args.store or settings.monitoring.store.url)
        report = ingest_labels(
            args.files, settings, store, declared_classes(settings), load_features(settings.features)
        )
        io.write_json(args.json, report.model_dump(mode="json"))
        io.write_text(args.markdown, render_markdown(report))
        c = report.counts
        print(
            f"labels: {c.rows_read} rows read, {c.accepted} accepted, {c.malformed + c.unknown_label + c.missing_key} "
            f"rejected (listed in {args.markdown}), {c.unmatched} unmatched, {c.used} used in "
            f"{len(report.windows)} windows"
        )
        return EXIT_OK

    return guarded("labels", body)

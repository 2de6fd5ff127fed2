"""Outcomes: every row accounted for, joined with logged predictions, performance with intervals."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from german_credit_scoring.monitoring.labels import auc, bootstrap, ingest_labels, render_markdown, wilson
from german_credit_scoring.monitoring.prediction_log import PredictionLog, make_rows
from german_credit_scoring.monitoring.store import Store, ship

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


@pytest.fixture
def classes(settings):
    return sorted({settings.data.positive_label, f"not_{settings.data.positive_label}"})


def _negative(settings, classes):
    return next(c for c in classes if c != settings.data.positive_label)


def _log_requests(tmp_path, settings, classes, n: int, seed: int = 0) -> Store:
    """``n`` single-record requests 40 days ago whose score predicts the outcome well, plus a batch."""
    rng = np.random.default_rng(seed)
    sink, positive = PredictionLog(tmp_path / "log"), settings.data.positive_label
    stamp = (NOW - timedelta(days=40)).isoformat().replace("+00:00", "Z")
    for i in range(n):
        p = float(rng.uniform())
        decision = positive if p > 0.5 else _negative(settings, classes)
        sink.append(
            make_rows(f"req-{i}", "v1", [{"x": i}], [{"probability": p, "decision": decision}], stamp)
        )
    outputs = [{"probability": 0.9, "decision": positive}, {"probability": 0.1, "decision": "x"}]
    sink.append(make_rows("batch", "v1", [{"x": -1}, {"x": -2}], outputs, stamp))
    store = Store(tmp_path / "store")
    ship(tmp_path / "log", store, now=NOW.date())
    return store


def _outcome_file(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_every_outcome_row_is_counted_and_bad_ones_are_named_by_line(tmp_path, settings, classes):
    store = _log_requests(tmp_path, settings, classes, n=6)
    target, positive, negative = (
        settings.data.target,
        settings.data.positive_label,
        _negative(settings, classes),
    )
    sex = settings.data.protected_names[0] if settings.data.protected_names else "group"
    path = _outcome_file(
        tmp_path / "outcomes.csv",
        ["request_id", "record", target, sex],
        [
            ["req-0", "0", positive, "a"],  # line 2
            ["req-1", "0", negative, "b"],
            ["req-1", "0", negative, "b"],  # duplicate, same label
            ["req-2", "", positive, "a"],  # conflict with the next
            ["req-2", "0", negative, "a"],
            ["nobody", "0", positive, "a"],  # unknown request id: kept, unmatched
            ["req-3", "0", "maybe", "a"],  # line 8: label outside the classes
            ["req-4", "0"],  # line 9: too few fields
            ["", "", positive, "a"],  # line 10: no key
            ["batch", "1", negative, "b"],  # the second record of a batch request
        ],
    )
    report = ingest_labels([path], settings, store, classes, now=NOW)
    c = report.counts
    assert c.rows_read == 10 and c.accepted == 7
    assert (c.malformed, c.unknown_label, c.missing_key) == (1, 1, 1)
    assert (c.duplicates, c.conflicts, c.conflicts_dropped, c.unmatched) == (1, 1, 1, 1)
    assert c.used == 3  # req-0, req-1, batch/1
    lines = sorted((p.file.endswith("outcomes.csv"), p.line) for p in report.problems)
    assert lines == [(True, 7), (True, 8), (True, 9), (True, 10)]  # 7: the unknown request id
    assert any("'nobody'" in p.problem for p in report.problems)
    # ingesting the same file again changes nothing: it is stored once
    again = ingest_labels([path], settings, store, classes, now=NOW)
    assert again.counts.used == 3 and again.counts.duplicates == 1
    assert "1 conflicts (1 dropped)" in render_markdown(report)


def test_latest_policy_keeps_the_last_observed_label(tmp_path, settings, classes):
    store = _log_requests(tmp_path, settings, classes, n=3)
    latest = settings.model_copy(
        update={
            "monitoring": settings.monitoring.model_copy(
                update={"labels": settings.monitoring.labels.model_copy(update={"conflict": "latest"})}
            )
        }
    )
    target, positive, negative = (
        settings.data.target,
        settings.data.positive_label,
        _negative(settings, classes),
    )
    path = _outcome_file(
        tmp_path / "o.csv",
        ["request_id", target, "observed_at"],
        [["req-0", negative, "2026-02-20T00:00:00Z"], ["req-0", positive, "2026-01-30T00:00:00Z"]],
    )
    report = ingest_labels([path], latest, store, classes, now=NOW)
    assert report.counts.conflicts == 1 and report.counts.conflicts_dropped == 0 and report.counts.used == 1


def test_small_windows_get_wide_intervals_and_big_ones_narrow(tmp_path, settings, classes):
    target, positive, negative = (
        settings.data.target,
        settings.data.positive_label,
        _negative(settings, classes),
    )
    widths = []
    for n in (20, 400):
        folder = tmp_path / str(n)
        store = _log_requests(folder, settings, classes, n=n, seed=n)
        rng = np.random.default_rng(n + 1000)  # not the scores' own stream
        frame = []
        from german_credit_scoring.monitoring.store import read_window

        for row in read_window(store, NOW.date() - timedelta(days=60), NOW.date()).rows:
            bad = rng.uniform() < row["probability"]
            frame.append([row["__request_id__"], row["__record__"], positive if bad else negative])
        path = _outcome_file(folder / "o.csv", ["request_id", "record", target], frame)
        report = ingest_labels([path], settings, store, classes, now=NOW)
        (window,) = report.windows
        assert window.labelled == n + 2 and window.coverage == 1.0
        assert window.roc_auc.low < window.roc_auc.estimate < window.roc_auc.high
        widths.append(window.recall.high - window.recall.low)
    assert widths[0] > 2 * widths[1]


def test_interval_formulas():
    none = wilson(0, 10)
    assert none.low == 0 and 0.27 < none.high < 0.29  # Wilson, not the degenerate [0, 0]
    assert wilson(0, 0).estimate is None
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(np.array([1, 1]), np.array([0.1, 0.2])) is None
    interval = bootstrap(lambda a: float(a.mean()), (np.arange(100.0),), 200, 0.9, 0)
    assert interval.low < 49.5 < interval.high


def test_outcomes_keyed_by_an_identifying_entity_join_its_hashed_log(
    tmp_path, settings, classes, monkeypatch
):
    from german_credit_scoring.contract import FeatureDefinition, FeatureSet
    from german_credit_scoring.monitoring.prediction_log import Redactor

    key = "customer_no"
    contract = FeatureSet(features=[FeatureDefinition(name=key, dtype="category", identifying=True)])
    keyed = settings.model_copy(update={"data": settings.data.model_copy(update={"entity_key": key})})
    monkeypatch.setenv(settings.monitoring.store.salt_env, "pepper")
    sink = PredictionLog(
        tmp_path / "log", redactor=Redactor.from_settings(contract, settings.monitoring.store)
    )
    stamp = (NOW - timedelta(days=40)).isoformat().replace("+00:00", "Z")
    positive, negative = settings.data.positive_label, _negative(settings, classes)
    for i, customer in enumerate(["C-1", "C-2", "C-3"]):
        outputs = [{"probability": 0.2 + 0.3 * i, "decision": negative}]
        sink.append(make_rows(f"r{i}", "v1", [{key: customer}], outputs, stamp))
    assert "C-1" not in "".join(p.read_text() for p in (tmp_path / "log").rglob("*.jsonl"))
    store = Store(tmp_path / "store")
    ship(tmp_path / "log", store, now=NOW.date())
    path = _outcome_file(
        tmp_path / "o.csv",
        [key, settings.data.target],
        [["C-1", negative], ["C-3", positive], ["C-9", positive]],
    )
    report = ingest_labels([path], keyed, store, classes, contract, now=NOW)
    assert report.counts.used == 2 and report.counts.unmatched == 1

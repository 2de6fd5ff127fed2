"""Ingest: read the raw file, type it by the contract, reject duplicate keys, split deterministically.

Two splits (``split.method``): ``random`` (a seeded shuffle, stratified by the target) or ``time``
(out-of-time validation, what credit validators ask for: the newest ``test_size`` share of rows by
``split.time_column`` is the test set, every training row is older than or as old as every test row).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.data import assign_split, cast_to_contract, check_entity_key
from german_credit_scoring.errors import DataError
from german_credit_scoring.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    train: pd.DataFrame
    test: pd.DataFrame
    summary: dict = field(default_factory=dict)


def prepare(
    frame: pd.DataFrame, settings: Settings, features: FeatureSet, source: Path | str
) -> IngestResult:
    """Pure: typed, de-duplicated-by-contract, split frames and a summary of what was seen."""
    check_entity_key(frame, settings.data.entity_key, source)
    typed, cast_problems = cast_to_contract(frame, features, settings.data.target)
    if settings.split.method == "time":
        split = time_split(typed, settings.split.time_column or "", settings.split.test_size, source)
    else:
        split = assign_split(
            typed,
            settings.data.target,
            settings.split.test_size,
            settings.split.seed,
            settings.split.stratify,
        )
    train = typed[split == "train"].reset_index(drop=True)
    test = typed[split == "test"].reset_index(drop=True)
    summary = {
        "source": str(source),
        "split": settings.split.method,
        "rows": len(typed),
        "columns": list(map(str, typed.columns)),
        "train_rows": len(train),
        "test_rows": len(test),
        "cast_problems": cast_problems,
    }
    for problem in cast_problems:
        log.warning("%s: %s (validation will report it)", source, problem)
    return IngestResult(train=train, test=test, summary=summary)


def time_split(frame: pd.DataFrame, column: str, test_size: float, source: Path | str) -> pd.Series:
    """The newest ``test_size`` share of rows by ``column`` is "test"; ties go to the same side of the cut
    (every row of the cut-off time is test). Times are dates/timestamps or numbers; none may be missing."""
    if column not in frame.columns:
        raise DataError(
            f"{source}: split.time_column {column!r} is not a column (columns: {list(frame.columns)[:20]})"
        )
    values = frame[column]
    if pd.api.types.is_numeric_dtype(values):
        times = values
    else:
        times = pd.to_datetime(values, errors="coerce", utc=True)
        bad = times.isna() & values.notna()
        if bad.any():
            examples = values[bad].astype(str).unique()[:3].tolist()
            raise DataError(f"{source}: split.time_column {column!r}: not dates or times: {examples}")
    if times.isna().any():
        raise DataError(
            f"{source}: split.time_column {column!r}: {int(times.isna().sum())} rows have no time"
        )
    split = pd.Series("train", index=frame.index, dtype=object)
    n_test = round(test_size * len(frame))
    if n_test == 0 or len(frame) < 2:
        return split
    cutoff = times.sort_values(kind="stable").iloc[len(frame) - n_test]
    split[times >= cutoff] = "test"
    if (split == "train").sum() == 0:
        raise DataError(
            f"{source}: split.time_column {column!r}: every row has the newest time; nothing to train on"
        )
    return split


def ingest(settings: Settings, features: FeatureSet) -> IngestResult:
    """The dataset version params.yaml names: ``data.path`` plus every part in ``data.appended``."""
    from german_credit_scoring.monitoring.dataset import read_dataset

    frame = read_dataset(settings)
    source = (
        settings.data.path
        if not settings.data.appended
        else f"{settings.data.path} (+{len(settings.data.appended)} parts)"
    )
    return prepare(frame, settings, features, source)

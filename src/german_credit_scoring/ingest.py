"""Ingest: read the raw file, type it by the contract, reject duplicate keys, split deterministically."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.data import assign_split, cast_to_contract, check_entity_key, read_table
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
        "rows": len(typed),
        "columns": list(map(str, typed.columns)),
        "train_rows": len(train),
        "test_rows": len(test),
        "cast_problems": cast_problems,
    }
    for problem in cast_problems:
        log.warning("%s: %s (validation will report it)", source, problem)
    return IngestResult(train=train, test=test, summary=summary)


def ingest(settings: Settings, features: FeatureSet) -> IngestResult:
    frame = read_table(settings.data.path, settings.data.format)
    return prepare(frame, settings, features, settings.data.path)

"""Out-of-time validation: split.method time puts the newest rows in the test set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from german_credit_scoring.errors import DataError
from german_credit_scoring.lifecycle.ingest import prepare
from german_credit_scoring.settings import SettingsError, parse_settings


def _time_settings(settings, column: str, test_size: float | None = None):
    raw = settings.model_dump(mode="json")
    raw["split"].update({"method": "time", "time_column": column})
    if test_size is not None:
        raw["split"]["test_size"] = test_size
    return parse_settings(raw)


@pytest.fixture
def dated(sample_frame):
    """The sample has no date column: give its rows application dates, shuffled."""
    rng = np.random.default_rng(7)
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(len(sample_frame)), unit="D")
    return sample_frame.assign(applied_on=days.strftime("%Y-%m-%d"))


def test_the_newest_rows_are_the_test_set(settings, features, dated):
    timed = _time_settings(settings, "applied_on")
    result = prepare(dated, timed, features, "dated.csv")
    assert abs(len(result.test) - settings.split.test_size * len(dated)) <= 1
    assert pd.to_datetime(result.train["applied_on"]).max() < pd.to_datetime(result.test["applied_on"]).min()
    assert result.summary["split"] == "time"
    # numeric times (a sequence number) work the same way
    numbered = dated.assign(seq=pd.to_datetime(dated["applied_on"]).astype("int64"))
    by_number = prepare(numbered, _time_settings(settings, "seq"), features, "n.csv")
    assert sorted(by_number.test["applied_on"]) == sorted(result.test["applied_on"])


def test_ties_at_the_cut_stay_together(settings, features, sample_frame):
    weeks = np.repeat(np.arange(len(sample_frame) // 10 + 1), 10)[: len(sample_frame)]
    frame = sample_frame.assign(week=weeks)
    result = prepare(frame, _time_settings(settings, "week", 0.25), features, "w.csv")
    assert set(result.train["week"]).isdisjoint(set(result.test["week"]))


def test_bad_time_columns_are_named(settings, features, dated):
    with pytest.raises(DataError, match="'nope' is not a column"):
        prepare(dated, _time_settings(settings, "nope"), features, "d.csv")
    broken = dated.astype({"applied_on": object})
    broken.loc[5, "applied_on"] = "last tuesday"
    with pytest.raises(DataError, match="last tuesday"):
        prepare(broken, _time_settings(settings, "applied_on"), features, "d.csv")
    raw = settings.model_dump(mode="json")
    raw["split"]["method"] = "time"
    with pytest.raises(SettingsError, match="time_column"):
        parse_settings(raw)

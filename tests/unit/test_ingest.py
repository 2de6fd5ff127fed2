"""Ingest types and splits any data set by its contract."""

from __future__ import annotations

import pandas as pd

from german_credit_scoring.lifecycle.ingest import prepare


def test_sample_is_split_by_settings(settings, features, sample_frame):
    result = prepare(sample_frame, settings, features, settings.data.path)
    assert len(result.train) + len(result.test) == len(sample_frame)
    assert abs(len(result.test) - settings.split.test_size * len(sample_frame)) <= 1
    target = settings.data.target
    rate = lambda f: (f[target] == settings.data.positive_label).mean()
    assert abs(rate(result.train) - rate(result.test)) < 0.01  # stratified
    again = prepare(sample_frame, settings, features, settings.data.path)
    pd.testing.assert_frame_equal(result.test, again.test)


def test_type_problems_are_reported_not_raised(settings, features, sample_frame):
    numeric = features.numeric[0].name
    broken = sample_frame.astype({numeric: object})
    broken.loc[3, numeric] = "lots"
    result = prepare(broken, settings, features, "broken.csv")
    assert any(numeric in p and "lots" in p for p in result.summary["cast_problems"])

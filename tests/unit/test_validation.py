"""Validation with Great Expectations (and the pandas engine, which must agree) names file and column."""

from __future__ import annotations

import json
import runpy
import shutil

import numpy as np
import pandas as pd
import pytest

from german_credit_scoring import paths
from german_credit_scoring.data import cast_to_contract
from german_credit_scoring.errors import ContractError
from german_credit_scoring.lifecycle.validation import load_suite, render_markdown, validate_frame
from german_credit_scoring.stage import CheckFailed

SOURCE = "data/raw/incoming.csv"
ENGINES = ["gx", "pandas"]


@pytest.fixture(scope="module")
def suite(root, settings):
    return load_suite(root / settings.validation.suite)


@pytest.fixture(scope="module")
def typed(sample_frame, features, settings):
    """The sample as ingest leaves it, round-tripped through Parquet like the stage reads it."""
    frame, problems = cast_to_contract(sample_frame, features, settings.data.target)
    assert not problems
    return frame


@pytest.fixture(scope="module")
def columns(features, settings):
    """Column roles taken from the contract, never from the sample's names."""
    numeric = next(f for f in features.numeric if f.min is not None and f.max is not None)
    category = next((f for f in features.categorical if f.allowed_values), None)
    # numeric-only data: the numeric column stands in where any column will do (rename, all null)
    return {
        "numeric": numeric,
        "category": category or numeric,
        "target": settings.data.target,
        "has_categories": category is not None,
    }


def needs_categories(columns, case: str = "unseen category") -> None:
    if case == "unseen category" and not columns["has_categories"]:
        pytest.skip("this project's contract has no categorical feature")


def _missing(frame, c):
    return frame.drop(columns=[c["numeric"].name])


def _renamed(frame, c):
    return frame.rename(columns={c["category"].name: c["category"].name + "_renamed"})


def _wrong_type(frame, c):
    out = frame.astype({c["numeric"].name: object})
    out[c["numeric"].name] = out[c["numeric"].name].astype(str)
    out.loc[0, c["numeric"].name] = "unknown"
    return out


def _no_rows(frame, c):
    return frame.iloc[:0]


def _all_null(frame, c):
    return frame.assign(**{c["category"].name: None})


def _unseen_category(frame, c):
    out = frame.copy()
    out.loc[[1, 2], c["category"].name] = "never_seen_before"
    return out


def _one_class(frame, c):
    majority = frame[c["target"]].value_counts().index[0]
    return frame.assign(**{c["target"]: majority})


def _out_of_range(frame, c):
    out = frame.copy()
    out.loc[4, c["numeric"].name] = c["numeric"].max * 10 + 1
    return out


BAD_INPUTS = {
    # name: (make the frame, the column the message names, words the message contains)
    "missing column": (_missing, "numeric", ["is missing"]),
    "renamed column": (_renamed, "category", ["is missing", "_renamed"]),
    "wrong type": (_wrong_type, "numeric", ["expected numeric values", "'unknown'"]),
    "no rows": (_no_rows, None, ["expected at least", "rows", "found 0 rows"]),
    "all-null column": (_all_null, "category", ["missing values", "found 100.0% missing"]),
    "unseen category": (_unseen_category, "category", ["unseen values", "'never_seen_before'"]),
    "one class": (_one_class, "target", ["at least 2 distinct values", "found 1"]),
    "out of range": (_out_of_range, "numeric", ["expected values between", "1 row outside"]),
}


def _column_name(c, role):
    if role is None:
        return None
    return c[role] if role == "target" else c[role].name


@pytest.mark.parametrize("engine", ENGINES)
def test_sample_passes(typed, suite, engine):
    report = validate_frame(typed, suite, SOURCE, engine)
    assert report.success, [c.message for c in report.failed_critical]
    assert not report.warnings
    assert report.rows == len(typed)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_with_file_and_column(typed, suite, columns, engine, case):
    needs_categories(columns, case)
    make, role, words = BAD_INPUTS[case]
    # given a frame broken in one way
    frame = make(typed, columns)
    # when it is validated
    report = validate_frame(frame, suite, SOURCE, engine)
    # then a critical check fails and its message names the file, the column and what was expected
    assert not report.success
    column = _column_name(columns, role)
    messages = [c.message for c in report.failed_critical]
    named = f"column {column!r}" if column else "expected"
    matching = [
        m for m in messages if m.startswith(f"{SOURCE}: ") and named in m and all(w in m for w in words)
    ]
    assert matching, messages


@pytest.mark.parametrize("case", ["good", *BAD_INPUTS])
def test_pandas_engine_gives_the_same_verdicts_as_gx(typed, suite, columns, case):
    needs_categories(columns, case)
    frame = typed if case == "good" else BAD_INPUTS[case][0](typed, columns)
    reference = validate_frame(frame, suite, SOURCE, "gx")
    fast = validate_frame(frame, suite, SOURCE, "pandas")
    assert [c.success for c in fast.checks] == [c.success for c in reference.checks]
    assert [c.unexpected_count for c in fast.checks] == [c.unexpected_count for c in reference.checks]


@pytest.mark.parametrize("engine", ENGINES)
def test_warnings_are_reported_but_do_not_fail(typed, suite, columns, engine, settings):
    # given data whose label balance moved far but that is otherwise valid, plus an extra column
    target = columns["target"]
    positives = typed[typed[target] == settings.data.positive_label]
    shifted = pd.concat([typed[typed[target] != settings.data.positive_label], positives.head(5)])
    shifted = shifted.assign(extra_column=1)
    # when validated
    report = validate_frame(shifted, suite, SOURCE, engine)
    # then it passes with warnings naming the target and the extra column
    assert report.success
    warned = " | ".join(c.message for c in report.warnings)
    assert f"column {target!r}" in warned and "of labels" in warned
    assert "'extra_column'" in warned


def test_unexpected_examples_and_observed_values_are_plain(typed, suite, columns):
    needs_categories(columns)
    report = validate_frame(_unseen_category(typed, columns), suite, SOURCE, "gx")
    failed = next(c for c in report.failed_critical if c.check == "categories")
    assert failed.unexpected_count == 2
    assert failed.unexpected_examples[0] == "never_seen_before"
    json.dumps(report.to_dict())  # JSON-ready, no numpy scalars


def test_markdown_lists_failures_and_all_checks(typed, suite, columns):
    report = validate_frame(_all_null(typed, columns), suite, SOURCE, "pandas")
    text = render_markdown(report, "features/expectations.json")
    assert "❌ Data invalid" in text
    assert "### Failed critical checks" in text and columns["category"].name in text
    assert "<details><summary>All" in text
    ok = render_markdown(validate_frame(typed, suite, SOURCE, "pandas"))
    assert "✅ Data valid." in ok and "Failed critical" not in ok


def test_unknown_expectation_types_are_refused(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"name": "s", "expectations": [{"type": "expect_the_moon", "kwargs": {}}]}))
    with pytest.raises(ContractError, match="expect_the_moon"):
        load_suite(path)
    with pytest.raises(ContractError, match="not found"):
        load_suite(tmp_path / "absent.json")


def test_engine_name_is_checked(typed, suite):
    with pytest.raises(ContractError, match="engine"):
        validate_frame(typed, suite, SOURCE, "spark")


@pytest.fixture()
def project(root, settings, tmp_path, monkeypatch, typed):
    """A copy of the project's settings and contract with prepared splits in a temporary directory."""
    for name in ("params.yaml", str(settings.features), str(settings.validation.suite)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)

    def write(frame: pd.DataFrame) -> None:
        half = len(frame) // 2
        paths.TRAIN.parent.mkdir(parents=True, exist_ok=True)
        frame.iloc[:half].to_parquet(paths.TRAIN, index=False)
        frame.iloc[half:].to_parquet(paths.TEST, index=False)

    write(typed)
    return write


def test_stage_writes_reports_and_passes(project, root, settings):
    main = runpy.run_path(str(root / "pipelines/validate.py"))["main"]
    main()
    result = json.loads(paths.VALIDATION_RESULT.read_text())
    assert result["success"] and result["source"] == str(settings.data.path)
    from german_credit_scoring.lifecycle.validation import choose_engine

    expected_engine = choose_engine(
        settings.validation.engine, result["rows"], settings.validation.gx_max_rows
    )
    assert result["rows"] > 0 and result["engine"] == expected_engine
    assert "✅ Data valid." in paths.VALIDATION_MD.read_text()


def test_stage_writes_reports_then_fails_on_a_critical_check(project, root, settings, typed, columns):
    project((_unseen_category if columns["has_categories"] else _out_of_range)(typed, columns))
    main = runpy.run_path(str(root / "pipelines/validate.py"))["main"]
    with pytest.raises(CheckFailed, match=f"{settings.data.path}: column '{columns['category'].name}'"):
        main()
    result = json.loads(paths.VALIDATION_RESULT.read_text())
    assert not result["success"] and result["statistics"]["failed_critical"] >= 1
    assert "❌ Data invalid" in paths.VALIDATION_MD.read_text()


def test_text_numbers_in_an_object_column_are_not_numbers(typed, suite, columns):
    # an object column of numeric-looking strings is text to GX; the pandas engine agrees
    frame = typed.assign(
        **{columns["numeric"].name: typed[columns["numeric"].name].astype(str).astype(object)}
    )
    verdicts = {e: validate_frame(frame, suite, SOURCE, e).success for e in ENGINES}
    assert verdicts == {"gx": False, "pandas": False}
    assert np.isfinite(len(frame))


def test_auto_engine_keeps_gx_until_it_gets_slow():
    from german_credit_scoring.lifecycle.validation import choose_engine

    assert choose_engine("auto", 1_000, 250_000) == "gx"
    assert choose_engine("auto", 1_000_000, 250_000) == "pandas"
    assert choose_engine("gx", 1_000_000, 250_000) == "gx"

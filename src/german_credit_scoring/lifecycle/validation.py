"""Validate a data frame against the Great Expectations suite (``features/expectations.json``).

Two engines evaluate the same suite JSON:

- ``gx``: Great Expectations Core 1.x (ephemeral context, pandas data source, whole-dataframe batch).
  It is the reference.
- ``pandas``: a vectorised evaluation of the same expectation types with GX's semantics (``mostly``,
  nulls ignored by value checks, vacuous success on no values). It exists because GX needs far longer
  on large frames; a test keeps both engines' verdicts identical.

Either way the result becomes a plain :class:`ValidationReport` whose messages name the file, the
column and what was expected. ``critical`` failures fail the stage; ``warning`` failures are reported.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from german_credit_scoring.errors import ContractError

log = logging.getLogger(__name__)

ENGINES = ("gx", "pandas")
MAX_EXAMPLES = 5
SUPPORTED = {
    "expect_table_row_count_to_be_between",
    "expect_table_columns_to_match_set",
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_unique_value_count_to_be_between",
}


@dataclass
class CheckResult:
    """One expectation's outcome, in plain values (JSON-ready)."""

    type: str
    check: str
    column: str | None
    severity: str
    success: bool
    expected: str
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_examples: list[Any] = field(default_factory=list)
    message: str = ""


@dataclass
class ValidationReport:
    source: str
    rows: int
    columns: list[str]
    engine: str
    seconds: float
    suite: str
    checks: list[CheckResult]

    @property
    def failed_critical(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity == "critical"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity != "critical"]

    @property
    def success(self) -> bool:
        return not self.failed_critical

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "source": self.source,
            "suite": self.suite,
            "engine": self.engine,
            "rows": self.rows,
            "columns": self.columns,
            "statistics": {
                "evaluated": len(self.checks),
                "passed": sum(c.success for c in self.checks),
                "failed_critical": len(self.failed_critical),
                "warnings": len(self.warnings),
            },
            "failed_critical": [c.message for c in self.failed_critical],
            "warnings": [c.message for c in self.warnings],
            "checks": [_plain(asdict(c)) for c in self.checks],
        }


# --------------------------------------------------------------------------------------------
# Suite and frame
# --------------------------------------------------------------------------------------------


def load_suite(path: Path | str) -> dict[str, Any]:
    """The suite JSON; every expectation must be a type this module can phrase and both engines run."""
    import json

    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: expectation suite not found (create it with `mlops infer-contract`)")
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ContractError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise ContractError(f"{path}: expected a GX suite with an 'expectations' list")
    for index, expectation in enumerate(suite["expectations"]):
        kind = expectation.get("type") if isinstance(expectation, dict) else None
        if kind not in SUPPORTED:
            raise ContractError(
                f"{path}: expectations.{index}: type {kind!r} is not supported (supported: {sorted(SUPPORTED)})"
            )
    suite.setdefault("name", path.stem)
    return suite


def prepare_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Text as Python objects: GX's type checks understand ``object`` columns, not pandas' ``str`` dtype."""
    out = frame.copy(deep=False)
    for name in out.columns:
        column = out[name]
        if isinstance(column.dtype, pd.StringDtype | pd.CategoricalDtype):
            out[name] = column.astype(object).where(column.notna(), None)
    return out


def _severity(expectation: Mapping[str, Any]) -> str:
    meta = expectation.get("meta") or {}
    return str(meta.get("severity") or expectation.get("severity") or "critical")


def _column(expectation: Mapping[str, Any]) -> str | None:
    meta = expectation.get("meta") or {}
    return (expectation.get("kwargs") or {}).get("column") or meta.get("column")


# --------------------------------------------------------------------------------------------
# Engines: each returns one raw outcome per expectation, in suite order:
# {success, observed, unexpected_count, examples, missing, unexpected_columns, error}
# --------------------------------------------------------------------------------------------


def run_gx(frame: pd.DataFrame, suite: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Great Expectations Core 1.x: ephemeral context, pandas data source, whole-dataframe batch."""
    # GX logs its import and configuration at INFO (multi-line dumps); keep the stage's log readable.
    quiet = max(logging.WARNING, log.getEffectiveLevel())
    logging.getLogger("great_expectations").setLevel(quiet)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(quiet)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("validation")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole_frame")
    )
    # Results come back in GX's own order: tag each expectation with its position to map them back.
    expectations = copy.deepcopy(list(suite["expectations"]))
    for index, expectation in enumerate(expectations):
        expectation["meta"] = {**(expectation.get("meta") or {}), "index": index}
    gx_suite = gx.ExpectationSuite(name=str(suite.get("name") or "suite"), expectations=expectations)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    outcome = batch.validate(gx_suite, result_format="SUMMARY")
    raw: list[dict[str, Any]] = [{} for _ in expectations]
    for result in outcome.results:
        index = int(result.expectation_config.meta["index"])
        details = result.result or {}
        mismatched = (details.get("details") or {}).get("mismatched") or {}
        raw[index] = {
            "success": bool(result.success),
            "observed": details.get("observed_value"),
            "unexpected_count": details.get("unexpected_count"),
            "examples": list(details.get("partial_unexpected_list") or [])[:MAX_EXAMPLES],
            "missing": list(mismatched.get("missing") or []),
            "unexpected_columns": list(mismatched.get("unexpected") or []),
            "error": _gx_exception(result.exception_info),
        }
    return raw


def _gx_exception(info: Any) -> str | None:
    if not info:
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for value in info.values():  # keyed by metric id when a metric failed
        if isinstance(value, dict) and (value.get("exception_message") or value.get("exception_traceback")):
            message = (
                value.get("exception_message")
                or str(value.get("exception_traceback")).strip().splitlines()[-1]
            )
            return str(message)
    return None


def _type_matchers(type_list: list[str]) -> tuple[list[Any], tuple[type, ...]]:
    """GX's reading of a type list: dtypes a column may have, and Python types its values may have."""
    dtypes: list[Any] = []
    values: list[type] = []
    native = {"int": int, "long": int, "float": float, "str": str, "string_types": str, "bool": bool}
    for name in type_list:
        try:
            dtypes += [np.dtype(name).type, np.dtype(name)]
            values.append(np.dtype(name).type)
        except TypeError:
            candidate = getattr(pd, name, None)
            if isinstance(candidate, type):
                dtypes.append(candidate)
                values.append(candidate)
                try:
                    instance = candidate()
                    if isinstance(instance, pd.api.extensions.ExtensionDtype):
                        dtypes.append(instance)
                except TypeError:
                    pass
        if name.lower() in native:
            values.append(native[name.lower()])
    return dtypes, tuple(values)


def _examples(values: pd.Series) -> list[Any]:
    return [_plain(v) for v in values.head(MAX_EXAMPLES).tolist()]


def _map_outcome(considered: int, unexpected: pd.Series, mostly: float | None) -> dict[str, Any]:
    count = len(unexpected)
    success = (
        True if considered == 0 else (considered - count) / considered >= (1.0 if mostly is None else mostly)
    )
    return {"success": success, "unexpected_count": count, "examples": _examples(unexpected)}


class _Columns:
    """Each column's null mask and non-null values, computed once however many checks read them."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._cache: dict[str, tuple[pd.Series, pd.Series, pd.Series]] = {}

    def get(self, name: str) -> tuple[pd.Series, pd.Series, pd.Series]:
        if name not in self._cache:
            column = self.frame[name]
            if isinstance(column.dtype, pd.CategoricalDtype):
                column = column.astype(object).where(column.notna(), None)
            nulls = column.isna()
            self._cache[name] = (column, nulls, column[~nulls])
        return self._cache[name]


def _evaluate_pandas(
    frame: pd.DataFrame, kind: str, kwargs: Mapping[str, Any], columns: _Columns | None = None
) -> dict[str, Any]:
    if kind == "expect_table_row_count_to_be_between":
        rows = len(frame)
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        ok = (low is None or rows >= low) and (high is None or rows <= high)
        return {"success": ok, "observed": rows}
    if kind == "expect_table_columns_to_match_set":
        expected, actual = set(kwargs.get("column_set") or []), {str(c) for c in frame.columns}
        missing, extra = sorted(expected - actual), sorted(actual - expected)
        exact = kwargs.get("exact_match", True)
        ok = not missing and (not extra or exact is False)
        return {"success": ok, "observed": sorted(actual), "missing": missing, "unexpected_columns": extra}
    name = kwargs["column"]
    if name not in frame.columns:
        return {"success": False, "error": f'The column "{name}" in BatchData does not exist.'}
    column, null_mask, values = (columns or _Columns(frame)).get(name)
    mostly = kwargs.get("mostly")
    if kind == "expect_column_values_to_not_be_null":
        outcome = _map_outcome(len(column), column[null_mask], mostly)
        outcome["examples"] = []
        return outcome
    if kind == "expect_column_values_to_be_in_type_list":
        dtypes, value_types = _type_matchers(list(kwargs.get("type_list") or []))
        # pandas' text dtype holds only str values: GX sees them as an object column of str.
        text_dtype = isinstance(column.dtype, pd.StringDtype)
        if column.dtype != object and not text_dtype:
            return {"success": column.dtype in dtypes, "observed": column.dtype.type.__name__}
        if text_dtype:
            inferred = "string" if len(values) else "empty"
        else:
            inferred = pd.api.types.infer_dtype(values, skipna=True) if len(values) else "empty"
        if (inferred == "string" and str in value_types) or inferred == "empty":
            return _map_outcome(len(values), values.iloc[:0], mostly)
        ok = values.map(lambda v: isinstance(v, value_types)).astype(bool)
        return _map_outcome(len(values), values[~ok], mostly)
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            # GX compares each value with the bounds; text cannot be compared with numbers.
            text = (
                values
                if isinstance(values.dtype, pd.StringDtype)
                else values[values.map(lambda v: isinstance(v, str | bytes))]
            )
            if len(text):
                return {
                    "success": False,
                    "error": f"text cannot be compared with numbers (e.g. {_list(_examples(text))})",
                }
            values = values.astype(float)
        bad = pd.Series(False, index=values.index)
        if low is not None:
            bad |= values < low
        if high is not None:
            bad |= values > high
        return _map_outcome(len(values), values[bad], mostly)
    if kind in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        inside = values.isin(list(kwargs.get("value_set") or []))
        unexpected = values[~inside] if kind == "expect_column_values_to_be_in_set" else values[inside]
        return _map_outcome(len(values), unexpected, mostly)
    if kind == "expect_column_unique_value_count_to_be_between":
        count = int(values.nunique())
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        ok = (low is None or count >= low) and (high is None or count <= high)
        return {"success": ok, "observed": count}
    raise ContractError(f"expectation type {kind!r} is not supported by the pandas engine")


def run_pandas(frame: pd.DataFrame, suite: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The same suite, evaluated with vectorised pandas operations."""
    raw = []
    columns = _Columns(frame)
    for expectation in suite["expectations"]:
        outcome = {
            "observed": None,
            "unexpected_count": None,
            "examples": [],
            "missing": [],
            "unexpected_columns": [],
        }
        outcome.update(_evaluate_pandas(frame, expectation["type"], expectation.get("kwargs") or {}, columns))
        outcome.setdefault("error", None)
        raw.append(outcome)
    return raw


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


def _list(values: list[Any], limit: int = 8) -> str:
    shown = ", ".join(_fmt(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def _rows(count: int | None) -> str:
    return "1 row" if count == 1 else f"{count} rows"


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _expected_text(kind: str, kwargs: Mapping[str, Any], check: str) -> str:
    mostly = kwargs.get("mostly")
    if kind == "expect_table_row_count_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if high is None:
            return f"at least {_fmt(low)} rows"
        return f"between {_fmt(low)} and {_fmt(high)} rows"
    if kind == "expect_table_columns_to_match_set":
        columns = list(kwargs.get("column_set") or [])
        if kwargs.get("exact_match", True) is False:
            return f"all {len(columns)} declared columns"
        return f"no columns besides {len(columns)} declared ones"
    if kind == "expect_column_values_to_be_in_type_list":
        types = list(kwargs.get("type_list") or [])
        return "numeric values" if "float64" in types or "int64" in types else "text values"
    if kind == "expect_column_values_to_not_be_null":
        return f"at most {_pct(1 - (1.0 if mostly is None else mostly))} missing values"
    if kind == "expect_column_values_to_be_between":
        return f"values between {_fmt(kwargs.get('min_value'))} and {_fmt(kwargs.get('max_value'))}"
    if kind == "expect_column_values_to_be_in_set" and check == "label_balance_min":
        return f"at least {_pct(mostly or 1.0)} of labels {_fmt(kwargs['value_set'][0])}"
    if kind == "expect_column_values_to_not_be_in_set" and check == "label_balance_max":
        return f"at most {_pct(1 - (mostly or 1.0))} of labels {_fmt(kwargs['value_set'][0])}"
    if kind == "expect_column_values_to_be_in_set":
        return f"values in {{{_list(list(kwargs.get('value_set') or []))}}}"
    if kind == "expect_column_values_to_not_be_in_set":
        return f"no values in {{{_list(list(kwargs.get('value_set') or []))}}}"
    if kind == "expect_column_unique_value_count_to_be_between":
        return f"at least {_fmt(kwargs.get('min_value'))} distinct values"
    return kind


def _found_text(kind: str, check: str, raw: Mapping[str, Any], rows: int, column: pd.Series | None) -> str:
    count = raw.get("unexpected_count")
    examples = raw.get("examples") or []
    example_text = f" (e.g. {_list(examples, MAX_EXAMPLES)})" if examples else ""
    if kind == "expect_table_row_count_to_be_between":
        return f"found {raw.get('observed')} rows" + (
            "; the data has no rows" if raw.get("observed") == 0 else ""
        )
    if kind == "expect_table_columns_to_match_set":
        parts = []
        missing = raw.get("missing") or []
        extra = raw.get("unexpected_columns") or []
        if missing:
            parts.append(
                ("column " if len(missing) == 1 else "columns ")
                + _list(missing)
                + (" is" if len(missing) == 1 else " are")
                + " missing"
            )
        if extra:
            parts.append(
                ("found unexpected column " if len(extra) == 1 else "found unexpected columns ")
                + _list(extra)
            )
        return "; ".join(parts) or "columns differ"
    if kind == "expect_column_values_to_be_in_type_list":
        if count is None:
            return f"found dtype {raw.get('observed')}"
        if column is not None and (column.dtype == object or isinstance(column.dtype, pd.StringDtype)):
            text = column.dropna()
            bad = text[pd.to_numeric(text, errors="coerce").isna()] if "numeric" in check else text
            examples = _examples(bad.drop_duplicates()) or examples
        return (
            f"{count} values of another type, e.g. {_list(examples, MAX_EXAMPLES)}"
            if examples
            else f"{count} values of another type"
        )
    if kind == "expect_column_values_to_not_be_null":
        share = (count or 0) / rows if rows else 0.0
        return f"found {_pct(share)} missing ({count} of {rows} rows)"
    if check in ("label_balance_min", "label_balance_max") and column is not None:
        considered = int(column.notna().sum())
        if kind.endswith("not_be_in_set"):
            share = (count or 0) / considered if considered else 0.0
        else:
            share = 1 - (count or 0) / considered if considered else 0.0
        return f"found {_pct(share)}"
    if kind == "expect_column_values_to_be_between":
        return f"{_rows(count)} outside{example_text}"
    if kind in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        word = "unseen" if kind == "expect_column_values_to_be_in_set" else "forbidden"
        return f"{_rows(count)} with {word} values{example_text}"
    if kind == "expect_column_unique_value_count_to_be_between":
        values = sorted(map(str, column.dropna().unique()))[:MAX_EXAMPLES] if column is not None else []
        shown = f" ({_list(values)})" if values else ""
        return f"found {raw.get('observed')}{shown}"
    return f"observed {raw.get('observed')}"


def _check_result(
    expectation: Mapping[str, Any], raw: Mapping[str, Any], frame: pd.DataFrame, source: str
) -> CheckResult:
    kind = expectation["type"]
    kwargs = expectation.get("kwargs") or {}
    meta = expectation.get("meta") or {}
    check = str(meta.get("check") or kind)
    if kind == "expect_column_values_to_be_in_type_list":
        check = "type_numeric" if _expected_text(kind, kwargs, check) == "numeric values" else "type_text"
    name = _column(expectation)
    expected = _expected_text(kind, kwargs, check)
    column = frame[name] if name is not None and name in frame.columns else None
    success = bool(raw.get("success"))
    where = f"{source}: column {name!r}" if name else source
    if name is not None and column is None and "column" in kwargs:
        success = False
        message = f"{source}: column {name!r} is missing (expected {expected})"
    elif raw.get("error"):
        message = f"{where}: expected {expected}; the check could not run: {raw['error']}"
    elif success:
        message = f"{where}: {expected}: ok"
    else:
        message = f"{where}: expected {expected}; {_found_text(kind, check, raw, len(frame), column)}"
    return CheckResult(
        type=kind,
        check=str(meta.get("check") or kind),
        column=name,
        severity=_severity(expectation),
        success=success,
        expected=expected,
        observed=_plain(raw.get("observed")),
        unexpected_count=raw.get("unexpected_count"),
        unexpected_examples=_plain(list(raw.get("examples") or [])),
        message=message,
    )


def choose_engine(engine: str, rows: int, gx_max_rows: int) -> str:
    """``auto`` keeps Great Expectations (the reference) while it is fast enough, the pandas engine beyond."""
    if engine == "auto":
        return "gx" if rows <= gx_max_rows else "pandas"
    return engine


def validate_frame(
    frame: pd.DataFrame,
    suite: Mapping[str, Any],
    source: str = "data",
    engine: str = "gx",
) -> ValidationReport:
    """Run ``suite`` on ``frame`` with the chosen engine and phrase every outcome."""
    if engine not in ENGINES:
        raise ContractError(f"unknown validation engine {engine!r}; use one of {ENGINES}")
    started = time.perf_counter()
    raw = run_gx(prepare_frame(frame), suite) if engine == "gx" else run_pandas(frame, suite)
    seconds = time.perf_counter() - started
    checks = [_check_result(e, r, frame, source) for e, r in zip(suite["expectations"], raw, strict=True)]
    report = ValidationReport(
        source=str(source),
        rows=len(frame),
        columns=[str(c) for c in frame.columns],
        engine=engine,
        seconds=seconds,
        suite=str(suite.get("name") or ""),
        checks=checks,
    )
    log.info(
        "validated %s rows of %s with %s in %.2fs: %d critical failures, %d warnings",
        f"{len(frame):,}",
        source,
        engine,
        seconds,
        len(report.failed_critical),
        len(report.warnings),
    )
    from german_credit_scoring import runs

    if runs.path_of("validate").is_file():  # inside the validate stage: a run fact, not a DVC output
        runs.record("validate", validation_seconds=round(seconds, 3), validation_engine=engine)
    return report


def render_markdown(report: ValidationReport, suite_path: Path | str = "") -> str:
    """The stage's Markdown summary for the pull-request comment."""
    from german_credit_scoring.markdown import render

    result = report.to_dict()
    checks = result["checks"]
    return render(
        "validation.md.j2",
        result=result,
        suite_path=str(suite_path),
        failed=[c for c in checks if not c["success"] and c["severity"] == "critical"],
        warnings=[c for c in checks if not c["success"] and c["severity"] != "critical"],
    )


def validate_prepared(
    frames: list[pd.DataFrame],
    suite_path: Path | str,
    source: str,
    engine: str,
    gx_max_rows: int = 250_000,
) -> ValidationReport:
    """Validate the prepared splits together: the suite describes the data set, not one split."""
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    chosen = choose_engine(engine, len(frame), gx_max_rows)
    return validate_frame(frame, load_suite(suite_path), source, chosen)

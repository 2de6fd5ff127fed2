"""Draft the data contract from a data file: ``features.yaml`` and a Great Expectations suite.

This module needs only the standard library and PyYAML (Parquet additionally needs pyarrow), because
the project generator's post-generation hook runs it with cookiecutter's own Python, where pandas,
pydantic and Great Expectations are not installed. The same code backs ``contract.infer_features`` and
``mlops infer-contract``, so there is one inference implementation.

The suite is written as plain JSON in the Great Expectations Core 1.x format
(``gx.ExpectationSuite(**suite)`` loads it). Every expectation carries
``meta: {severity, column, check}``: ``critical`` failures fail the validate stage, ``warning``
failures are reported only.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:
    from german_credit_scoring.errors import ContractError
except ImportError:  # loaded by file path (the generation hook) without the package importable

    class ContractError(Exception):  # type: ignore[no-redef]
        """The data cannot be turned into a contract."""


log = logging.getLogger(__name__)

# Cells read as missing: exactly pandas' default CSV NA values (case-sensitive, so "none" is a value).
NULL_TOKENS = frozenset(
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip
MAX_CATEGORIES = 50
# Distinct values remembered per column; beyond this a text column is refused anyway.
_DISTINCT_CAP = 10_000
# ``mostly`` is never below this, so a column that is entirely missing always fails.
MIN_MOSTLY = 0.01

SEVERITY_CRITICAL = "critical"
SEVERITY_WARNING = "warning"

# pandas/numpy dtype names and Python value types a column may have. Ints and floats are both
# accepted for a numeric column because a missing value turns an int column into floats.
NUMERIC_TYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype",
    "float32", "float64", "Float32Dtype", "Float64Dtype",
    "int", "float",
]  # fmt: skip
TEXT_TYPES = ["str", "StringDtype", "CategoricalDtype"]

DEFAULT_VALIDATION = {
    "null_rate_margin": 0.05,
    "range_margin": 0.0,
    "label_balance_tolerance": 0.15,
    "row_count_min": 50,
}


# --------------------------------------------------------------------------------------------
# Reading and profiling
# --------------------------------------------------------------------------------------------


@dataclass
class ColumnProfile:
    """What one column looks like; filled one value at a time so large files stream."""

    name: str
    rows: int = 0
    nulls: int = 0
    all_int: bool = True
    all_numeric: bool = True
    minimum: float | None = None
    maximum: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    too_many_values: bool = False
    # False for columns already typed as text (a data frame's string column): never parsed as numbers.
    parse_text: bool = True

    def add(self, value: Any) -> None:
        self.rows += 1
        if _is_null(value):
            self.nulls += 1
            return
        text = _text(value)
        if not self.too_many_values:
            if text in self.counts:
                self.counts[text] += 1
            elif len(self.counts) < _DISTINCT_CAP:
                self.counts[text] = 1
            else:
                self.too_many_values = True
        if not self.all_numeric:
            return
        number, is_int = (
            (None, False) if isinstance(value, str) and not self.parse_text else _as_number(value)
        )
        if number is None:
            self.all_numeric = False
            return
        self.all_int = self.all_int and is_int
        self.minimum = number if self.minimum is None else min(self.minimum, number)
        self.maximum = number if self.maximum is None else max(self.maximum, number)

    @property
    def non_null(self) -> int:
        return self.rows - self.nulls

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def dtype(self) -> str:
        """``int``, ``float`` or ``category``; an empty column counts as float, as pandas reads it."""
        if self.non_null == 0:
            return "float"
        if self.all_numeric:
            return "int" if self.all_int else "float"
        return "category"

    @property
    def distinct(self) -> int:
        return len(self.counts)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dtype": self.dtype,
            "rows": self.rows,
            "nulls": self.nulls,
            "null_rate": round(self.null_rate, 6),
            "distinct": self.distinct if not self.too_many_values else f">{_DISTINCT_CAP}",
        }
        if self.dtype != "category":
            out["min"], out["max"] = self.minimum, self.maximum
        return out


@dataclass
class DataProfile:
    source: str
    columns: dict[str, ColumnProfile]
    rows: int

    def column(self, name: str) -> ColumnProfile:
        if name not in self.columns:
            raise ContractError(
                f"{self.source}: column {name!r} is not in the data (columns: {list(self.columns)})"
            )
        return self.columns[name]

    def label_distribution(self, target: str) -> dict[str, int]:
        return dict(sorted(self.column(target).counts.items()))


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return value in NULL_TOKENS
    try:  # pandas.NA / NaT and numpy NaN without importing them
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def _text(value: Any) -> str:
    """The category label of a value, as ``astype("string")`` spells it."""
    if isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else str(value)


def _as_number(value: Any) -> tuple[float | None, bool]:
    """The value as a finite number and whether it is whole; ``(None, False)`` for text."""
    if isinstance(value, bool):
        return None, False
    if isinstance(value, int):
        return float(value), True
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(int(text)), True
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None, False
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None, False
    if not math.isfinite(number):
        return None, False
    return number, number.is_integer()


def detect_format(path: Path, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    name = path.name.lower()
    if name.endswith((".csv", ".txt", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise ContractError(f"{path}: cannot tell the format from the extension {path.suffix!r}; give the format")


def _csv_columns(path: Path) -> tuple[list[str], Iterator[list[Any]]]:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    handle = opener(path, "rt", encoding="utf-8-sig", newline="")
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        handle.close()
        raise ContractError(f"{path}: the file is empty (expected a header row and data rows)") from None
    names = [name.strip() for name in header]

    def rows() -> Iterator[list[Any]]:
        with handle:
            for row in reader:
                if not row:
                    continue
                if len(row) > len(names):
                    raise ContractError(
                        f"{path}: line {reader.line_num} has {len(row)} fields, the header has {len(names)}"
                    )
                yield row + [None] * (len(names) - len(row))

    return names, rows()


def _parquet_columns(path: Path) -> tuple[list[str], Iterator[list[Any]], list[str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ContractError(
            f"{path}: reading Parquet needs pyarrow, which this Python does not have; "
            "install pyarrow or give a CSV file"
        ) from None
    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow's own message is the useful part
        raise ContractError(f"{path}: cannot be read as parquet: {error}") from None
    import pyarrow as pa

    schema = parquet.schema_arrow
    names = [str(name).strip() for name in schema.names]
    # Parquet is typed: a string column stays text even when its values look like numbers.
    text = [
        name
        for name, column in zip(names, schema, strict=True)
        if pa.types.is_string(column.type)
        or pa.types.is_large_string(column.type)
        or pa.types.is_dictionary(column.type)
    ]

    def rows() -> Iterator[list[Any]]:
        for batch in parquet.iter_batches(batch_size=65_536):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            yield from (list(row) for row in zip(*columns, strict=True))

    return names, rows(), text


def profile_rows(
    names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    source: str = "data",
    text_columns: Iterable[str] = (),
) -> DataProfile:
    """Profile any rows of values (CSV strings, Parquet values, or a frame's rows).

    Strings are read as numbers where they parse (a CSV has no types), except in ``text_columns``.
    """
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise ContractError(f"{source}: column names appear more than once: {duplicates}")
    text = set(text_columns)
    profiles = [ColumnProfile(name=str(name), parse_text=name not in text) for name in names]
    count = 0
    for row in rows:
        count += 1
        for profile, value in zip(profiles, row, strict=True):
            profile.add(value)
    return DataProfile(source=source, columns={p.name: p for p in profiles}, rows=count)


def profile_columns(
    columns: Mapping[str, Sequence[Any]], source: str = "data", text_columns: Iterable[str] = ()
) -> DataProfile:
    """Profile column-wise data, e.g. ``{name: frame[name].tolist()}``."""
    names = list(columns)
    return profile_rows(names, zip(*(columns[n] for n in names), strict=True), source, text_columns)


def profile_file(path: Path | str, fmt: str = "auto") -> DataProfile:
    """Stream a CSV (standard library) or Parquet (pyarrow) file into a profile."""
    path = Path(path)
    if not path.is_file():
        raise ContractError(f"{path}: data file not found")
    kind = detect_format(path, fmt)
    text: list[str] = []
    if kind == "csv":
        names, rows = _csv_columns(path)
    elif kind == "parquet":
        names, rows, text = _parquet_columns(path)
    else:
        raise ContractError(f"{path}: unknown format {kind!r}; use csv or parquet")
    try:
        return profile_rows(names, rows, str(path), text)
    except (UnicodeDecodeError, csv.Error) as error:
        raise ContractError(f"{path}: cannot be read as {kind}: {error}") from None


# --------------------------------------------------------------------------------------------
# features.yaml
# --------------------------------------------------------------------------------------------


def round_out(value: float, up: bool) -> float:
    """Widen a bound to a readable number so the contract does not reject the next honest value."""
    if value == 0 or not math.isfinite(value):
        return value
    magnitude = 10 ** max(math.floor(math.log10(abs(value))) - 1, 0)
    return float((math.ceil if up else math.floor)(value / magnitude) * magnitude)


def infer_features_dict(
    profile: DataProfile,
    target: str,
    sensitive: Sequence[str] = (),
    owner: str = "",
    max_categories: int = MAX_CATEGORIES,
) -> dict[str, Any]:
    """Draft feature definitions (the ``contract.FeatureSet`` schema) to be reviewed and committed.

    Numeric columns get their observed range (rounded outwards, never below 0 when the data is not),
    text columns their observed categories. Columns with more distinct text values than
    ``max_categories`` are refused: they are identifiers or free text, which need a deliberate decision.
    """
    if target not in profile.columns:
        raise ContractError(
            f"{profile.source}: target column {target!r} is not in the data (columns: {list(profile.columns)})"
        )
    missing = [name for name in sensitive if name not in profile.columns]
    if missing:
        raise ContractError(f"{profile.source}: protected attributes {missing} are not in the data")
    definitions: list[dict[str, Any]] = []
    for name, column in profile.columns.items():
        if name == target:
            continue
        if column.non_null == 0:
            log.warning(
                "%s: column %r is empty; its null check will fail until it has values", profile.source, name
            )
        definition: dict[str, Any] = {"name": name, "dtype": column.dtype, "description": "", "owner": owner}
        if column.dtype == "category":
            if column.too_many_values or column.distinct > max_categories:
                shown = f"more than {_DISTINCT_CAP}" if column.too_many_values else str(column.distinct)
                raise ContractError(
                    f"{profile.source}: column {name!r} has {shown} distinct text values (more than "
                    f"{max_categories}); it looks like an identifier or free text: drop it or declare it by hand"
                )
            definition["allowed_values"] = sorted(column.counts)
        elif column.minimum is not None and column.maximum is not None:
            low, high = round_out(column.minimum, up=False), round_out(column.maximum, up=True)
            if column.minimum >= 0:
                low = max(low, 0.0)
            definition["min"], definition["max"] = low, high
        definition["nullable"] = column.nulls > 0
        definition["sensitive"] = name in sensitive
        definition["immutable"] = False  # the data owners mark what a person cannot change (hints)
        definitions.append(definition)
    if not definitions:
        raise ContractError(f"{profile.source}: the data has no column besides the target")
    return {"features": definitions}


# --------------------------------------------------------------------------------------------
# The Great Expectations suite
# --------------------------------------------------------------------------------------------


def _expectation(
    kind: str, kwargs: dict[str, Any], severity: str, column: str | None, check: str
) -> dict[str, Any]:
    return {
        "type": kind,
        "kwargs": kwargs,
        "meta": {"severity": severity, "column": column, "check": check},
        "severity": severity,
    }


def _mostly_not_null(null_rate: float, margin: float) -> float:
    """Share of values that must be present: observed minus the margin, floored to 4 digits."""
    share = math.floor((1.0 - null_rate - margin) * 10_000) / 10_000
    return min(1.0, max(MIN_MOSTLY, share))


def _settings(validation: Mapping[str, Any] | Any | None) -> dict[str, Any]:
    values = dict(DEFAULT_VALIDATION)
    if validation is None:
        return values
    for key in DEFAULT_VALIDATION:
        value = validation.get(key) if isinstance(validation, Mapping) else getattr(validation, key, None)
        if value is not None:
            values[key] = value
    return values


def build_suite(
    features: Mapping[str, Any],
    profile: DataProfile,
    target: str,
    positive_label: str,
    validation: Mapping[str, Any] | Any | None = None,
    name: str = "data_contract",
) -> dict[str, Any]:
    """A GX Core 1.x ExpectationSuite (as its JSON dict) from the contract, the data's profile and settings.

    Ranges and category sets come from the contract (reviewed by people); null rates and the label
    balance come from the data (observed value widened by the configured margins).
    """
    config = _settings(validation)
    definitions = list(features.get("features") or [])
    if not definitions:
        raise ContractError("the feature definitions list no features")
    columns = [str(d["name"]) for d in definitions] + [target]
    labels = profile.label_distribution(target)
    if str(positive_label) not in labels:
        raise ContractError(
            f"{profile.source}: positive label {positive_label!r} does not occur in target {target!r} "
            f"(labels: {list(labels)})"
        )
    expectations = [
        _expectation(
            "expect_table_row_count_to_be_between",
            {"min_value": int(config["row_count_min"]), "max_value": None},
            SEVERITY_CRITICAL,
            None,
            "row_count",
        ),
        _expectation(
            "expect_table_columns_to_match_set",
            {"column_set": columns, "exact_match": False},
            SEVERITY_CRITICAL,
            None,
            "schema",
        ),
        _expectation(
            "expect_table_columns_to_match_set",
            {"column_set": columns, "exact_match": True},
            SEVERITY_WARNING,
            None,
            "extra_columns",
        ),
    ]
    margin = float(config["null_rate_margin"])
    for definition in definitions:
        column = str(definition["name"])
        numeric = definition["dtype"] in ("int", "float")
        observed = profile.columns.get(column)
        null_rate = observed.null_rate if observed is not None else 0.0
        expectations.append(
            _expectation(
                "expect_column_values_to_be_in_type_list",
                {"column": column, "type_list": NUMERIC_TYPES if numeric else TEXT_TYPES},
                SEVERITY_CRITICAL,
                column,
                "type",
            )
        )
        expectations.append(
            _expectation(
                "expect_column_values_to_not_be_null",
                {"column": column, "mostly": _mostly_not_null(null_rate, margin)},
                SEVERITY_CRITICAL,
                column,
                "nulls",
            )
        )
        if numeric:
            low, high = definition.get("min"), definition.get("max")
            if low is not None or high is not None:
                span = (high - low) if low is not None and high is not None else 0.0
                widen = float(config["range_margin"]) * span
                expectations.append(
                    _expectation(
                        "expect_column_values_to_be_between",
                        {
                            "column": column,
                            "min_value": None if low is None else float(low) - widen,
                            "max_value": None if high is None else float(high) + widen,
                        },
                        SEVERITY_CRITICAL,
                        column,
                        "range",
                    )
                )
        elif definition.get("allowed_values"):
            expectations.append(
                _expectation(
                    "expect_column_values_to_be_in_set",
                    {"column": column, "value_set": [str(v) for v in definition["allowed_values"]]},
                    SEVERITY_CRITICAL,
                    column,
                    "categories",
                )
            )
    target_nulls = profile.column(target).null_rate
    positive_rate = labels[str(positive_label)] / max(sum(labels.values()), 1)
    tolerance = float(config["label_balance_tolerance"])
    expectations += [
        _expectation(
            "expect_column_values_to_not_be_null",
            {"column": target, "mostly": _mostly_not_null(target_nulls, margin)},
            SEVERITY_CRITICAL,
            target,
            "nulls",
        ),
        _expectation(
            "expect_column_values_to_be_in_set",
            {"column": target, "value_set": list(labels)},
            SEVERITY_CRITICAL,
            target,
            "labels",
        ),
        _expectation(
            "expect_column_unique_value_count_to_be_between",
            {"column": target, "min_value": 2, "max_value": None},
            SEVERITY_CRITICAL,
            target,
            "label_classes",
        ),
    ]
    # Label balance as two bounds on the share of the positive label (warnings: a shift is news,
    # not necessarily an error).
    low_share = math.floor((positive_rate - tolerance) * 10_000) / 10_000
    high_share = math.ceil((positive_rate + tolerance) * 10_000) / 10_000
    if low_share > 0:
        expectations.append(
            _expectation(
                "expect_column_values_to_be_in_set",
                {"column": target, "value_set": [str(positive_label)], "mostly": low_share},
                SEVERITY_WARNING,
                target,
                "label_balance_min",
            )
        )
    if high_share < 1:
        expectations.append(
            _expectation(
                "expect_column_values_to_not_be_in_set",
                {"column": target, "value_set": [str(positive_label)], "mostly": round(1 - high_share, 4)},
                SEVERITY_WARNING,
                target,
                "label_balance_max",
            )
        )
    return {
        "name": name,
        "expectations": expectations,
        "meta": {
            "generated_by": "german_credit_scoring.inference",
            "source": profile.source,
            "rows": profile.rows,
            "target": target,
            "positive_label": str(positive_label),
            "label_distribution": labels,
            "positive_rate": round(positive_rate, 6),
            "settings": config,
        },
        "notes": "Generated by `mlops infer-contract`; regenerate rather than edit by hand.",
    }


# --------------------------------------------------------------------------------------------
# Writing and the command line
# --------------------------------------------------------------------------------------------


class _ContractDumper(yaml.SafeDumper):
    """Short lists of scalars on one line: a reviewer reads a category set at a glance."""


def _represent_list(dumper: yaml.SafeDumper, items: list):
    flow = all(not isinstance(item, dict | list) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_ContractDumper.add_representer(list, _represent_list)

FEATURES_HEADER = (
    "# Feature definitions: the data contract. Drafted by `mlops infer-contract`; review it, add\n"
    "# descriptions, owners and transformations, mark what a person cannot change `immutable: true`\n"
    "# (counterfactual hints never suggest it), and commit it.\n"
)


def features_yaml(features: Mapping[str, Any], header: str = FEATURES_HEADER) -> str:
    return header + yaml.dump(
        dict(features), Dumper=_ContractDumper, sort_keys=False, allow_unicode=True, width=100
    )


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_features_file(path: Path | str) -> dict[str, Any]:
    """An existing features.yaml as a plain mapping (the typed check is ``contract.load_features``)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ContractError(f"{path}: cannot be read: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("features"), list):
        raise ContractError(f"{path}: expected a mapping with a 'features' list")
    for index, item in enumerate(raw["features"]):
        if (
            not isinstance(item, dict)
            or "name" not in item
            or item.get("dtype") not in ("int", "float", "category")
        ):
            raise ContractError(
                f"{path}: features.{index} needs a name and a dtype of int, float or category"
            )
    return raw


@dataclass(frozen=True)
class ContractDraft:
    features: dict[str, Any]
    suite: dict[str, Any]
    profile: DataProfile


def write_contract(
    data_path: Path | str,
    target: str,
    positive_label: str,
    protected: Sequence[str] = (),
    out_features: Path | str | None = None,
    out_suite: Path | str | None = None,
    *,
    validation: Mapping[str, Any] | Any | None = None,
    features_in: Path | str | None = None,
    owner: str = "",
    max_categories: int = MAX_CATEGORIES,
    fmt: str = "auto",
    suite_name: str = "data_contract",
) -> ContractDraft:
    """Profile ``data_path`` and write the drafted features.yaml and/or the GX suite JSON.

    With ``features_in`` the suite is built from that (hand-reviewed) contract instead of the draft,
    so regenerating the suite never discards descriptions or transformations.
    """
    profile = profile_file(data_path, fmt)
    drafted = infer_features_dict(profile, target, protected, owner=owner, max_categories=max_categories)
    contract = read_features_file(features_in) if features_in is not None else drafted
    suite = build_suite(contract, profile, target, positive_label, validation, name=suite_name)
    if out_features is not None:
        _write_atomic(Path(out_features), features_yaml(drafted))
    if out_suite is not None:
        _write_atomic(Path(out_suite), json.dumps(suite, indent=2) + "\n")
    return ContractDraft(features=drafted, suite=suite, profile=profile)


def _params(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ContractError(f"{path}: not valid YAML: {error}") from None


def infer_contract_cli(argv: Sequence[str] | None = None) -> int:
    """``mlops infer-contract``: draft features.yaml and the GX suite; defaults come from params.yaml."""
    parser = argparse.ArgumentParser(prog="mlops infer-contract", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--params", default="params.yaml", help="settings file for defaults (default: %(default)s)"
    )
    parser.add_argument("--data", help="CSV or Parquet file (default: data.path)")
    parser.add_argument("--format", default=None, choices=["auto", "csv", "parquet"])
    parser.add_argument("--target", help="label column (default: data.target)")
    parser.add_argument("--positive-label", help="the class the model scores (default: data.positive_label)")
    parser.add_argument(
        "--protected", help="comma-separated protected attributes (default: data.protected_attributes)"
    )
    parser.add_argument("--features-out", help="where to draft features.yaml (default: features)")
    parser.add_argument("--suite-out", help="where to write the GX suite JSON (default: validation.suite)")
    parser.add_argument("--owner", default="", help="owner written into every drafted feature")
    parser.add_argument("--max-categories", type=int, default=MAX_CATEGORIES)
    parser.add_argument(
        "--overwrite-features",
        action="store_true",
        help="replace an existing features file (otherwise it is kept and the suite is built from it)",
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    params = _params(Path(args.params))
    data = params.get("data") or {}
    validation = params.get("validation") or {}
    data_path = args.data or data.get("path")
    target = args.target or data.get("target")
    positive = args.positive_label if args.positive_label is not None else data.get("positive_label")
    if args.protected is not None:
        protected = [p.strip() for p in args.protected.split(",") if p.strip()]
    else:
        protected = [
            p["name"] if isinstance(p, dict) else str(p) for p in data.get("protected_attributes") or []
        ]
    features_out = Path(args.features_out or params.get("features") or "features/features.yaml")
    suite_out = Path(args.suite_out or validation.get("suite") or "features/expectations.json")
    missing = [
        flag
        for flag, value in (("--data", data_path), ("--target", target), ("--positive-label", positive))
        if not value
    ]
    if missing:
        print(
            f"mlops infer-contract: give {', '.join(missing)} (no default in {args.params})", file=sys.stderr
        )
        return 2
    keep = features_out.exists() and not args.overwrite_features
    try:
        draft = write_contract(
            data_path,
            target,
            str(positive),
            protected,
            out_features=None if keep else features_out,
            out_suite=suite_out,
            validation=validation,
            features_in=features_out if keep else None,
            owner=args.owner,
            max_categories=args.max_categories,
            fmt=args.format or data.get("format") or "auto",
        )
    except ContractError as error:
        print(f"mlops infer-contract: {error}", file=sys.stderr)
        return 2
    if keep:
        print(f"kept {features_out} (it exists; --overwrite-features drafts it again)")
    else:
        print(f"wrote {features_out}: {len(draft.features['features'])} features, review and commit it")
    print(
        f"wrote {suite_out}: {len(draft.suite['expectations'])} expectations from {draft.profile.rows} rows"
    )
    return 0


if __name__ == "__main__":
    sys.exit(infer_contract_cli())

"""Column access for the drift check: Parquet, CSV and JSON Lines files through pyarrow, or a frame.

The check asks for one column at a time, as a float array (numeric features) or as value counts
(categorical ones), so a window of many Parquet files is streamed column by column: memory holds
one column of the window, never the whole table, and pandas is never imported unless a model has
to score rows. CSV and JSON Lines files are read whole (they are not columnar); a window of
millions of rows belongs in Parquet.

Every reader error becomes a :class:`DataError` that names the file; a malformed prediction-log
line is counted and reported by file and line, and the rest of the file is still read.
"""

from __future__ import annotations

import glob
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from german_credit_scoring.errors import DataError

MISSING = "__missing__"
# Column that carries the model's probability in a flattened current frame.
PROBABILITY = "__probability__"
LOG_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = (".csv", *PARQUET_SUFFIXES, *LOG_SUFFIXES)
MAX_BAD_RECORD_EXAMPLES = 20


@dataclass
class BadRecords:
    """Log lines (or values in them) that could not be used: counted, the first ones kept with file
    and line. Columns are read in threads, hence the lock."""

    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, path: Path | str, line: int, error: str) -> None:
        with self._lock:
            self.count += 1
            if len(self.examples) < MAX_BAD_RECORD_EXAMPLES:
                self.examples.append({"file": str(path), "line": line, "error": error})

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "examples": list(self.examples)}


# --------------------------------------------------------------------------------------------------
# Finding the files
# --------------------------------------------------------------------------------------------------


def resolve_sources(source: str | Path) -> list[Path]:
    """A file, a folder (every table or log file under it) or a glob pattern; sorted for stable output."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        found = [Path(p) for p in glob.glob(text, recursive=True)]
    else:
        path = Path(text)
        if path.is_file():
            return [path]
        if path.is_dir():
            found = [p for p in path.rglob("*") if p.is_file()]
        else:
            return []
    return sorted(p for p in found if p.is_file() and _is_table(p))


def _is_table(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and (name.endswith(TABLE_SUFFIXES) or name.endswith(".csv.gz"))


# --------------------------------------------------------------------------------------------------
# Prediction-log records
# --------------------------------------------------------------------------------------------------


def flatten_record(record: dict[str, Any], target: str) -> list[dict[str, Any]]:
    """A prediction-log record (inputs/outputs) or a flat row -> flat rows with ``PROBABILITY``."""
    if "inputs" not in record:
        row = dict(record)
        if "probability" in row and PROBABILITY not in row:
            row[PROBABILITY] = row.pop("probability")
        return [row]
    inputs, outputs = record.get("inputs"), record.get("outputs") or {}
    if isinstance(inputs, dict):
        inputs, outputs = [inputs], [outputs] if isinstance(outputs, dict) else outputs
    if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
        raise ValueError("'inputs' must be an object or a list of objects")
    if not isinstance(outputs, list):
        outputs = [outputs] * len(inputs)
    if len(outputs) == 1 and len(inputs) > 1 and isinstance(outputs[0], dict):
        # a batch record whose outputs hold lists: {"probability": [...], "decision": [...]}
        first = outputs[0]
        if isinstance(first.get("probability"), list):
            outputs = [{"probability": p} for p in first["probability"]]
    rows = []
    for i, item in enumerate(inputs):
        row = dict(item)
        out = outputs[i] if i < len(outputs) and isinstance(outputs[i], dict) else {}
        if "probability" in out:
            row[PROBABILITY] = out["probability"]
        for key in ("model_version", "timestamp", "request_id"):
            if key in record:
                row[f"__{key}__"] = record[key]
        if target in record and target not in row:
            row[target] = record[target]
        rows.append(row)
    return rows


def read_log_rows(
    path: Path, target: str, bad: BadRecords, lines: list[int] | None = None
) -> list[dict[str, Any]]:
    """Rows of a JSON Lines log (or a JSON array of records); unreadable records go to ``bad``.
    ``lines``, when given, receives each row's line (record) number."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read: {error.strerror}") from None
    stripped = text.lstrip()
    numbered: list[tuple[int, Any]] = []
    if stripped.startswith("["):  # a JSON array of records
        try:
            numbered = list(enumerate(json.loads(text), start=1))
        except ValueError as error:
            raise DataError(f"{path}: not valid JSON: {error}") from None
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((number, json.loads(line)))
            except ValueError as error:
                bad.add(path, number, f"not a JSON object: {getattr(error, 'msg', error)}")
    rows: list[dict[str, Any]] = []
    for number, record in numbered:
        if not isinstance(record, dict):
            bad.add(path, number, f"a JSON {type(record).__name__}, expected an object")
            continue
        try:
            flat = flatten_record(record, target)
        except (ValueError, TypeError) as error:
            bad.add(path, number, str(error))
            continue
        rows.extend(flat)
        if lines is not None:
            lines.extend([number] * len(flat))
    return rows


# --------------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------------


class _Part:
    """One file (or frame): its rows and how to get one of its columns as a pyarrow array.

    ``stored`` maps the names the check asks for to the names in the file (``probability`` is
    answered as ``PROBABILITY``); a column the file lacks is ``None``."""

    def __init__(self, label: str, rows: int, names: list[str]):
        self.label, self.rows = label, rows
        stripped = [name.strip() for name in names]
        repeated = sorted({name for name in stripped if stripped.count(name) > 1})
        if repeated:
            raise DataError(f"{label}: column(s) {repeated} appear more than once in the header")
        self.stored = {name.strip(): name for name in names}
        if "probability" in self.stored and PROBABILITY not in self.stored:
            self.stored[PROBABILITY] = self.stored.pop("probability")

    @property
    def names(self) -> list[str]:
        return list(self.stored)

    def column(self, name: str, dictionary: bool = False):  # -> pyarrow.ChunkedArray | None
        """The column, or None; ``dictionary`` asks for dictionary-encoded values where the format
        stores them so (Parquet), which counting categories needs without materialising strings."""
        stored = self.stored.get(name)
        return None if stored is None else self._read(stored, dictionary)

    def _read(self, stored: str, dictionary: bool = False):
        raise NotImplementedError


class _ParquetPart(_Part):
    def __init__(self, path: Path):
        import pyarrow.parquet as pq

        try:
            self.file = pq.ParquetFile(path)
        except Exception as error:  # pyarrow's message is the useful part
            raise DataError(f"{path}: cannot be read as Parquet: {error}") from None
        self.path = path
        super().__init__(
            str(path), self.file.metadata.num_rows, [str(n) for n in self.file.schema_arrow.names]
        )

    def _read(self, stored: str, dictionary: bool = False):
        if dictionary:  # strings straight into dictionary arrays; other types are read as stored
            try:
                return self._reader(read_dictionary=[stored]).read(columns=[stored]).column(0)
            except Exception:  # the plain read below reports what is wrong
                pass
        try:
            table = self._reader().read(columns=[stored], use_threads=True)
        except Exception as error:
            raise DataError(f"{self.path}: cannot read column {stored!r}: {error}") from None
        return table.column(0)

    def _reader(self, **options):
        """A reader of its own per read, on the footer parsed once.

        Columns are read from several threads at once (`drift.compare_features`), and one pyarrow
        ParquetFile read from two threads hangs or fails (tests/unit/test_drift.py); `self.file` is kept
        for its metadata only.
        """
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.path, metadata=self.file.metadata, **options)


class _TablePart(_Part):
    def __init__(self, label: str, table):
        self.table = table
        super().__init__(label, table.num_rows, [str(n) for n in table.column_names])

    def _read(self, stored: str, dictionary: bool = False):
        return self.table.column(stored)


# the cells pandas reads as missing by default (its documented na_values), so that a CSV window means
# what `data.read_table` (pandas) makes of the same file: an empty category cell is a missing value,
# never a new category "" (pyarrow's defaults keep empty strings as strings)
PANDAS_NA_VALUES = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip


def _csv_part(path: Path) -> _TablePart:
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(
            path, convert_options=pacsv.ConvertOptions(null_values=PANDAS_NA_VALUES, strings_can_be_null=True)
        )
    except Exception as error:
        text = str(error)
        if "Empty CSV file" in text:
            raise DataError(f"{path}: the file is empty (expected a header row and data rows)") from None
        raise DataError(f"{path}: cannot be read as CSV: {text}") from None
    return _TablePart(str(path), table)


def _log_part(path: Path, target: str, bad: BadRecords) -> _TablePart:
    import pyarrow as pa

    lines: list[int] = []
    rows = read_log_rows(path, target, bad, lines)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            columns[str(name)] = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            # mixed types in one field (a number here, a word there): keep them as text
            columns[str(name)] = pa.array([None if v is None else str(v) for v in values], pa.string())
    part = _TablePart(str(path), pa.table(columns) if columns else pa.table({}))
    part.lines, part.bad = lines, bad
    return part


def _frame_part(label: str, frame) -> _TablePart:
    """A pandas frame as a part; object columns that pyarrow cannot type are kept as text."""
    import pyarrow as pa

    columns = {}
    for name in frame.columns:
        series = frame[name]
        try:
            columns[str(name)] = pa.array(series, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[str(name)] = pa.array(
                [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in series],
                pa.string(),
            )
    return _TablePart(label, pa.table(columns) if columns else pa.table({}))


class Columns:
    """The rows of one or more files (or frames), read one column at a time."""

    def __init__(self, parts: list[_Part], files: list[Path] | None = None, bad: BadRecords | None = None):
        self.parts = parts
        self.files = files or []
        self.bad_records = bad or BadRecords()
        names: dict[str, None] = {}
        for part in parts:
            names.update(dict.fromkeys(part.names))
        self.names = list(names)
        self.num_rows = sum(part.rows for part in parts)

    def __len__(self) -> int:
        return self.num_rows

    def __contains__(self, name: str) -> bool:
        return name in self.names

    @classmethod
    def from_frame(cls, frame, label: str = "data") -> Columns:
        return cls([_frame_part(label, frame)])

    def _chunks(self, name: str, dictionary: bool = False) -> list[tuple[_Part, Any]]:
        """Each part's column (None where a file lacks it: its rows count as missing)."""
        return [(part, part.column(name, dictionary)) for part in self.parts if part.rows]

    def numeric(self, name: str, expected: str = "a number") -> np.ndarray:
        """float64 values, NaN where missing; a value that is not a number is bad input."""
        import pyarrow as pa

        arrays = []
        for part, column in self._chunks(name):
            if column is None or pa.types.is_null(column.type):
                arrays.append(np.full(part.rows, np.nan))
                continue
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                arrays.append(_parse_numbers(column, part, name, expected))
                continue
            try:
                values = column.cast(pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise DataError(
                    f"{part.label}: column {name!r}: expected {expected}, found {column.type} values"
                ) from None
            arrays.extend(_float_chunk(chunk) for chunk in values.chunks)
        if not arrays:
            return np.zeros(0)
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    def counts(self, name: str) -> dict[str, int]:
        """Value -> count, as text (missing values under ``MISSING``)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        out: dict[str, int] = {}

        def add(key: Any, count: int) -> None:
            label = MISSING if key is None or (isinstance(key, float) and math.isnan(key)) else _text(key)
            out[label] = out.get(label, 0) + int(count)

        for part, column in self._chunks(name, dictionary=True):
            if column is None:
                add(None, part.rows)
                continue
            for chunk in column.chunks:
                if pa.types.is_dictionary(chunk.type):
                    indices = _integer_chunk(chunk.indices)
                    if chunk.null_count:
                        indices = indices[_valid(chunk)]
                    tally = np.bincount(indices, minlength=len(chunk.dictionary))
                    for key, count in zip(chunk.dictionary.to_pylist(), tally.tolist(), strict=True):
                        if count:
                            add(key, count)
                    if chunk.null_count:
                        add(None, chunk.null_count)
                    continue
                try:
                    tallies = pc.value_counts(chunk)
                except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                    raise DataError(
                        f"{part.label}: column {name!r}: expected category values, found {chunk.type}"
                    ) from None
                for key, count in zip(
                    tallies.field("values").to_pylist(), tallies.field("counts").to_pylist(), strict=True
                ):
                    add(key, count)
        return out

    def to_pandas(self, names: list[str], rows: int | None = None, seed: int = 0):
        """The named columns as a pandas frame, a seeded random subset of ``rows`` rows at most."""
        import pandas as pd

        columns = {}
        for name in names:
            if name not in self.names:
                continue
            pieces = []
            for part, column in self._chunks(name):
                pieces.append(
                    pd.Series([None] * part.rows, dtype=object)
                    if column is None
                    else column.to_pandas().reset_index(drop=True)
                )
            columns[name] = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]
        frame = pd.DataFrame(columns)
        if rows is not None and len(frame) > rows:
            index = np.sort(np.random.default_rng(seed).choice(len(frame), size=rows, replace=False))
            frame = frame.iloc[index].reset_index(drop=True)
        return frame


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# pyarrow's own to_numpy() and Python scalars import pandas (2 s): buffers are read directly instead.


def _valid(chunk) -> np.ndarray:
    """The validity bitmap of an Arrow array as booleans."""
    bits = np.unpackbits(np.frombuffer(chunk.buffers()[0], dtype=np.uint8), bitorder="little")
    return bits[chunk.offset : chunk.offset + len(chunk)].astype(bool)


def _float_chunk(chunk) -> np.ndarray:
    """A float64 Arrow array as numpy, NaN where null."""
    if len(chunk) == 0:
        return np.zeros(0)
    data = chunk.buffers()[1]
    values = np.frombuffer(data, dtype=np.float64, count=chunk.offset + len(chunk))[chunk.offset :]
    return np.where(_valid(chunk), values, np.nan) if chunk.null_count else values


def _integer_chunk(chunk) -> np.ndarray:
    """An integer Arrow array (dictionary indices) as int64 numpy (nulls read as their slot)."""
    if len(chunk) == 0:
        return np.zeros(0, dtype=np.int64)
    dtype = np.dtype(f"{'u' if chunk.type.id in (2, 4, 6, 8) else ''}int{chunk.type.bit_width}")
    data = chunk.buffers()[1]
    return np.frombuffer(data, dtype=dtype, count=chunk.offset + len(chunk))[chunk.offset :].astype(np.int64)


def _parse_numbers(column, part: _Part, name: str, expected: str) -> np.ndarray:
    """Numbers stored as text (a CSV column with a stray word, JSON with quoted numbers): blank is
    missing. Anything else that is not a number is bad input, named with examples; in a prediction
    log it is one bad record instead (counted with its line, the value read as missing)."""
    lines, bad_records = getattr(part, "lines", None), getattr(part, "bad", None)
    out, bad = [], []
    for index, value in enumerate(column.to_pylist()):
        text = "" if value is None else str(value).strip()
        if not text:
            out.append(math.nan)
            continue
        try:
            out.append(float(text))
        except ValueError:
            out.append(math.nan)
            if lines is not None and bad_records is not None:
                bad_records.add(
                    part.label, lines[index], f"field {name!r}: expected {expected}, got {text[:80]!r}"
                )
            elif text not in bad:
                bad.append(text)
    if bad:
        raise DataError(
            f"{part.label}: column {name!r}: expected {expected}, found non-numeric values {bad[:3]}"
        )
    return np.array(out, dtype=np.float64)


def read_columns(source: str | Path, target: str) -> Columns:
    """All rows of a file, folder or glob (CSV, Parquet, JSON Lines prediction logs)."""
    files = resolve_sources(source)
    bad = BadRecords()
    parts: list[_Part] = []
    for path in files:
        name = path.name.lower()
        if name.endswith(LOG_SUFFIXES):
            part = _log_part(path, target, bad)
        elif name.endswith(PARQUET_SUFFIXES):
            part = _ParquetPart(path)
        else:
            part = _csv_part(path)
        parts.append(part)
    return Columns(parts, files, bad)


def read_file_columns(path: Path) -> Columns:
    """One CSV or Parquet file (the reference snapshot); a missing file is bad input."""
    if not Path(path).is_file():
        raise DataError(f"{path}: data file not found")
    name = Path(path).name.lower()
    part = _ParquetPart(Path(path)) if name.endswith(PARQUET_SUFFIXES) else _csv_part(Path(path))
    return Columns([part], [Path(path)])

"""The prediction-log store: where the service's logs go once a partition is closed, and for how long.

Layout under ``monitoring.store.url`` (a local folder, or ``s3://``, ``gs://``, ``az://`` through
fsspec with the ``s3``/``gcs``/``azure`` extras installed)::

    predictions/date=YYYY-MM-DD/model_version=<version>/part-<host>-<pid>-<shipped at>.jsonl
    outcomes/ingested=YYYY-MM-DD/part-<content hash>.jsonl
    _monitoring/last_check.json

``ship`` moves every file of a closed partition (a past UTC day) from the service's local log folder
to the store: the file is first renamed to ``.shipping-<name>`` (the service opens its file per write,
so later rows go to a new file), copied, checked by size, and only then deleted locally; a crash
leaves ``.shipping-`` files that the next run ships. ``prune`` deletes partitions older than
``retention_days`` in the store and locally (retention is enforced, not advised).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict

from german_credit_scoring.errors import DataError, SettingsError
from german_credit_scoring.monitoring.prediction_log import partition_value

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
OUTCOMES = "outcomes"
STATE = "_monitoring"
SHIPPING = ".shipping-"
LOG_SUFFIXES = (".jsonl", ".parquet")


def today() -> date:
    return datetime.now(UTC).date()


def parse_day(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a date (YYYY-MM-DD)") from None


class Store:
    """A folder or object-store prefix, addressed through fsspec."""

    def __init__(self, url: str | Path) -> None:
        import fsspec

        self.url = str(url)
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as error:
            raise SettingsError(
                f"monitoring.store.url {self.url!r}: {error} (install the extra: "
                "pip install 'german-credit-scoring[s3]' / [gcs] / [azure])"
            ) from None
        from fsspec.implementations.local import LocalFileSystem

        self.local = isinstance(self.fs, LocalFileSystem)
        if self.local:
            root = str(Path(root).absolute())
        self.root = root.rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def listdir(self, *parts: str) -> list[str]:
        """Names directly under a folder ([] when it does not exist)."""
        where = self.path(*parts)
        if not self.fs.exists(where):
            return []
        return sorted(PurePosixPath(p).name for p in self.fs.ls(where, detail=False))

    def put(self, local: Path, *parts: str) -> None:
        """Copy a local file in; on a local store it appears whole or not at all."""
        final = self.path(*parts)
        self.fs.makedirs(str(PurePosixPath(final).parent), exist_ok=True)
        if self.local:
            partial = str(PurePosixPath(final).parent / f".{PurePosixPath(final).name}.tmp")
            self.fs.put_file(str(local), partial)
            self.fs.mv(partial, final)
        else:
            self.fs.put_file(str(local), final)
        size = self.fs.size(final)
        if size != local.stat().st_size:
            raise DataError(f"{final}: copied {size} bytes of {local.stat().st_size}; the local file is kept")

    def write_bytes(self, data: bytes, *parts: str) -> None:
        final = self.path(*parts)
        self.fs.makedirs(str(PurePosixPath(final).parent), exist_ok=True)
        if self.local:
            partial = str(PurePosixPath(final).parent / f".{PurePosixPath(final).name}.tmp")
            with self.fs.open(partial, "wb") as handle:
                handle.write(data)
            self.fs.mv(partial, final)
        else:
            with self.fs.open(final, "wb") as handle:
                handle.write(data)

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open(self.path(*parts), "rb") as handle:
            return handle.read()

    def remove(self, *parts: str) -> None:
        self.fs.rm(self.path(*parts), recursive=True)

    def files(self, *parts: str) -> list[str]:
        """Every data file under a folder, relative to the store root, sorted."""
        where = self.path(*parts)
        if not self.fs.exists(where):
            return []
        found = self.fs.find(where)
        names = []
        for full in found:
            name = PurePosixPath(full).name
            if name.startswith(".") or not name.endswith(LOG_SUFFIXES):
                continue
            names.append(str(PurePosixPath(full).relative_to(self.root)))
        return sorted(names)


# --------------------------------------------------------------------------------------------------
# Shipping and retention
# --------------------------------------------------------------------------------------------------


class ShipResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    store: str
    shipped_files: int = 0
    shipped_bytes: int = 0
    shipped_partitions: list[str] = []
    open_partitions: list[str] = []
    failed: list[str] = []


class PruneResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    cutoff: str
    deleted_store: list[str] = []
    deleted_local: list[str] = []


@dataclass
class _Partition:
    day: date
    version: str
    folder: Path
    files: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"date={self.day.isoformat()}/model_version={self.version}"


def local_partitions(source: Path) -> Iterator[_Partition]:
    """The service's partitions under ``source`` (``date=*/model_version=*``)."""
    if not source.is_dir():
        return
    for day_dir in sorted(source.glob("date=*")):
        day = parse_day(day_dir.name.removeprefix("date="), str(day_dir))
        for version_dir in sorted(day_dir.glob("model_version=*")):
            files = sorted(
                p
                for p in version_dir.iterdir()
                if p.is_file()
                and p.name.endswith(LOG_SUFFIXES)
                and (not p.name.startswith(".") or p.name.startswith(SHIPPING))
            )
            yield _Partition(day, version_dir.name.removeprefix("model_version="), version_dir, files)


def ship(
    source: Path | str,
    store: Store,
    include_open: bool = False,
    now: date | None = None,
    grace_seconds: float = 1.0,
) -> ShipResult:
    """Move closed partitions (days before ``now``; with ``include_open`` today's too) to the store."""
    source, now = Path(source), now or today()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    shipped, open_parts, failed, count, size = [], [], [], 0, 0
    renamed: list[tuple[_Partition, Path]] = []
    touched_open = False
    for partition in local_partitions(source):
        is_open = partition.day >= now
        if is_open and not include_open:
            open_parts.append(partition.name)
            continue
        for path in partition.files:
            if path.name.startswith(SHIPPING):
                renamed.append((partition, path))
                continue
            stem, dot, suffix = path.name.rpartition(".")
            target = path.with_name(f"{SHIPPING}{stem}-{stamp}{dot}{suffix}")
            os.replace(path, target)  # the writer's next append creates a fresh file
            renamed.append((partition, target))
            touched_open = touched_open or is_open
    if touched_open and grace_seconds > 0:
        time.sleep(grace_seconds)  # a write that opened the file before the rename finishes first
    for partition, path in renamed:
        original = path.name.removeprefix(SHIPPING)
        final_name = original if original.startswith("part-") else f"part-{original}"
        if path.stat().st_size == 0:
            path.unlink()
            continue
        try:
            store.put(
                path,
                PREDICTIONS,
                f"date={partition.day.isoformat()}",
                f"model_version={partition_value(partition.version)}",
                final_name,
            )
        except Exception as error:  # keep the local file; the next run retries it
            log.error("%s: not shipped: %s", path, error)
            failed.append(f"{path}: {error}")
            continue
        count += 1
        size += path.stat().st_size
        path.unlink()
        if partition.name not in shipped:
            shipped.append(partition.name)
    for partition in local_partitions(source):  # drop emptied folders of closed days
        if partition.day < now and not partition.files:
            _remove_empty(partition.folder)
    return ShipResult(
        source=str(source),
        store=store.url,
        shipped_files=count,
        shipped_bytes=size,
        shipped_partitions=shipped,
        open_partitions=open_parts,
        failed=failed,
    )


def _remove_empty(folder: Path) -> None:
    for path in (folder, folder.parent):
        try:
            path.rmdir()
        except OSError:
            return


def prune(
    store: Store, retention_days: int, source: Path | str | None = None, now: date | None = None
) -> PruneResult:
    """Delete prediction and outcome partitions older than ``retention_days`` (store and local log)."""
    now = now or today()
    cutoff = now - timedelta(days=retention_days)
    deleted_store: list[str] = []
    for area, prefix in ((PREDICTIONS, "date="), (OUTCOMES, "ingested=")):
        for name in store.listdir(area):
            if not name.startswith(prefix):
                continue
            day = parse_day(name.removeprefix(prefix), store.path(area, name))
            if day < cutoff:
                store.remove(area, name)
                deleted_store.append(f"{area}/{name}")
    deleted_local: list[str] = []
    if source is not None and Path(source).is_dir():
        import shutil

        for day_dir in sorted(Path(source).glob("date=*")):
            if parse_day(day_dir.name.removeprefix("date="), str(day_dir)) < cutoff:
                shutil.rmtree(day_dir)
                deleted_local.append(str(day_dir))
    return PruneResult(cutoff=cutoff.isoformat(), deleted_store=deleted_store, deleted_local=deleted_local)


# --------------------------------------------------------------------------------------------------
# Reading a window back
# --------------------------------------------------------------------------------------------------


class LineProblem(BaseModel):
    """A line that could not be used, by file and line (counted, never silently dropped)."""

    model_config = ConfigDict(frozen=True)

    file: str
    line: int
    problem: str


class LogRead(BaseModel):
    """Rows of a window of the store, flat, plus every line that could not be read."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    files: list[str]
    rows: list[dict[str, Any]]
    problems: list[LineProblem]


def prediction_days(store: Store) -> list[date]:
    days = []
    for name in store.listdir(PREDICTIONS):
        if name.startswith("date="):
            days.append(parse_day(name.removeprefix("date="), store.path(PREDICTIONS, name)))
    return sorted(days)


def flatten(record: dict[str, Any], position: int) -> dict[str, Any]:
    """One logged record -> a flat row: features, probability, decision and ``__key__`` columns."""
    inputs = record.get("inputs")
    outputs = record.get("outputs")
    if not isinstance(inputs, dict) or not isinstance(outputs, dict):
        raise ValueError("a prediction record needs 'inputs' and 'outputs' objects")
    for key in ("request_id", "model_version", "timestamp"):
        if not isinstance(record.get(key), str) or not record.get(key):
            raise ValueError(f"a prediction record needs a text {key!r}")
    probability = outputs.get("probability")
    if not isinstance(probability, int | float) or not 0 <= probability <= 1:
        raise ValueError(f"outputs.probability {probability!r} is not a number in [0, 1]")
    return {
        **inputs,
        "probability": float(probability),
        "decision": outputs.get("decision"),
        "__request_id__": record["request_id"],
        "__record__": position,
        "__model_version__": record["model_version"],
        "__timestamp__": record["timestamp"],
    }


def read_window(store: Store, start: date, end: date) -> LogRead:
    """Every logged record of the days ``start``..``end`` (inclusive), flat, in file order."""
    files: list[str] = []
    for day in prediction_days(store):
        if start <= day <= end:
            files.extend(store.files(PREDICTIONS, f"date={day.isoformat()}"))
    rows: list[dict[str, Any]] = []
    problems: list[LineProblem] = []
    positions: dict[str, int] = {}
    for name in files:
        for number, record in _records(store, name, problems):
            rid = str(record.get("request_id"))
            position = positions.get(rid, 0)
            try:
                row = flatten(record, position)
            except ValueError as error:
                problems.append(LineProblem(file=name, line=number, problem=str(error)))
                continue
            positions[rid] = position + 1
            row["__file__"], row["__line__"] = name, number
            rows.append(row)
    return LogRead(files=files, rows=rows, problems=problems)


def _records(store: Store, name: str, problems: list[LineProblem]) -> Iterator[tuple[int, dict[str, Any]]]:
    if name.endswith(".parquet"):
        import io as _io

        import pandas as pd

        frame = pd.read_parquet(_io.BytesIO(store.read_bytes(name)))
        for number, record in enumerate(frame.to_dict("records"), start=1):
            yield number, record
        return
    text = store.read_bytes(name).decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            problems.append(LineProblem(file=name, line=number, problem=f"not a JSON line: {error}"))
            continue
        if not isinstance(record, dict):
            problems.append(LineProblem(file=name, line=number, problem="not a JSON object"))
            continue
        yield number, record

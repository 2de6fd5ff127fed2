"""Append-only prediction log: what the service saw and answered, for drift and performance monitoring.

One row per scored record::

    {"request_id", "timestamp", "model_version", "inputs": {...}, "outputs": {"probability", "decision"}}

JSON Lines (default) appends to one file per day and process (``predictions-YYYYMMDD-<pid>.jsonl``),
so several workers never interleave partial lines. Parquet cannot be appended to: each request is
written as its own small file (``predictions-<utc time>-<pid>-<n>.parquet``). ``read_prediction_log``
reads a directory of either kind back into one frame with the inputs flattened into columns.

Writing the log must never fail a prediction: ``PredictionLog.append`` returns ``False`` on error,
logs the reason and calls ``on_error`` (the service counts it in Prometheus).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "parquet")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_rows(
    request_id: str,
    model_version: str,
    inputs: Iterable[dict[str, Any]],
    outputs: Iterable[dict[str, Any]],
    timestamp: str | None = None,
) -> list[dict[str, Any]]:
    """The log rows of one request: one per record, all sharing the request id and timestamp."""
    stamp = timestamp or utc_now()
    return [
        {
            "request_id": request_id,
            "timestamp": stamp,
            "model_version": model_version,
            "inputs": dict(record),
            "outputs": {"probability": float(out["probability"]), "decision": str(out["decision"])},
        }
        for record, out in zip(inputs, outputs, strict=True)
    ]


def jsonl_text(
    request_id: str,
    model_version: str,
    timestamp: str,
    inputs_json: Sequence[bytes],
    probabilities: Sequence[float],
    decisions: Sequence[str],
) -> bytes:
    """The JSON Lines of one request, the same rows ``make_rows`` gives, assembled from each record's
    JSON text (pydantic serialises a validated record in Rust; ``json.dumps`` of a row dict per record
    took longer than scoring a 1,000-row batch)."""
    rid, stamp, version = json.dumps(request_id), json.dumps(timestamp), json.dumps(model_version)
    head = f'{{"request_id":{rid},"timestamp":{stamp},"model_version":{version},"inputs":'.encode()
    middle = b',"outputs":{"probability":'
    ends = {d: b',"decision":' + json.dumps(str(d)).encode() + b"}}\n" for d in set(decisions)}
    numbers = [float(p) for p in probabilities]
    if not all(map(math.isfinite, numbers)):
        raise ValueError("a probability is not a finite number")
    # repr of a finite float is its JSON text (what json.dumps writes)
    return b"".join(
        [
            head + inputs + middle + repr(number).encode() + ends[decision]
            for inputs, number, decision in zip(inputs_json, numbers, decisions, strict=True)
        ]
    )


class PredictionLog:
    """A local directory sink; thread-safe within a process, one file per process across workers."""

    def __init__(
        self,
        directory: Path | str,
        fmt: str = "jsonl",
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"prediction log format {fmt!r} is not one of {FORMATS}")
        self.directory = Path(directory)
        self.format = fmt
        self.on_error = on_error
        self._lock = threading.Lock()
        self._sequence = 0

    def _jsonl_path(self) -> Path:
        day = datetime.now(UTC).strftime("%Y%m%d")
        return self.directory / f"predictions-{day}-{os.getpid()}.jsonl"

    def _append_jsonl(self, text: bytes) -> None:
        """One write of whole lines per request: workers have their own files, threads take the lock."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self._jsonl_path(), "ab") as handle:
            handle.write(text)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.format == "jsonl":
            text = "".join(json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n" for row in rows)
            self._append_jsonl(text.encode("utf-8"))
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        final = self.directory / f"predictions-{stamp}-{os.getpid()}-{sequence}.parquet"
        partial = final.with_name(f".{final.name}.tmp")
        pq.write_table(pa.Table.from_pylist(rows), partial)
        os.replace(partial, final)  # readers never see half a file

    def append(self, rows: list[dict[str, Any]]) -> bool:
        """Write the rows; never raises. Returns whether they were written."""
        if not rows:
            return True
        return self._guarded(len(rows), lambda: self._write(rows))

    def append_request(
        self,
        request_id: str,
        model_version: str,
        timestamp: str,
        inputs_json: Sequence[bytes],
        probabilities: Sequence[float],
        decisions: Sequence[str],
    ) -> bool:
        """Write one request's rows from each record's JSON text (the service's fast path); never raises."""
        if not inputs_json:
            return True

        def write() -> None:
            if self.format == "jsonl":
                text = jsonl_text(request_id, model_version, timestamp, inputs_json, probabilities, decisions)
                self._append_jsonl(text)
                return
            outputs = [
                {"probability": p, "decision": d} for p, d in zip(probabilities, decisions, strict=True)
            ]
            inputs = [json.loads(item) for item in inputs_json]
            self._write(make_rows(request_id, model_version, inputs, outputs, timestamp))

        return self._guarded(len(inputs_json), write)

    def _guarded(self, count: int, write: Callable[[], None]) -> bool:
        try:
            write()
            return True
        except Exception as error:  # a full disk or a bad mount must not fail a prediction
            log.error("prediction log %s: could not write %d rows: %s", self.directory, count, error)
            if self.on_error is not None:
                try:
                    self.on_error(error)
                except Exception:  # pragma: no cover - the counter itself failing
                    log.exception("prediction log error callback failed")
            return False


def read_prediction_log(directory: Path | str):
    """Every row logged under ``directory`` as a frame: request_id, timestamp, model_version,
    probability, decision and one column per input feature. Unreadable lines are skipped and logged."""
    import pandas as pd

    directory = Path(directory)
    rows: list[dict[str, Any]] = []
    if directory.is_dir():
        for path in sorted(directory.glob("predictions-*.jsonl")):
            with open(path, encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        log.warning("%s:%d: not a JSON line, skipped", path, number)
        for path in sorted(directory.glob("predictions-*.parquet")):
            rows.extend(pd.read_parquet(path).to_dict("records"))
    flat = [
        {
            "request_id": row.get("request_id"),
            "timestamp": row.get("timestamp"),
            "model_version": row.get("model_version"),
            **(row.get("inputs") or {}),
            "probability": (row.get("outputs") or {}).get("probability"),
            "decision": (row.get("outputs") or {}).get("decision"),
        }
        for row in rows
    ]
    return pd.DataFrame(flat)

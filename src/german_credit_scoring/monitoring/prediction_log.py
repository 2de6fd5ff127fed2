"""Append-only prediction log: what the service saw and answered, for drift and performance monitoring.

One row per scored record::

    {"request_id", "timestamp", "model_version", "inputs": {...}, "outputs": {"probability", "decision"}}

Rows are partitioned by UTC day and model version, the layout the log store keeps
(``monitoring.store``)::

    <directory>/date=YYYY-MM-DD/model_version=<version>/part-<host>-<pid>.jsonl

JSON Lines (default) appends to one file per partition and process, so several workers (and pods
writing to one volume) never interleave partial lines; a day's partition is closed once the day is
over (``mlops ship-logs`` moves closed partitions to the store). Parquet cannot be appended to: each
request is written as its own small file (``part-<utc time>-<host>-<pid>-<n>.parquet``).
``read_prediction_log`` reads a directory of either kind back into one frame with the inputs
flattened into columns. The record is open to more keys (``reasons``...): readers keep what they know.

Personal data: features the contract marks ``identifying`` are replaced by a keyed hash (HMAC-SHA256
with the salt in ``$PREDICTION_LOG_SALT``; the same value always gives the same token, so outcomes
keyed by it still join) or dropped, before anything is written. Without a salt they are dropped.

Writing the log must never fail a prediction: ``PredictionLog.append`` returns ``False`` on error,
logs the reason and calls ``on_error`` (the service counts it in Prometheus).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "parquet")
HASH_PREFIX = "hmac:"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def partition_value(value: str) -> str:
    """A model version (or any key) as a safe path segment."""
    return _UNSAFE.sub("_", str(value)) or "unknown"


def partition_dir(directory: Path | str, day: str, model_version: str) -> Path:
    """``<directory>/date=<YYYY-MM-DD>/model_version=<version>``."""
    return Path(directory) / f"date={day}" / f"model_version={partition_value(model_version)}"


def _host() -> str:
    return partition_value(os.environ.get("HOSTNAME") or socket.gethostname())


def keyed_hash(value: Any, salt: bytes) -> str:
    """The token an identifying value is logged as: HMAC-SHA256 over its text, keyed by the salt."""
    digest = hmac.new(salt, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest[:32]


class Redactor:
    """Hashes (keyed) or drops the contract's identifying fields of a logged record."""

    def __init__(
        self, fields: Iterable[str] = (), mode: str = "hash", salt: str | bytes | None = None
    ) -> None:
        if mode not in ("hash", "drop"):
            raise ValueError(f"identifying fields are 'hash'ed or 'drop'ped, not {mode!r}")
        self.fields = tuple(fields)
        if mode == "hash" and self.fields and not salt:
            log.warning(
                "no salt for the keyed hash of identifying fields %s: they are dropped from the log",
                list(self.fields),
            )
            mode = "drop"
        self.mode = mode
        self.salt = salt.encode("utf-8") if isinstance(salt, str) else salt

    @classmethod
    def from_settings(cls, features, store_settings) -> Redactor:
        """From the contract (``identifying: true``) and ``monitoring.store`` (mode, salt variable)."""
        return cls(features.identifying, store_settings.identifying, os.environ.get(store_settings.salt_env))

    @property
    def active(self) -> bool:
        return bool(self.fields)

    def redact(self, record: dict[str, Any]) -> dict[str, Any]:
        if not self.fields:
            return record
        out = dict(record)
        for name in self.fields:
            if name not in out:
                continue
            if self.mode == "drop" or out[name] is None:
                out.pop(name)
            else:
                out[name] = keyed_hash(out[name], self.salt or b"")
        return out

    def redact_json(self, inputs_json: Sequence[bytes]) -> list[bytes]:
        return [
            json.dumps(self.redact(json.loads(item)), separators=(",", ":")).encode("utf-8")
            for item in inputs_json
        ]


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
            "outputs": {
                "probability": float(out["probability"]),
                "decision": str(out["decision"]),
                **{key: value for key, value in out.items() if key not in ("probability", "decision")},
            },
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
    outputs_json: Sequence[bytes] | None = None,
    members: Sequence[tuple[str, Sequence[bytes]]] = (),
) -> bytes:
    """The JSON Lines of one request, the same rows ``make_rows`` gives, assembled from each record's
    JSON text (pydantic serialises a validated record in Rust; ``json.dumps`` of a row dict per record
    took longer than scoring a 1,000-row batch). Further outputs are merged into ``outputs``, either
    ``outputs_json`` (each record's as a JSON object) or ``members`` (``(key, each record's JSON value)``
    pairs, the service's: no per-record object to build and take apart). The batch's fragments go into
    one object array and are joined once."""
    rid, stamp, version = json.dumps(request_id), json.dumps(timestamp), json.dumps(model_version)
    head = f'{{"request_id":{rid},"timestamp":{stamp},"model_version":{version},"inputs":'.encode()
    numbers = [float(p) for p in probabilities]
    text = json.dumps(numbers)  # a finite float's JSON text is its repr
    if "NaN" in text or "Infinity" in text:
        raise ValueError("a probability is not a finite number")
    size = len(numbers)
    if size == 0:
        return b""
    ends = {d: b',"decision":' + json.dumps(str(d)).encode() for d in set(decisions)}
    extra: list[tuple[bytes, Sequence[bytes]]] = [
        (b',"' + key.encode() + b'":', values) for key, values in members
    ]
    if outputs_json is not None:  # each record's own further outputs: {...} -> ,...
        extra.append((b"", [b"," + item[1:-1] if len(item) > 2 else b"" for item in outputs_json]))
    parts = np.empty((size, 6 + 2 * len(extra)), dtype=object)
    parts[:, 0] = head
    parts[:, 1] = list(inputs_json)
    parts[:, 2] = b',"outputs":{"probability":'
    parts[:, 3] = text[1:-1].encode().split(b", ")
    parts[:, 4] = [ends[d] for d in decisions]
    for j, (key, values) in enumerate(extra):
        parts[:, 5 + 2 * j] = key
        parts[:, 6 + 2 * j] = list(values)
    parts[:, -1] = b"}}\n"
    return b"".join(parts.ravel().tolist())


class PredictionLog:
    """A local directory sink, partitioned by day and model version; thread-safe within a process,
    one file per partition and process across workers."""

    def __init__(
        self,
        directory: Path | str,
        fmt: str = "jsonl",
        on_error: Callable[[Exception], None] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"prediction log format {fmt!r} is not one of {FORMATS}")
        self.directory = Path(directory)
        self.format = fmt
        self.on_error = on_error
        self.redactor = redactor or Redactor()
        self._lock = threading.Lock()
        self._sequence = 0
        self._files: dict[tuple[str, str], Path] = {}

    def _partition(self, model_version: str, timestamp: str | None = None) -> Path:
        folder = partition_dir(self.directory, (timestamp or utc_now())[:10], model_version)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _append_jsonl(self, text: bytes, model_version: str, timestamp: str | None) -> None:
        """One write of whole lines per request: workers have their own files, threads take the lock."""
        key = ((timestamp or utc_now())[:10], model_version)
        path = self._files.get(key)
        if path is None:
            path = self._partition(model_version, key[0]) / f"part-{_host()}-{os.getpid()}.jsonl"
            self._files[key] = path
        with self._lock:
            try:
                handle = open(path, "ab")  # noqa: SIM115 - closed below
            except FileNotFoundError:  # the partition folder was shipped and removed meanwhile
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(path, "ab")  # noqa: SIM115
            with handle:
                handle.write(text)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if self.redactor.active:
            rows = [{**row, "inputs": self.redactor.redact(row.get("inputs") or {})} for row in rows]
        version, stamp_text = str(rows[0].get("model_version", "")), rows[0].get("timestamp")
        if self.format == "jsonl":
            text = "".join(json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n" for row in rows)
            self._append_jsonl(text.encode("utf-8"), version, stamp_text)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        folder = self._partition(version, stamp_text)
        final = folder / f"part-{stamp}-{_host()}-{os.getpid()}-{sequence}.parquet"
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
        outputs_json: Sequence[bytes] | None = None,
        members: Sequence[tuple[str, Sequence[bytes]]] = (),
    ) -> bool:
        """Write one request's rows from each record's JSON text (the service's fast path); never raises.

        Further outputs (a record's reasons): ``outputs_json``, each record's as a JSON object, or
        ``members``, ``(key, each record's JSON value)`` pairs (``jsonl_text``)."""
        if not inputs_json:
            return True

        def write() -> None:
            records = self.redactor.redact_json(inputs_json) if self.redactor.active else inputs_json
            if self.format == "jsonl":
                text = jsonl_text(
                    request_id,
                    model_version,
                    timestamp,
                    records,
                    probabilities,
                    decisions,
                    outputs_json,
                    members,
                )
                self._append_jsonl(text, model_version, timestamp)
                return
            outputs = [
                {"probability": p, "decision": d} for p, d in zip(probabilities, decisions, strict=True)
            ]
            if outputs_json is not None:
                outputs = [
                    {**out, **json.loads(extra)} for out, extra in zip(outputs, outputs_json, strict=True)
                ]
            for key, values in members:
                outputs = [
                    {**out, key: json.loads(value)} for out, value in zip(outputs, values, strict=True)
                ]
            inputs = [json.loads(item) for item in records]
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


def log_files(directory: Path | str) -> list[Path]:
    """Every log file under ``directory`` (any depth: partitioned or the older flat layout), sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix in (".jsonl", ".parquet")
    )


def read_prediction_log(directory: Path | str):
    """Every row logged under ``directory`` as a frame: request_id, timestamp, model_version,
    probability, decision and one column per input feature. Unreadable lines are skipped and logged."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for path in log_files(directory):
        if path.suffix == ".parquet":
            rows.extend(pd.read_parquet(path).to_dict("records"))
            continue
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("%s:%d: not a JSON line, skipped", path, number)
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

"""The drift check's window: production rows of some days, and the reference they are compared with.

``materialize`` (``mlops drift-window``) reads the days of the window from the store (the last
``monitoring.window.days`` days, or every day since the last check), keeps the rows of the model
version that served most of them, and writes::

    data/current/window.parquet   the rows (features, probability, __request_id__, ...)
    data/current/window.json      a WindowManifest: days, version, its reference and its hash, counts

Both are the ``drift`` stage's dependencies: their content decides whether ``dvc repro`` runs the
check again, so a repro with no new window is a true no-op. The reference is that version's own
snapshot from its lineage (``models/lineage.json``), not whatever today's raw file re-ingests to.
Rows of other known versions, of versions with no lineage and lines that cannot be read are counted
in the manifest (unreadable ones by file and line) and reach the drift report; nothing is lost: the
store keeps them.

``run_check`` (the ``drift`` stage, ``mlops drift-check``) runs the drift statistics on the window.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from german_credit_scoring import io, paths
from german_credit_scoring.errors import DataError
from german_credit_scoring.monitoring import lineage as lineage_mod
from german_credit_scoring.monitoring.store import STATE, LineProblem, Store, parse_day, read_window, today
from german_credit_scoring.settings import Settings

log = logging.getLogger(__name__)

CURRENT_DIR = Path("data/current")
WINDOW_ROWS = CURRENT_DIR / "window.parquet"
WINDOW_MANIFEST = CURRENT_DIR / "window.json"
LAST_CHECK = "last_check.json"
MAX_LISTED_PROBLEMS = 100


class WindowManifest(BaseModel):
    """What the window holds; written by ``materialize``, read by ``run_check``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store: str
    mode: Literal["days", "since_last"]
    start: str
    end: str
    model_version: str | None
    reference: str | None
    reference_md5: str | None
    rows: int
    files: int
    other_versions: dict[str, int] = Field(default_factory=dict)
    unknown_versions: dict[str, int] = Field(default_factory=dict)
    problem_count: int = 0
    problems: list[LineProblem] = Field(default_factory=list)
    # rows of the last checked window of the same length: the drift check's expected volume
    previous_rows: int | None = None


def _last_check(store: Store) -> dict[str, Any]:
    import json

    if not store.exists(STATE, LAST_CHECK):
        return {}
    try:
        last = json.loads(store.read_bytes(STATE, LAST_CHECK))
    except ValueError:
        raise DataError(f"{store.path(STATE, LAST_CHECK)}: not JSON (delete it to start afresh)") from None
    return last if isinstance(last, dict) else {}


def window_days(settings: Settings, store: Store, now: date | None = None) -> tuple[date, date]:
    """``[start, end]``: the last N days up to today, or the day after the last check up to today."""
    now = now or today()
    window = settings.monitoring.window
    start = now - timedelta(days=window.days - 1)
    last = _last_check(store) if window.mode == "since_last" else {}
    if last.get("end"):
        start = parse_day(str(last["end"]), store.path(STATE, LAST_CHECK)) + timedelta(days=1)
    return start, now


def materialize(
    settings: Settings,
    store: Store,
    lineage: lineage_mod.Lineage,
    now: date | None = None,
    out_dir: Path = CURRENT_DIR,
    current_reference: Path = paths.REFERENCE,
    cache: Path = lineage_mod.DVC_CACHE,
) -> WindowManifest:
    """Write ``window.parquet`` and ``window.json`` for the window of ``settings``; returns the manifest."""
    import pandas as pd

    start, end = window_days(settings, store, now)
    read = read_window(store, start, end)
    versions = Counter(row["__model_version__"] for row in read.rows)
    known = {v: n for v, n in versions.items() if v in lineage.versions}
    unknown = {v: n for v, n in versions.items() if v not in lineage.versions}
    problems = list(read.problems)
    for row in read.rows:
        if row["__model_version__"] in unknown:
            problems.append(
                LineProblem(
                    file=row["__file__"],
                    line=row["__line__"],
                    problem=f"model version {row['__model_version__']!r} has no lineage (not compared)",
                )
            )
    chosen = None
    if known:  # the version that served most rows; a tie goes to production
        chosen = max(known, key=lambda v: (known[v], v == lineage.production, v))
    reference, md5 = None, None
    if chosen is not None:
        ref_path, md5 = lineage_mod.reference_for(chosen, lineage, current_reference, cache)
        reference = str(ref_path)
    rows = [
        {k: v for k, v in row.items() if k not in ("__file__", "__line__")}
        for row in read.rows
        if row["__model_version__"] == chosen
    ]
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame({"probability": pd.Series(dtype=float)})
    last = _last_check(store)
    same_length = last.get("days") == (end - start).days + 1
    previous_rows = int(last["rows"]) if same_length and isinstance(last.get("rows"), int) else None
    manifest = WindowManifest(
        store=store.url,
        mode=settings.monitoring.window.mode,
        start=start.isoformat(),
        end=end.isoformat(),
        model_version=chosen,
        reference=reference,
        reference_md5=md5,
        rows=len(rows),
        files=len(read.files),
        other_versions={v: n for v, n in sorted(known.items()) if v != chosen},
        unknown_versions=dict(sorted(unknown.items())),
        problem_count=len(problems),
        problems=problems[:MAX_LISTED_PROBLEMS],
        previous_rows=previous_rows,
    )
    io.write_with(out_dir / WINDOW_ROWS.name, lambda tmp: frame.to_parquet(tmp, index=False))
    io.write_json(out_dir / WINDOW_MANIFEST.name, manifest.model_dump(mode="json"))
    return manifest


def mark_checked(store: Store, manifest: WindowManifest) -> None:
    """Remember the window's last day: ``since_last`` starts after it next time."""
    import json

    days = (date.fromisoformat(manifest.end) - date.fromisoformat(manifest.start)).days + 1
    payload = {
        "end": manifest.end,
        "days": days,
        "model_version": manifest.model_version,
        "rows": manifest.rows,
    }
    store.write_bytes(json.dumps(payload).encode("utf-8"), STATE, LAST_CHECK)


def load_manifest(path: Path = WINDOW_MANIFEST) -> WindowManifest | None:
    if not path.is_file():
        return None
    try:
        return WindowManifest.model_validate(io.read_json(path))
    except ValueError as error:
        raise DataError(f"{path}: not a window manifest: {error}") from None


def run_check(
    settings: Settings,
    features,
    out_dir: Path = CURRENT_DIR,
    json_path: Path = paths.DRIFT_RESULT,
    markdown_path: Path = paths.DRIFT_MD,
) -> dict[str, Any]:
    """The drift statistics on the materialised window against its version's reference.

    No window yet (a fresh clone): nothing to compare, the verdict is ``insufficient_data``. The
    manifest's counts (other versions, unknown versions, unreadable lines) are added to the report.
    """
    from german_credit_scoring.monitoring.drift import run_drift

    manifest = load_manifest(out_dir / WINDOW_MANIFEST.name)
    reference = paths.REFERENCE
    if manifest is not None and manifest.reference:
        reference = Path(manifest.reference)
        if not reference.is_file() or lineage_mod.md5_of(reference) != manifest.reference_md5:
            raise DataError(
                f"{reference}: not the reference snapshot the window names (md5 {manifest.reference_md5}); "
                "run `mlops drift-window` again"
            )
    current = out_dir / WINDOW_ROWS.name
    result = run_drift(
        settings,
        features,
        current_source=current if current.is_file() else out_dir / "no-window-yet",
        reference_path=reference,
        json_path=json_path,
        markdown_path=markdown_path,
        previous_rows=manifest.previous_rows if manifest is not None else None,
    )
    if manifest is not None:
        result["window"] = manifest.model_dump(mode="json")
        io.write_json(json_path, result)
        io.write_text(markdown_path, io_markdown(result, markdown_path, manifest))
    return result


def io_markdown(result: dict[str, Any], markdown_path: Path, manifest: WindowManifest) -> str:
    """The drift report with the window's provenance and its uncounted rows appended."""
    lines = [
        Path(markdown_path).read_text(encoding="utf-8").rstrip(),
        "",
        "### Window",
        "",
        f"- days {manifest.start} to {manifest.end} ({manifest.mode}) from `{manifest.store}`: "
        f"{manifest.rows} rows of model version `{manifest.model_version}` in {manifest.files} files",
        f"- reference: `{manifest.reference}` (md5 `{manifest.reference_md5}`)",
    ]
    if manifest.other_versions:
        lines.append(f"- rows of other model versions, not in this comparison: {manifest.other_versions}")
    if manifest.unknown_versions:
        lines.append(f"- rows of model versions with no lineage, not compared: {manifest.unknown_versions}")
    if manifest.problem_count:
        lines.append(f"- {manifest.problem_count} log lines could not be used:")
        lines += [f"  - `{p.file}:{p.line}`: {p.problem}" for p in manifest.problems[:20]]
    return "\n".join(lines) + "\n"

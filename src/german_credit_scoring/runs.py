"""Run records: the volatile facts of one stage run, kept outside every DVC-hashed output.

A DVC output must be a function of the stage's inputs, so that two runs from the same commit give the
same ``dvc.lock`` (and a pull request's committed lock can be checked against what CI reproduces).
Times, durations, the git commit a run happened at, latency samples and MLflow run ids are not: they go
here, to ``runs/<stage>.json`` (git-ignored, uploaded with the workflow's artifacts) and to MLflow.

One writer (`record`, called by the stage runner and by the stages for their own facts) and one typed
reader (`read`).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RUNS_DIR = Path(os.environ.get("MLOPS_RUNS_DIR", "runs"))


class RunRecord(BaseModel):
    """What happened when a stage last ran here (never an input of any stage)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    exit_code: int | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    facts: dict[str, Any] = Field(default_factory=dict)


def path_of(stage: str, runs_dir: Path | None = None) -> Path:
    return (runs_dir or RUNS_DIR) / f"{stage}.json"


def read(stage: str, runs_dir: Path | None = None) -> RunRecord | None:
    """The stage's last run record, or None when it never ran here."""
    path = path_of(stage, runs_dir)
    if not path.is_file():
        return None
    return RunRecord.model_validate_json(path.read_text(encoding="utf-8"))


def record(stage: str, runs_dir: Path | None = None, **fields: Any) -> RunRecord:
    """Merge ``fields`` (RunRecord fields, or anything else as a fact) into the stage's record."""
    from german_credit_scoring import io

    current = read(stage, runs_dir) or RunRecord(stage=stage)
    data = current.model_dump()
    for key, value in fields.items():
        if key in RunRecord.model_fields and key != "facts":
            data[key] = value
        else:
            data["facts"][key] = value
    updated = RunRecord.model_validate(json.loads(json.dumps(data, default=str)))
    io.write_text(path_of(stage, runs_dir), updated.model_dump_json(indent=2) + "\n")
    return updated


def start(stage: str, runs_dir: Path | None = None) -> RunRecord:
    """A new record for a run that starts now (facts of the previous run are dropped)."""
    from german_credit_scoring import io

    commit, dirty = git_state()
    fresh = RunRecord(stage=stage, started_at=now(), git_commit=commit, git_dirty=dirty)
    io.write_text(path_of(stage, runs_dir), fresh.model_dump_json(indent=2) + "\n")
    return fresh


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def git_state(cwd: Path | str = ".") -> tuple[str | None, bool | None]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)

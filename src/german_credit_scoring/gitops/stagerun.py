"""`mlops run-stage STAGE`: what one pull-request stage job does with DVC. Restored or reproduced, never
skipped on "didn't change".

A required check stands for a stage, so its job must either run the stage or restore outputs that a run
with exactly these inputs made; it must never pass because the *committed* ``dvc.lock`` claims the
outputs (a pull request can commit any lock it likes). So:

- **No DVC remote** (a brand-new repository, a fork without secrets): ``dvc repro --force`` — the stage
  runs, on the upstream outputs this workflow run handed over as artifacts.
- **A DVC remote** (its run-cache pulled by the setup action): the stage's entry is taken out of the
  handed-over ``dvc.lock`` first, so DVC cannot answer from the committed lock, and ``dvc repro`` without
  ``--force`` either restores the outputs from DVC's *run-cache* (keyed by the hashes of the stage's
  dependencies, its parameters and its command: a run with exactly these inputs made these outputs, and
  only CI pushes run-cache entries when contributors get read-only remote access) or, when no such run is
  known, runs the stage. ``dvc push --run-cache`` afterwards keeps this run for the next job and pull
  request (best effort: a fork has no write credentials).
- Stages with ``persist`` outputs (validate keeps its last report, the gate the last approved model) are
  not run-cacheable in DVC: they always run, and they are the cheap ones.

Either way the outputs end up hashed into the ``dvc.lock`` that the ``reproducible`` check compares with
the committed one. How the stage was done goes to its run record (``runs/<stage>.json``, fact ``how``)
and from there to the stage's pull-request comment.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from german_credit_scoring.gitops.lock import LOCK, PR_STAGES

RESTORED_MARK = "is cached - skipping run"  # DVC's message when the run-cache restores a stage


class How(StrEnum):
    REPRODUCED = "reproduced"
    RESTORED = "restored"


HOW_TEXT = {
    How.REPRODUCED: "reproduced here",
    How.RESTORED: "restored from DVC's run-cache (a run with these exact inputs, params and command; not recomputed)",
}


class StagePlan(BaseModel):
    """What the job will do for one stage, decided before anything runs."""

    model_config = ConfigDict(frozen=True)

    stage: str
    run_cache: bool  # restore from DVC's run-cache when a run with these inputs is known
    drop_from_lock: tuple[str, ...]  # lock entries removed first, so DVC cannot answer from them
    repro: tuple[str, ...]  # the `dvc repro ...` arguments
    reason: str


class StageOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: str
    how: How
    exit_code: int
    pushed: bool | None = None  # None: no remote to push to


def persistent_stages(dvc_yaml: Path = Path("dvc.yaml")) -> set[str]:
    """Stages with an output marked ``persist: true`` (DVC's run-cache never restores those)."""
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    found = set()
    for name, stage in stages.items():
        for entry in [*(stage.get("outs") or []), *(stage.get("metrics") or []), *(stage.get("plots") or [])]:
            if isinstance(entry, dict) and any(
                isinstance(v, dict) and v.get("persist") for v in entry.values()
            ):
                found.add(name)
    return found


def plan(stage: str, *, single_item: bool, remote: bool, persistent: set[str]) -> StagePlan:
    """Restore-or-run with a remote; always run without one, and for stages DVC cannot run-cache."""
    if stage not in PR_STAGES:
        raise ValueError(f"unknown pipeline stage {stage!r}; expected one of {', '.join(PR_STAGES)}")
    scope = ("--single-item", stage) if single_item else (stage,)
    if not remote:
        return StagePlan(
            stage=stage, run_cache=False, drop_from_lock=(), repro=("--force", *scope),
            reason="no DVC remote is configured: the stage runs on the outputs handed over",
        )  # fmt: skip
    if stage in persistent or (not single_item and persistent & set(_upstream(stage))):
        return StagePlan(
            stage=stage, run_cache=False, drop_from_lock=(), repro=("--force", *scope),
            reason="an output is persist: true, which DVC's run-cache cannot restore: the stage runs",
        )  # fmt: skip
    dropped = (stage,) if single_item else _upstream(stage)
    return StagePlan(
        stage=stage, run_cache=True, drop_from_lock=dropped, repro=scope,
        reason="a DVC remote is configured: restored from its run-cache when a run with these inputs is known",
    )  # fmt: skip


def _upstream(stage: str) -> tuple[str, ...]:
    """The pull-request stages up to and including ``stage`` (PR_STAGES is in pipeline order)."""
    return PR_STAGES[: PR_STAGES.index(stage) + 1]


def drop_entries(names: Sequence[str], lock_path: Path = LOCK) -> list[str]:
    """Take the named stages out of dvc.lock (text-preserving YAML round trip); returns those removed."""
    if not names or not lock_path.is_file():
        return []
    # ruamel's round trip reads and writes YAML 1.2 as DVC does: PyYAML (1.1) would turn a param such
    # as `positive_label: yes` into `true` in every other stage's entry, and DVC would see it changed
    from io import StringIO

    from ruamel.yaml import YAML

    round_trip = YAML()
    data = round_trip.load(lock_path.read_text(encoding="utf-8")) or {}
    stages = data.get("stages") or {}
    removed = [name for name in names if stages.pop(name, None) is not None]
    if removed:
        from german_credit_scoring import io

        text = StringIO()
        round_trip.dump(data, text)
        io.write_text(lock_path, text.getvalue())
    return removed


Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


def _dvc(args: Sequence[str]) -> subprocess.CompletedProcess:
    """`dvc ARGS` with this interpreter; its output goes through to the job log and is kept for parsing
    (except `remote list`, whose URLs stay out of the log)."""
    process = subprocess.run(
        [sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=False
    )
    if list(args[:2]) != ["remote", "list"]:
        sys.stdout.write(process.stdout)
        sys.stderr.write(process.stderr)
    return process


def has_remote(dvc: Runner = _dvc) -> bool:
    listed = dvc(["remote", "list"])
    return listed.returncode == 0 and bool(listed.stdout.strip())


def run_stage(
    stage: str, *, single_item: bool, dvc: Runner = _dvc, remote: bool | None = None
) -> StageOutcome:
    """Plan, restore or run, push the run-cache, record how (see the module docstring)."""
    from german_credit_scoring import runs

    remote = has_remote(dvc) if remote is None else remote
    decided = plan(stage, single_item=single_item, remote=remote, persistent=persistent_stages())
    print(f"run-stage {stage}: {decided.reason}", flush=True)
    drop_entries(decided.drop_from_lock)
    # --pull: the run-cache entry's output objects come from the remote (`dvc pull --run-cache` fetched
    # the entries, not every object they name)
    process = dvc(["repro", "--pull", *decided.repro] if decided.run_cache else ["repro", *decided.repro])
    output = process.stdout + process.stderr
    if process.returncode != 0 and decided.run_cache and f"Running stage '{stage}'" not in output:
        # the remote failed us before the stage ran (a fork without read credentials): run it instead
        print(
            f"::warning::restoring {stage} from the DVC remote failed; the stage runs here instead",
            flush=True,
        )
        process = dvc(["repro", "--force", *decided.repro])
        output = process.stdout + process.stderr
    how = How.RESTORED if decided.run_cache and f"'{stage}' {RESTORED_MARK}" in output else How.REPRODUCED
    pushed = None
    if process.returncode == 0 and remote:
        pushed = push_run(stage, dvc)
    if process.returncode == 0:
        runs.record(stage, how=how.value)
    return StageOutcome(stage=stage, how=how, exit_code=process.returncode, pushed=pushed)


def uncached_outputs(stage: str, dvc_yaml: Path = Path("dvc.yaml")) -> set[str]:
    """The stage's outputs, metrics and plots declared ``cache: false``."""
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    found = set()
    for section in ("outs", "metrics", "plots"):
        for entry in stages.get(stage, {}).get(section) or []:
            if isinstance(entry, dict):
                found |= {
                    p for p, flags in entry.items() if isinstance(flags, dict) and flags.get("cache") is False
                }
    return found


def _push_uncached_objects(stage: str) -> int:
    """Push the objects of the stage's ``cache: false`` outputs that its run-cache entry names.

    DVC's run-cache keeps those outputs (metrics, reports) as objects in the local cache, and restoring
    pulls them, but ``dvc push --run-cache`` (DVC 3.x) pushes the entry without them: without this, a
    run-cache entry on the remote could never be restored elsewhere. Returns how many objects failed."""
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo

    from german_credit_scoring.gitops import lock

    entry = lock.load(LOCK.read_text(encoding="utf-8")).get(stage) or {}
    uncached = uncached_outputs(stage)
    objects = [
        HashInfo("md5", str(out["md5"]))
        for out in entry.get("outs") or []
        if out.get("path") in uncached and out.get("md5") and not str(out["md5"]).endswith(".dir")
    ]
    if not objects:
        return 0
    with Repo() as repo:
        result = repo.cloud.push(objects)
    return len(result.failed)


def push_run(stage: str, dvc: Runner = _dvc) -> bool:
    """Keep this run for the next job and pull request: its outputs, its run-cache entry and the objects
    of its uncached outputs, on the remote. Best effort: a failure is a warning, never a failed job."""
    ok = dvc(["push", "--run-cache", stage]).returncode == 0
    if ok and dvc is _dvc:
        try:
            ok = _push_uncached_objects(stage) == 0
        except Exception as error:
            print(f"pushing {stage}'s uncached outputs failed: {error}", flush=True)
            ok = False
    if not ok:
        print(
            f"::warning::pushing {stage}'s run to the DVC remote failed (no write credentials?): "
            "nothing lost, the next run recomputes",
            flush=True,
        )
    return ok


def run_stage_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mlops run-stage",
        description="A pull-request stage job's DVC work: restored from the run-cache or reproduced, "
        "never skipped on the committed dvc.lock's word.",
    )
    parser.add_argument("stage", choices=PR_STAGES)
    parser.add_argument(
        "--single-item",
        action="store_true",
        help="the stage alone: its upstream outputs are already here (this run's artifact)",
    )
    parser.add_argument(
        "--push-only",
        action="store_true",
        help="run nothing: push the stage's last run (outputs, run-cache entry, uncached outputs) to the remote",
    )
    args = parser.parse_args(argv)
    if args.push_only:
        return 0 if push_run(args.stage) else 1
    outcome = run_stage(args.stage, single_item=args.single_item)
    if outcome.exit_code == 0:
        print(f"run-stage {outcome.stage}: {HOW_TEXT[outcome.how]}")
    return outcome.exit_code

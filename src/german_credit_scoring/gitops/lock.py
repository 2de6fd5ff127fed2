"""``dvc.lock`` as data: DVC-compatible hashes, and the reproducibility check of a pull request.

CI reproduces every stage of the pull-request pipeline (each stage job forces its own stage, so no
required check goes green on "didn't change, skipping"). The ``reproducible`` check then compares the
lock CI produced with the committed one, stage by stage, and the committed uncached outputs (metrics,
reports, plots) with CI's. A difference fails the check with the stages named and one command that takes
CI's results (`mlops take-lock`), so a contributor whose machine differs in the last floating-point bits
(macOS, Windows) gets a passing pull request without a Linux machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

LOCK = Path("dvc.lock")
# the stages a pull request's pipeline reproduces (drift is monitoring: it runs on a schedule)
PR_STAGES = ("ingest", "validate", "features", "train", "evaluate", "fairness", "gate", "package")


class LockError(Exception):
    """dvc.lock cannot be read or has not the expected shape."""


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dir_md5(path: Path) -> str:
    """DVC's hash of a directory: md5 of its sorted JSON listing of (relpath, md5), with ``.dir``."""
    entries = [
        {"md5": file_md5(child), "relpath": child.relative_to(path).as_posix()}
        for child in sorted(p for p in path.rglob("*") if p.is_file())
    ]
    entries.sort(key=lambda e: tuple(e["relpath"].split("/")))
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing, usedforsecurity=False).hexdigest() + ".dir"


def dvc_md5(path: Path) -> str:
    return dir_md5(path) if path.is_dir() else file_md5(path)


def load(text: str, source: str = "dvc.lock") -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise LockError(f"{source}: not valid YAML ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get("stages", {}), dict):
        raise LockError(f"{source}: expected a mapping with 'stages'")
    return data.get("stages", {})


def committed(ref: str = "HEAD", path: Path = LOCK) -> dict[str, Any]:
    shown = subprocess.run(
        ["git", "show", f"{ref}:{path.as_posix()}"], capture_output=True, text=True, check=False
    )
    if shown.returncode != 0:
        return {}
    return load(shown.stdout, f"{ref}:{path}")


def outputs(stage: Mapping[str, Any]) -> dict[str, str]:
    return {str(o["path"]): str(o.get("md5")) for o in stage.get("outs", []) or []}


class StageDifference(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: str
    what: list[str]  # e.g. "missing in the committed dvc.lock", "out metrics/evaluate.json", "dep ..."


class LockCheck(BaseModel):
    """The verdict of the ``reproducible`` check: one writer (`compare`), read by the CLI and the tests."""

    model_config = ConfigDict(frozen=True)

    stages: list[str]
    differences: list[StageDifference]

    @property
    def passed(self) -> bool:
        return not self.differences

    def message(self, take_command: str = "uv run mlops take-lock") -> str:
        if self.passed:
            return f"dvc.lock is what CI reproduced for {', '.join(self.stages)}."
        lines = [
            "The committed dvc.lock and outputs are not what CI reproduced for "
            f"{len(self.differences)} stage(s):"
        ]
        for diff in self.differences:
            lines.append(f"  - {diff.stage}: " + "; ".join(diff.what))
        lines += [
            "",
            "To fix it, either:",
            "  - run the changed stages yourself and commit: uv run dvc repro && git add -A && git commit",
            f"  - or take exactly what CI produced (any OS, no Linux machine needed): {take_command}",
            "    then commit and push dvc.lock and the files it lists.",
        ]
        return "\n".join(lines)


def _section(stage: Mapping[str, Any], key: str) -> dict[str, str]:
    items = stage.get(key, []) or []
    if key == "params":
        return {f"{file}:{json.dumps(values, sort_keys=True)}": "" for file, values in dict(items).items()}
    return {str(i["path"]): str(i.get("md5")) for i in items}


def compare(
    reproduced: Mapping[str, Any], committed_stages: Mapping[str, Any], stages: Iterable[str] = PR_STAGES
) -> LockCheck:
    """Stage by stage: command, dependencies, parameters and outputs of CI's lock against the committed."""
    checked, differences = [], []
    for name in stages:
        if name not in reproduced:
            continue
        checked.append(name)
        ours, theirs = reproduced[name], committed_stages.get(name)
        if theirs is None:
            differences.append(StageDifference(stage=name, what=["missing in the committed dvc.lock"]))
            continue
        what = []
        if ours.get("cmd") != theirs.get("cmd"):
            what.append("command")
        for key, label in (("deps", "dep"), ("params", "params"), ("outs", "out")):
            a, b = _section(ours, key), _section(theirs, key)
            for path in sorted(set(a) | set(b)):
                if a.get(path) != b.get(path):
                    what.append(f"{label} {path.split(':', 1)[0] if key == 'params' else path}")
        if what:
            differences.append(StageDifference(stage=name, what=sorted(set(what), key=what.index)))
    return LockCheck(stages=checked, differences=differences)


def check_cli(argv: list[str]) -> int:
    """`mlops lock-check`: is the committed dvc.lock what this checkout's dvc.lock (CI's) says? Exit 1 if not."""
    parser = argparse.ArgumentParser(prog="mlops lock-check", description=check_cli.__doc__)
    parser.add_argument(
        "--reproduced", type=Path, default=LOCK, help="the lock CI produced (default dvc.lock)"
    )
    parser.add_argument(
        "--committed-ref", default="HEAD", help="git ref of the committed lock (default HEAD)"
    )
    parser.add_argument("--stage", action="append", help="stages to compare (default: the PR pipeline)")
    parser.add_argument("--output", type=Path, help="also write the verdict as JSON here")
    parser.add_argument("--take-command", default="uv run mlops take-lock", help="the fix to print")
    args = parser.parse_args(argv)
    try:
        if not args.reproduced.is_file():
            raise LockError(f"{args.reproduced}: no reproduced lock (did the stage jobs run?)")
        reproduced = load(args.reproduced.read_text(encoding="utf-8"), str(args.reproduced))
        result = compare(reproduced, committed(args.committed_ref), args.stage or PR_STAGES)
    except LockError as error:
        print(f"mlops lock-check: {error}", file=sys.stderr)
        return 2
    if args.output:
        from german_credit_scoring import io

        io.write_text(args.output, result.model_dump_json(indent=2) + "\n")
    print(result.message(args.take_command))
    return 0 if result.passed else 1

"""`mlops take-lock`: take the dvc.lock and outputs CI reproduced for this branch.

The ``reproducible`` check uploads what CI produced as the run's ``reproduced`` artifact: ``dvc.lock``
and every git-tracked output it lists (metrics, reports, plots). This command downloads it (the newest
``pr.yml`` run for this branch's head commit, or ``--from`` a downloaded folder or zip) and writes those
files here, so a contributor on macOS or Windows, whose floating-point results may differ in the last
bits, commits exactly what CI reproduces. DVC-cached outputs (data, models) are not in git: a later
``dvc repro`` or ``dvc pull`` brings them back.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from german_credit_scoring.gitops import lock
from german_credit_scoring.gitops.handover import HandoverError, extract, newest_artifact

ARTIFACT = "reproduced"


class TakeLockError(Exception):
    pass


def collect(out: Path, lock_path: Path = lock.LOCK) -> list[str]:
    """CI side: copy ``dvc.lock`` and its git-tracked outputs into ``out``; returns the paths copied."""
    stages = lock.load(lock_path.read_text(encoding="utf-8"), str(lock_path))
    tracked = set(
        subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=False).stdout.splitlines()
    )
    paths = [lock_path.as_posix()]
    for stage in stages.values():
        paths += [p for p in lock.outputs(stage) if p in tracked and Path(p).is_file()]
    if out.exists():
        shutil.rmtree(out)
    for path in paths:
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return paths


def apply(source: Path, root: Path = Path(".")) -> list[str]:
    """Contributor side: write the reproduced lock and the outputs it lists into the checkout."""
    lock_file = source / "dvc.lock"
    if not lock_file.is_file():
        raise TakeLockError(f"{source}: no dvc.lock in the reproduced results")
    stages = lock.load(lock_file.read_text(encoding="utf-8"), str(lock_file))
    written = ["dvc.lock"]
    for stage in stages.values():
        for path, md5 in lock.outputs(stage).items():
            candidate = source / path
            if candidate.is_file():
                if lock.file_md5(candidate) != md5:
                    raise TakeLockError(f"{candidate}: does not match the md5 its dvc.lock records")
                written.append(path)
    for path in written:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / path, target)
    return written


def download(client, branch_sha: str, workflow: str = "pr.yml") -> bytes:
    # any conclusion: the run whose lock check failed is the one whose results are wanted
    found = newest_artifact(client, workflow, {"head_sha": branch_sha}, ARTIFACT, status=None)
    if found:
        return client.download(client.repo_path(f"actions/artifacts/{found[1]['id']}/zip"))
    raise TakeLockError(
        f"no {workflow} run for commit {branch_sha[:12]} has a '{ARTIFACT}' artifact yet "
        "(push, wait for the 'reproducible' check, then run this again)"
    )


def take_lock_cli(argv: list[str]) -> int:
    """`mlops take-lock`: write the dvc.lock and outputs CI reproduced for this branch's head commit."""
    parser = argparse.ArgumentParser(prog="mlops take-lock", description=take_lock_cli.__doc__)
    parser.add_argument(
        "--from", dest="source", type=Path, help="a downloaded 'reproduced' artifact (dir or zip)"
    )
    parser.add_argument("--commit", help="the pushed commit CI ran on (default: HEAD)")
    parser.add_argument("--repo", help="owner/name (default: GITHUB_REPOSITORY or the origin remote)")
    parser.add_argument("--collect", type=Path, help=argparse.SUPPRESS)  # CI side: fill this folder
    args = parser.parse_args(argv)
    try:
        if args.collect:
            paths = collect(args.collect)
            print(f"collected {len(paths)} files into {args.collect}")
            return 0
        with tempfile.TemporaryDirectory() as scratch:
            source = args.source
            if source is None or source.suffix == ".zip":
                data = source.read_bytes() if source else _download(args)
                source = Path(scratch) / "reproduced"
                extract(data, source)
            written = apply(source)
    except (TakeLockError, HandoverError, lock.LockError, OSError) as error:
        print(f"mlops take-lock: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files: {', '.join(written)}")
    print(
        "commit them: git add dvc.lock "
        + " ".join(written[1:])
        + ' && git commit -m "dvc.lock as CI reproduced"'
    )
    return 0


def _download(args) -> bytes:
    from german_credit_scoring.gitops.github import GitHub, GitHubError

    commit = (
        args.commit
        or subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    repository = args.repo or os.environ.get("GITHUB_REPOSITORY") or _origin_repository()
    token = os.environ.get("GITHUB_TOKEN") or os.environ.get("GH_TOKEN") or _gh_token()
    try:
        return download(GitHub.from_env(token=token, repository=repository), commit)
    except GitHubError as error:
        raise TakeLockError(str(error)) from None


def _origin_repository() -> str | None:
    url = subprocess.run(
        ["git", "remote", "get-url", "origin"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not url:
        return None
    tail = url.split("github.com", 1)[-1].lstrip(":/")
    return tail.removesuffix(".git") or None


def _gh_token() -> str | None:
    try:
        out = subprocess.run(["gh", "auth", "token"], capture_output=True, text=True, check=False, timeout=20)
    except OSError:
        return None
    return out.stdout.strip() or None

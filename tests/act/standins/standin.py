"""Local stand-ins for the third-party actions the workflows use, run under act (no network).

upload/download keep GitHub's artifact semantics that matter here: files are stored relative to the
least common ancestor of the paths; a second upload of a name in one run fails unless ``overwrite``;
an artifact is per run (``ACT_STANDIN_RUN_ID``), stored under ``ACT_STANDIN_STORE/runs/<run>/<name>``.
Every call is appended to ``ACT_STANDIN_STORE/calls.jsonl`` for the tests to read.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

STORE = Path(os.environ["ACT_STANDIN_STORE"])
RUN = os.environ.get("ACT_STANDIN_RUN_ID", "1")


def log(kind: str, **fields) -> None:
    with open(STORE / "calls.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"kind": kind, "run": RUN, **fields}) + "\n")


def upload(name: str, paths: str, if_missing: str, overwrite: str) -> int:
    items = [p.strip() for p in paths.splitlines() if p.strip()]
    existing = [Path(p) for p in items if Path(p).exists()]
    missing = [p for p in items if not Path(p).exists()]
    target = STORE / "runs" / RUN / name
    if not existing:
        message = f"no files were found with the provided path: {' '.join(items)}"
        if if_missing == "error":
            print(f"::error::{message}")
            return 1
        print(f"::warning::{message}. No artifacts will be uploaded.")
        return 0
    if target.exists():
        if overwrite != "true":
            print(
                f"::error::an artifact with the name '{name}' already exists in this run (use overwrite: true)"
            )
            return 1
        shutil.rmtree(target)
    absolute = [p.resolve() for p in existing]
    roots = [p.parent if p.is_file() else p for p in absolute]
    common = Path(os.path.commonpath([str(r) for r in roots]))
    for path in absolute:
        destination = target / path.relative_to(common)
        if path.is_dir():
            shutil.copytree(path, destination, dirs_exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
    log("upload", name=name, paths=items, missing=missing)
    return 0


def download(name: str, path: str, run_id: str) -> int:
    source = STORE / "runs" / (run_id or RUN) / name
    if not source.is_dir():
        print(f"::error::unable to find an artifact with the name: {name}")
        return 1
    shutil.copytree(source, Path(path or "."), dirs_exist_ok=True)
    log("download", name=name, path=path)
    return 0


def seed_bytecode() -> int:
    """Give this job's new environment the bytecode the test run compiled for its own
    (``ACT_STANDIN_SITE``, cached beside the sources or under ``ACT_STANDIN_PYCACHE_PREFIX``), module by
    module, where the job's source file is the same file: a hard link when both environments link the
    same file from uv's cache (same size and modification time, what Python checks on import), else a
    copy stamped with the job's file's time when its bytes are the same (uv copies across file systems).
    Python checks size and time again on import and recompiles on a mismatch."""
    site = Path(os.environ["ACT_STANDIN_SITE"])
    prefix = os.environ.get("ACT_STANDIN_PYCACHE_PREFIX", "")
    environment = Path(os.environ.get("UV_PROJECT_ENVIRONMENT") or ".venv")
    targets = sorted(environment.glob("lib/python3*/site-packages"))
    if not targets:
        return 0
    target = targets[0]
    if prefix:  # the prefix mirrors each source folder: <prefix>/<folder>/<module>.<tag>.pyc
        store = Path(prefix) / str(site).lstrip(os.sep)
        found = (
            (Path(folder).relative_to(store), Path(folder) / name, name)
            for folder, _, names in os.walk(store)
            for name in names
            if name.endswith(".pyc")
        )
    else:  # beside the sources: <folder>/__pycache__/<module>.<tag>.pyc
        found = (
            (Path(folder).parent.relative_to(site), Path(folder) / name, name)
            for folder, _, names in os.walk(site)
            if Path(folder).name == "__pycache__"
            for name in names
            if name.endswith(".pyc")
        )
    linked = copied = 0
    for folder, pyc, name in found:
        module = name.split(".", 1)[0] + ".py"
        own, source = site / folder / module, target / folder / module
        destination = target / folder / "__pycache__" / name
        try:
            with open(pyc, "rb") as handle:
                header = handle.read(16)
            compiled_for, job_file = own.stat(), source.stat()
        except OSError:
            continue
        if len(header) < 16 or int.from_bytes(header[4:8], "little") != 0 or destination.exists():
            continue  # not a timestamp-checked file, or the job has one already
        if header[8:16] != _stamp(compiled_for):
            continue  # compiled for an older version of the test run's own file
        destination.parent.mkdir(exist_ok=True)
        if header[8:16] == _stamp(job_file):
            try:
                os.link(pyc, destination)
            except OSError:
                shutil.copyfile(pyc, destination)
            linked += 1
        elif job_file.st_size == compiled_for.st_size and source.read_bytes() == own.read_bytes():
            data = pyc.read_bytes()
            partial = destination.with_name(destination.name + ".seed")
            partial.write_bytes(data[:8] + _stamp(job_file) + data[16:])
            os.replace(partial, destination)
            copied += 1
    log("seed-bytecode", linked=linked, copied=copied, environment=str(target))
    return 0


def _stamp(stat: os.stat_result) -> bytes:
    """A source file's modification time and size as a timestamp-checked .pyc header holds them."""
    return (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (stat.st_size & 0xFFFFFFFF).to_bytes(
        4, "little"
    )


def main(argv: list[str]) -> int:
    command = argv[0]
    if command == "seed-bytecode":
        return seed_bytecode()
    if command == "upload":
        return upload(*argv[1:5])
    if command == "download":
        return download(*argv[1:4])
    log(command, args=argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Finish the project the pre-generation hook made: remove cookiecutter's placeholder, format, first commit.

Renaming changes line lengths, so the project is formatted with its own locked ruff (the `test` workflow
checks `ruff format --check`): ruff from this interpreter or PATH, else `uv tool run ruff==<locked>`.

Standard library only (the template machinery is not in the project). ``cruft update`` generates
throw-away trees to diff; those get no git repository (run from a project with ``.cruft.json``).
"""

import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | jsonify }}""")
PLACEHOLDER = "GENERATED_BY_HOOKS.md"

project = Path.cwd()
(project / PLACEHOLDER).unlink(missing_ok=True)


def locked_ruff() -> str | None:
    lock = project / "uv.lock"
    if not lock.is_file():
        return None
    lines = lock.read_text(encoding="utf-8").splitlines()
    for line, following in itertools.pairwise(lines):
        if line == 'name = "ruff"' and following.startswith("version = "):
            return following.split('"')[1]
    return None


def format_project() -> bool:
    """`ruff format .` with the first ruff found; False (and a warning) when there is none."""
    version = locked_ruff()
    candidates = []
    if importlib.util.find_spec("ruff") is not None:
        candidates.append([sys.executable, "-m", "ruff"])
    if shutil.which("ruff"):
        candidates.append([shutil.which("ruff")])
    if shutil.which("uv") and version:
        candidates.append([shutil.which("uv"), "tool", "run", f"ruff=={version}"])
    for command in candidates:
        try:
            done = subprocess.run(
                [*command, "format", "--quiet", "--no-cache", "."],
                cwd=project,
                capture_output=True,
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return True
    print(
        "warning: no ruff found to format the renamed code; run `uv run ruff format .` once and commit it "
        "(the test workflow and tests/unit/test_lint.py check the formatting)",
        file=sys.stderr,
    )
    return False


format_project()
pwd = os.environ.get("PWD")
cruft_update = "_output_dir" not in ANSWERS and bool(pwd) and (Path(pwd) / ".cruft.json").is_file()
if not cruft_update and not (project / ".git").exists() and shutil.which("git"):
    env = {**os.environ}
    env.setdefault("GIT_AUTHOR_NAME", "cookiecutter")
    env.setdefault("GIT_AUTHOR_EMAIL", "cookiecutter@localhost")
    env.setdefault("GIT_COMMITTER_NAME", env["GIT_AUTHOR_NAME"])
    env.setdefault("GIT_COMMITTER_EMAIL", env["GIT_AUTHOR_EMAIL"])
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "--no-verify", "-m", "Project generated from the GitOps MLOps template"],
    ):
        done = subprocess.run(["git", *args], cwd=project, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"git {args[0]} failed: {done.stderr.strip()}", file=sys.stderr)
            sys.exit(1)
print(f"Generated {ANSWERS['project_name']} in {project}")

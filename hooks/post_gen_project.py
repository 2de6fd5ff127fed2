"""Finish the project the pre-generation hook made: remove cookiecutter's placeholder, first commit.

Standard library only (the template machinery is not in the project). ``cruft update`` generates
throw-away trees to diff; those get no git repository (run from a project with ``.cruft.json``).
"""

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

"""Refuse bad answers before any file is written (cookiecutter renders this file with the answers).

The checks live in the template's own library (scaffold.pre_generation); this hook only finds it.
The project folder is still empty here, so the template checkout is located through the cookiecutter
process's working directory (it runs hooks from the template folder) or an absolute ``_repo_dir``.
If neither is available the post-generation hook runs the same checks before changing anything.
"""

import contextlib
import json
import os
import sys
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | jsonify }}""")


def template_root():
    candidates = []
    with contextlib.suppress(OSError):  # Linux: the cookiecutter process runs hooks from the template
        candidates.append(Path(os.readlink(f"/proc/{os.getppid()}/cwd")))
    if ANSWERS.get("_repo_dir") and Path(ANSWERS["_repo_dir"]).is_absolute():
        candidates.append(Path(ANSWERS["_repo_dir"]))
    for root in candidates:
        if (root / "cookiecutter.json").is_file() and (
            root / "src" / "german_credit_scoring" / "scaffold.py"
        ).is_file():
            return root
    return None


root = template_root()
if root is not None:
    sys.path.insert(0, str(root / "src"))
    from german_credit_scoring.scaffold import pre_generation

    problems = pre_generation(ANSWERS, project=Path.cwd(), template=root)
    if problems:
        print("Cannot generate the project:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        sys.exit(1)

"""Make the project (cookiecutter renders this file with the answers; it runs in the empty project folder).

The template folder cookiecutter copies holds only a placeholder: this hook finds the template checkout
from the context (cookiecutter's ``_repo_dir``; cruft's ``_template`` and ``_commit``), checks the
answers, copies the checkout's git-tracked files minus the template machinery, renames them and aims
them at the data. All of it is ``hooks/scaffold.py`` of that checkout; this file only loads it.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ANSWERS = json.loads(r"""{{ cookiecutter | jsonify }}""")


def fail(message: str) -> None:
    print("Cannot generate the project:", file=sys.stderr)
    for line in message.splitlines():
        print(f"  - {line}", file=sys.stderr)
    sys.exit(1)


def load_scaffold(scratch: Path):
    """hooks/scaffold.py of the template being generated from (its working tree, or cruft's commit)."""
    repo_dir = str(ANSWERS.get("_repo_dir") or "")
    candidates = []
    if repo_dir:
        path = Path(repo_dir).expanduser()
        bases = [os.environ.get("PWD"), ANSWERS.get("_output_dir")]
        candidates = [path] if path.is_absolute() else [Path(b) / path for b in bases if b]
    elif ANSWERS.get("_template") and ANSWERS.get("_commit"):  # cruft: the commit being generated
        repo = str(ANSWERS["_template"])
        if not Path(repo).is_dir():
            subprocess.run(["git", "clone", "-q", "--no-checkout", repo, str(scratch / "clone")])
            repo = str(scratch / "clone")
        script = subprocess.run(
            ["git", "-C", repo, "show", f"{ANSWERS['_commit']}:hooks/scaffold.py"], capture_output=True
        )
        if script.returncode == 0:
            (scratch / "hooks").mkdir()
            (scratch / "hooks" / "scaffold.py").write_bytes(script.stdout)
            candidates = [scratch]
    for root in candidates:
        module = root / "hooks" / "scaffold.py"
        if module.is_file():
            spec = importlib.util.spec_from_file_location("template_scaffold", module)
            scaffold = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = scaffold  # dataclasses look their module up
            spec.loader.exec_module(scaffold)
            return scaffold
    return None


with tempfile.TemporaryDirectory(prefix="scaffold-") as scratch:
    scaffold = load_scaffold(Path(scratch))
    if scaffold is None:
        fail(
            "cannot find the template's hooks/scaffold.py from the context "
            f"(_repo_dir={ANSWERS.get('_repo_dir')!r}, _template={ANSWERS.get('_template')!r}); "
            "generate from a local path or a git URL"
        )
    try:
        notes = scaffold.generate(Path.cwd(), ANSWERS)
    except scaffold.ScaffoldError as error:
        fail(str(error))
    except Exception as error:  # e.g. the project's own contract inference refusing the data
        fail(f"{type(error).__name__}: {error}")
for note in notes:
    print(f"note: {note}")

#!/usr/bin/env python3
"""One command from a fresh machine (Python 3.11+ and git) to a running project.

    python3 bootstrap.py pipeline   # install the locked environment, run the whole DVC pipeline
    python3 bootstrap.py test       # install the locked environment, run the test suite

It needs nothing but the standard library: uv is used when it is on PATH, otherwise it is
installed from PyPI into .tools/ (git-ignored), and uv installs everything else from uv.lock.
Extra arguments go to the underlying command (`dvc repro ...` or `pytest ...`).

Python keeps its bytecode cache even where PYTHONDONTWRITEBYTECODE is set (CI images often set it): the
commands run under this script do without it, with the cache out of the source tree in .venv/pycache
(PYTHONPYCACHEPREFIX). Without a cache, each of the pipeline's processes and the tests' hundreds compiles
every module it imports from source again: a forced `dvc repro` of a generated project took 58 s without
a cache, 43 s writing one and 34 s reading it.

Exit codes of `pipeline`: 0 the pipeline ran and the gate approved the model; 3 the gate refused the
model (a summary says which checks failed, by how much, and the ways forward; the reports are
written and the approved model is unchanged); 1 another stage failed (its message is above);
2 this script cannot run (Python too old, unknown command).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
PYCACHE = ROOT / ".venv" / "pycache"  # Python's bytecode cache where the shell said not to write one
UV_REQUIREMENT = "uv>=0.5,<1"
EXIT_GATE_REFUSED = 3

COMMANDS = {
    "setup": [],
    "pipeline": ["dvc", "repro"],
    "test": ["pytest"],
}


def find_uv() -> str:
    """uv from PATH, else a private copy installed with pip into .tools/."""
    found = shutil.which("uv")
    if found:
        return found
    bindir = TOOLS / ("Scripts" if os.name == "nt" else "bin")
    uv = bindir / ("uv.exe" if os.name == "nt" else "uv")
    if not uv.exists():
        print(f"bootstrap: installing {UV_REQUIREMENT} into {TOOLS}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
        python = bindir / ("python.exe" if os.name == "nt" else "python")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", UV_REQUIREMENT], check=True)
    return str(uv)


def command_env(environ: dict[str, str], uv: str) -> dict[str, str]:
    """The environment of the commands run here: uv on PATH (what runs under it finds the same uv),
    no Python downloads unless asked for, and Python's bytecode cache on (module docstring): where
    PYTHONDONTWRITEBYTECODE is set, it is dropped and the cache goes to .venv/pycache unless
    PYTHONPYCACHEPREFIX already names a place."""
    env = {**environ, "UV_PYTHON_DOWNLOADS": environ.get("UV_PYTHON_DOWNLOADS", "never")}
    env["PATH"] = os.pathsep.join([str(Path(uv).parent), env.get("PATH", "")])
    if env.pop("PYTHONDONTWRITEBYTECODE", ""):
        env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
    return env


def forget_temporary_bytecode(prefix: Path) -> None:
    """Drop the cache's copies of modules under the temporary folder (the tests' project copies): they
    are never read again, and would pile up in .venv/pycache run after run."""
    temporary = Path(tempfile.gettempdir()).resolve()
    shutil.rmtree(prefix / temporary.relative_to(temporary.anchor), ignore_errors=True)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        print("bootstrap: Python 3.11 or newer is needed", file=sys.stderr)
        return 2
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 2
    command, extra = argv[0], argv[1:]
    uv = find_uv()
    env = command_env(dict(os.environ), uv)
    if env.get("PYTHONPYCACHEPREFIX") == str(PYCACHE):
        forget_temporary_bytecode(PYCACHE)
    sync = [uv, "sync", "--locked"]
    if subprocess.run(sync, cwd=ROOT, env=env).returncode != 0:
        print(
            "bootstrap: `uv sync --locked` failed (is uv.lock in step with pyproject.toml?)", file=sys.stderr
        )
        return 1
    if not COMMANDS[command]:
        return 0
    started = time.time()
    code = subprocess.run([uv, "run", "--locked", *COMMANDS[command], *extra], cwd=ROOT, env=env).returncode
    if command != "pipeline" or code == 0:
        return code
    # the verdict, in the project's own tested code: 1 means this run's gate refused the model
    verdict = [uv, "run", "--locked", "mlops", "gate-summary", "--since", str(started - 1)]
    print(flush=True)
    if subprocess.run(verdict, cwd=ROOT, env=env).returncode == 1:
        return EXIT_GATE_REFUSED
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

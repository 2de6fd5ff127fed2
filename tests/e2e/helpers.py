"""Helpers for end-to-end tests: a throw-away copy of the project that runs with this venv."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def project_files(root: Path = ROOT) -> list[str]:
    """Tracked and untracked-but-not-ignored files: what a fresh clone (plus work in progress) holds."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [f for f in out.split("\0") if f and (root / f).is_file()]


def copy_project(destination: Path, root: Path = ROOT, exclude_prefixes: tuple[str, ...] = ()) -> Path:
    for name in project_files(root):
        if name.startswith(exclude_prefixes):
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target, follow_symlinks=True)
    git(destination, "init", "-q", "-b", "main")
    git(destination, "add", "-A")
    git(destination, "commit", "-q", "-m", "copy of the project under test")
    return destination


# A policy any fitted model meets: every limit the project's gate names stays (a risk tier may make a
# kind of check mandatory), at a value that cannot fail. Tests that need an approved model use it so
# that they do not depend on what the project's real policy decides about its data.
RELAXED = {"min": -1e9, "max": 1e9}


def relax_gate(project: Path) -> dict:
    """Write a gate policy every model passes into the copy's params.yaml; returns the gate section."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    gate = params.get("gate") or {}
    for key in ("min_metrics", "min_fairness"):
        gate[key] = {name: RELAXED["min"] for name in gate.get(key) or {}}
    for key in ("max_metrics", "max_fairness", "max_regression"):
        gate[key] = {name: RELAXED["max"] for name in gate.get(key) or {}}
    for key in ("max_latency_p95_ms", "max_model_size_mb"):
        if gate.get(key) is not None:
            gate[key] = math.floor(RELAXED["max"])
    params["gate"] = gate
    path.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")
    git(project, "commit", "-q", "-am", "tests: a gate policy every model meets")
    return gate


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def project_env(project: Path, **extra: str) -> dict[str, str]:
    """Run the copy's own code with this test run's interpreter and packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GITHUB_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(project / "src")
    env["BENTOML_HOME"] = str(project / ".bentoml")
    env["BENTOML_DO_NOT_TRACK"] = "true"
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(extra)
    return env


def run(project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
    return subprocess.run(
        list(args),
        cwd=project,
        env=env or project_env(project),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dvc(project: Path, *args: str, timeout: float = 600):
    return run(project, sys.executable, "-m", "dvc", *args, timeout=timeout)


def digest(path: Path) -> str:
    if path.is_dir():
        h = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(child.relative_to(path).as_posix().encode())
            h.update(child.read_bytes())
        return h.hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()

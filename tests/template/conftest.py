"""Fixtures for template tests: a throw-away git repository of the template as it is on disk, data sets."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _load_scaffold():
    """hooks/scaffold.py: template machinery, outside the package (never in a generated project)."""
    spec = importlib.util.spec_from_file_location("template_scaffold", ROOT / "hooks" / "scaffold.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


scaffold = _load_scaffold()

# The sample recoded as a churn data set: other target, label, column names and protected attributes.
CHURN_RENAMES = {
    "credit_risk": "churned",
    "sex": "gender",
    "age": "age_years",
    "checking_status": "account_status",
    "duration_months": "tenure_months",
    "purpose": "plan",
    "credit_amount": "monthly_spend",
    "housing": "home",
}
CHURN_LABELS = {"bad": "yes", "good": "no"}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def working_files(root: Path = ROOT) -> list[str]:
    """Tracked plus untracked-but-not-ignored files: the tree as it is, work in progress included.

    Pipeline outputs count only when committed (the sample's dvc.lock, metrics, plots and reports are).
    """

    def listed(*options: str) -> set[str]:
        out = subprocess.run(
            ["git", "ls-files", *options, "-z"], cwd=root, check=True, capture_output=True
        ).stdout.decode()
        return {f for f in out.split("\0") if f and (root / f).is_file()}

    outputs = tuple(dvc_outputs(root))
    untracked = {f for f in listed("--others", "--exclude-standard") if not f.startswith(outputs)}
    return sorted(listed("--cached") | untracked)


def dvc_outputs(root: Path) -> list[str]:
    """Paths the pipeline writes (dvc.yaml outs, metrics, plots): runtime state, never template content."""
    stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {})
    paths = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []) or []:
                paths.append(next(iter(entry)) if isinstance(entry, dict) else str(entry))
    return paths


def make_template_repo(destination: Path) -> Path:
    """A git repository holding the template as it is on disk, committed."""
    for name in working_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    git(destination, "init", "-q", "-b", "main")
    git(destination, "add", "-A")
    git(destination, "commit", "-q", "-m", "template")
    return destination


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory) -> Path:
    return make_template_repo(tmp_path_factory.mktemp("template") / "template")


def write_churn(source: Path, destination: Path) -> Path:
    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([CHURN_RENAMES.get(c, c) for c in rows[0]])
        for row in rows:
            writer.writerow([CHURN_LABELS.get(v, v) if k == "credit_risk" else v for k, v in row.items()])
    return destination


@pytest.fixture(scope="session")
def churn_csv(tmp_path_factory) -> Path:
    return write_churn(ROOT / "data/raw/german_credit.csv", tmp_path_factory.mktemp("data") / "churn.csv")


def bake_env(cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MLFLOW_", "GITHUB_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PWD"] = str(cwd)  # what a shell started in cwd would pass on
    env["HOME"] = str(cwd / ".home")  # cookiecutter keeps its clones and replay files under ~
    env |= {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return env


def cookiecutter(template: str | Path, cwd: Path, *args: str, **answers: str) -> subprocess.CompletedProcess:
    """The real `cookiecutter` command line, non-interactive."""
    command = [str(VENV_BIN / "cookiecutter"), "--no-input", str(template), *args]
    command += [f"{key}={value}" for key, value in answers.items()]
    (cwd / ".home").mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, cwd=cwd, env=bake_env(cwd), capture_output=True, text=True, timeout=300)

"""Shared fixtures: the project root, a loaded copy of its settings and feature definitions, and one
reproduced project for the whole session.

`reproduced`: `dvc repro package` runs once per session on a copy of the project, under a gate policy
every fitted model meets (what the project's own policy decides about its data is not what the tests
that need a finished run are about). The act tests and each end-to-end module take their own clone of
it (`clone_reproduced`), so tests that change data, params or git history never see each other's
changes and nobody pays for a second full run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never talk to a real tracking server or analytics endpoint.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_AUTHOR_NAME", "Test")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "test@example.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "Test")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "test@example.invalid")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def settings():
    from german_credit_scoring.settings import load_settings

    return load_settings(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def features(settings):
    from german_credit_scoring.contract import load_features

    return load_features(ROOT / settings.features)


@pytest.fixture(scope="session")
def sample_frame(settings):
    from german_credit_scoring.data import read_table

    return read_table(ROOT / settings.data.path)


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory) -> Path:
    from tests.e2e.helpers import copy_project, dvc, git, relax_gate

    project = copy_project(tmp_path_factory.mktemp("reproduced") / "project")
    # production is the project as committed, as in a clone of it (the gate's baseline, origin/main)
    git(project, "update-ref", "refs/remotes/origin/main", "HEAD")
    relax_gate(project)
    result = dvc(project, "repro", "package", timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return project


@pytest.fixture(scope="session")
def clone_reproduced(reproduced):
    """clone_reproduced(folder) -> a private copy of the reproduced project (git history, DVC cache,
    MLflow store and bento store included) at folder/project."""

    def clone(folder: Path) -> Path:
        target = folder / "project"
        shutil.copytree(reproduced, target, symlinks=True)
        return target

    return clone

"""One reproduced project shared by the end-to-end tests that need a finished pipeline run.

`dvc repro package` runs once per session on a copy of the project, under a gate policy every fitted
model meets (what the project's own policy decides about its data is not what these tests are about).
Each test module takes its own clone of that run (`clone_reproduced`), so tests that change data,
params or git history never see each other's changes and nobody pays for a second full run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.helpers import copy_project, dvc, relax_gate


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("reproduced") / "project")
    relax_gate(project)
    result = dvc(project, "repro", "package")
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

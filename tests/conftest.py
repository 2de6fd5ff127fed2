"""Shared fixtures: the project root, a loaded copy of its settings and feature definitions, and one
reproduced project for the whole session.

`reproduced`: `dvc repro package` runs once per session on a copy of the project, under a gate policy
every fitted model meets (what the project's own policy decides about its data is not what the tests
that need a finished run are about). The act tests and each end-to-end module take their own clone of
it (`clone_reproduced`), so tests that change data, params or git history never see each other's
changes and nobody pays for a second full run.

The suite runs on every core (pytest-xdist, `-n auto` in pyproject.toml): `reproduced` is built once for
all workers (a file lock in the run's shared temporary folder); each end-to-end or act module runs whole
on one worker, so its module fixtures are built once; and the work is handed out longest first, the
act pull-request run (which builds `reproduced`) before everything else (`pytest_collection_modifyitems`).
`-n0` runs it in one process as before."""

from __future__ import annotations

import json
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


def _build_reproduced(project: Path) -> None:
    from tests.e2e.helpers import copy_project, dvc, git, relax_gate

    copy_project(project)
    # production is the project as committed, as in a clone of it (the gate's baseline, origin/main)
    git(project, "update-ref", "refs/remotes/origin/main", "HEAD")
    relax_gate(project)
    result = dvc(project, "repro", "package", timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory, worker_id) -> Path:
    if worker_id == "master":  # one process (-n0): this session's own
        project = tmp_path_factory.mktemp("reproduced") / "project"
        _build_reproduced(project)
        return project
    from filelock import FileLock

    # every worker of this run shares the run's temporary folder; the first one in builds, the rest wait
    shared = tmp_path_factory.getbasetemp().parent / "reproduced"
    outcome = shared.with_name("reproduced.json")
    with FileLock(str(shared.with_name("reproduced.lock"))):
        if not outcome.exists():
            try:
                _build_reproduced(shared / "project")
            except BaseException as error:  # the next worker fails with the same message, not a rebuild
                outcome.write_text(json.dumps({"error": str(error)[-6000:]}))
                raise
            outcome.write_text(json.dumps({"error": None}))
    error = json.loads(outcome.read_text())["error"]
    if error is not None:
        pytest.fail(f"the shared pipeline run failed in another worker:\n{error}")
    return shared / "project"


@pytest.fixture(scope="session")
def clone_reproduced(reproduced):
    """clone_reproduced(folder) -> a private copy of the reproduced project (git history, DVC cache,
    MLflow store and bento store included) at folder/project."""

    def clone(folder: Path) -> Path:
        target = folder / "project"
        shutil.copytree(reproduced, target, symlinks=True)
        return target

    return clone


def _order(item) -> float:
    """Longest work first; the act pull-request run first of all (it builds `reproduced`, so the other
    worker starts on work that needs no pipeline run instead of waiting for it)."""
    path = item.path.as_posix()
    if "/tests/act/test_workflows_act.py" in path:
        return 0
    if "/tests/template/test_generated_projects.py" in path:
        return 1  # generated projects' pipelines and test suites (the full suites first: their own order)
    if "/tests/template/" in path:
        return 1.5  # the template's bakes: seconds each
    if "/tests/e2e/" in path or "/tests/act/" in path:
        return 3 if {"reproduced", "clone_reproduced"} & set(item.fixturenames) else 2
    return 4


def pytest_xdist_make_scheduler(config, log):
    """Under xdist, an end-to-end or act module runs whole on one worker, so its module fixtures (a project
    copy, act's stand-ins, servers) are built once; every other test is a unit of its own, so the template's
    generated projects spread over the workers. (xdist's own `loadgroup` marks are ignored by pytest 9.2,
    whose node ids no longer change after collection.)"""
    from xdist.scheduler import LoadScopeScheduling

    class EndToEndModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.startswith(("tests/e2e/", "tests/act/")) else nodeid

    return EndToEndModules(config, log)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_order)  # stable: collection order within each rank

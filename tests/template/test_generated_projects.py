"""A generated project passes both README commands on data nobody tuned it to.

For the sample and five generated data sets (numeric-only; high-cardinality and missing categories;
a 0/1 integer target; Parquet input; one whose fairness gate refuses the first model, with a
hyphenated name, a positive label with symbols and two protected attributes), the real `cookiecutter`
makes the project and then, inside it, exactly what its README says:

    python3 bootstrap.py pipeline   # exit 0 when the gate approves, 3 when it refuses (with a summary)
    python3 bootstrap.py test

The environment is the project's own (`uv sync --locked`, offline from the uv cache the template's own
sync filled; uv hardlinks from that cache). CI's budget for template tests holds six pipelines and one
full test suite: the full test command (act tests included) runs on the data set the gate refuses, the
one least like the sample (`TEMPLATE_FULL_SUITES`, default `unfair`); on the other four data sets it runs
the unit tests that read the project's own data, settings and contract (SUBSET). The sample's project
runs its pipeline only: its files are the template's own, byte for byte, less the template machinery
(test_bake.py's test_default_bake_reproduces_the_template_project), so its tests are this suite's, on the
same data. `TEMPLATE_FULL_SUITES=all` (or a comma-separated list of keys, `sample` among them; empty for
none) runs the full test command on those too, e.g. before a release.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from . import datasets
from .conftest import bake_env, cookiecutter

pytestmark = pytest.mark.e2e

COMMON = {
    "github_owner": "initech",
    "owners_model_risk": "@initech/model-risk",
    "owners_data": "@initech/data",
    "owners_platform": "@initech/platform",
}
DATA_SETS = {make().key: make for make in datasets.ALL}
# The full `python3 bootstrap.py test` runs here; elsewhere the subset below (the budget: see module doc).
# Default: the refused data set, the one least like the sample. TEMPLATE_FULL_SUITES=all (or keys).
_full = os.environ.get("TEMPLATE_FULL_SUITES", "unfair")
FULL_SUITE = (
    set(DATA_SETS) | {"sample"} if _full == "all" else {k.strip() for k in _full.split(",") if k.strip()}
)
# unit tests that read the project's own data, settings and contract (about 100 s of CPU a data set, measured)
SUBSET = [
    "tests/unit/test_contract.py",
    "tests/unit/test_ingest.py",
    "tests/unit/test_ingest_time_split.py",
    "tests/unit/test_inference.py",
    "tests/unit/test_validation.py",
    "tests/unit/test_features_stage.py",
    "tests/unit/test_training.py",
    "tests/unit/test_explain_contributions.py",
    "tests/unit/test_batch_scoring.py",
    "tests/unit/test_drift.py",
    "tests/unit/test_simulate.py",
    "tests/unit/test_monitoring_store.py",
    "tests/unit/test_monitoring_labels.py",
    "tests/unit/test_monitoring_dataset.py",
]
TIMINGS: dict[str, dict[str, float]] = {}


def uv_env(project: Path) -> dict[str, str] | None:
    """The environment a user's shell would give bootstrap.py, with uv offline on the warm cache."""
    uv = shutil.which("uv")
    if uv is None:
        return None
    cache = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()
    env = bake_env(project.parent) | {"PWD": str(project), "UV_OFFLINE": "1", "UV_CACHE_DIR": cache}
    env["PATH"] = os.pathsep.join([str(Path(uv).parent), env["PATH"]])
    # (and the project's own bootstrap.py decides where Python's bytecode cache goes, not this run's)
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    return env


def bootstrap(project: Path, env: dict[str, str], *args: str, timeout: int = 1800):
    """`python3 bootstrap.py ARGS` in the project; on timeout its whole process group is stopped (no
    orphaned pytest or dvc keeps running)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "bootstrap.py", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"bootstrap.py {' '.join(args)} took over {timeout}s:\n{stdout[-3000:]}{stderr[-2000:]}")
    TIMINGS.setdefault(project.name, {})[args[0]] = round(time.perf_counter() - started, 1)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def generate(template: Path, key: str, work: Path) -> Path:
    if key == "sample":
        result, project = cookiecutter(template, work, **COMMON), work / "german-credit-scoring"
    else:
        data = DATA_SETS[key]()
        data.write(work)
        result = cookiecutter(template, work, **COMMON, **data.answers, data_path=data.file_name)
        project = work / data.slug
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return project


@pytest.fixture(scope="module", autouse=True)
def _report_timings():
    yield
    for name, figures in TIMINGS.items():
        print(f"{name}: " + ", ".join(f"{k} {v}s" for k, v in figures.items()))


# the full suites first: they are the longest items, and xdist hands work out in this order
KEYS = sorted(["sample", *DATA_SETS], key=lambda key: key not in FULL_SUITE)


@pytest.mark.parametrize("key", KEYS)
def test_both_readme_commands_pass_on_the_data(key, template_repo, tmp_path):
    # given a project generated for the data set
    started = time.perf_counter()
    project = generate(template_repo, key, tmp_path)
    TIMINGS.setdefault(project.name, {})["generate"] = round(time.perf_counter() - started, 1)
    env = uv_env(project)
    if env is None:
        pytest.skip("uv is not on PATH: bootstrap.py would install it from PyPI (no network in tests)")
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))

    # when the README's first command runs the whole pipeline
    pipeline = bootstrap(project, env, "pipeline")
    output = pipeline.stdout + pipeline.stderr
    gate = json.loads((project / "metrics/gate.json").read_text())
    # then every stage ran on the project's own data, and the exit code is the gate's documented verdict
    ingest = json.loads((project / "reports/ingest.json").read_text())
    assert params["data"]["target"] in ingest["columns"], output[-3000:]
    assert json.loads((project / "reports/validation.json").read_text())["success"] is True
    fairness = json.loads((project / "metrics/fairness.json").read_text())
    assert {p["name"] for p in params["data"]["protected_attributes"]} <= set(fairness)
    if gate["passed"]:
        assert pipeline.returncode == 0, output[-4000:]
        assert (project / "models/approved/model.joblib").is_file()
        assert (project / "models/bento.json").is_file()  # package ran after the gate
    else:
        # a refusal is an outcome: exit 3 and a summary naming each failed check, not a stack trace
        assert pipeline.returncode == 3, output[-4000:]
        failed = [c["name"] for c in gate["checks"] if not c["passed"]]
        summary = pipeline.stdout[pipeline.stdout.index("gate: model") :]
        assert "REFUSED" in summary and all(name in summary for name in failed)
        assert "When the gate refuses a model" in summary and "reports/gate.md" in summary
        assert not (project / "models/approved/model.joblib").exists()
    if key == "unfair":  # the data set made to be refused on fairness is refused on fairness
        assert not gate["passed"]
        assert {c["kind"] for c in gate["checks"] if not c["passed"]} == {"fairness"}

    if key == "sample" and key not in FULL_SUITE:
        return  # its tests are the template's own, on the same data: this very run (module doc)

    # when the README's second command runs the tests (all of them, or the subset: see module doc)
    subset = [path for path in SUBSET if (project / path).is_file()]
    assert subset, "the generated project has none of the data-dependent unit test files"
    # The full command is the README's, act tests included: they run the project's workflows under its own
    # name, owners and data (`TEMPLATE_FULL_ACT=0` leaves them out, for a quicker local run).
    full = ["-m", "not act"] if os.environ.get("TEMPLATE_FULL_ACT") == "0" else []
    # (the subset in one process: a few minutes of unit tests gain nothing from workers of their own
    # while the other data sets' projects keep the cores busy, and each worker costs its imports again)
    subset_args = [*subset, "-n0", "-p", "no:cacheprovider"]
    tests = bootstrap(project, env, "test", *(full if key in FULL_SUITE else subset_args))
    # then they pass on this data, whatever the gate decided
    assert tests.returncode == 0, tests.stdout[-6000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and " failed" not in tests.stdout

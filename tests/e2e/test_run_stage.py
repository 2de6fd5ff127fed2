"""`mlops run-stage` with real DVC and a real (local) DVC remote: an unchanged stage is restored from the
run-cache in a fresh clone, not recomputed; a changed one runs; outputs a pull request committed are
never taken on the committed lock's word; without a remote the stage always runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from ruamel.yaml import YAML

from german_credit_scoring.gitops.lock import dvc_md5
from tests.e2e.helpers import dvc, git, run

pytestmark = pytest.mark.e2e


def mlops(project: Path, *args: str):
    return run(project, sys.executable, "-m", "german_credit_scoring.cli", *args)


def train_entry(project: Path) -> dict:
    return yaml.safe_load((project / "dvc.lock").read_text())["stages"]["train"]


def how(project: Path) -> str:
    return json.loads((project / "runs/train.json").read_text())["facts"]["how"]


@pytest.fixture(scope="module")
def origin(tmp_path_factory, clone_reproduced):
    """main after a full run, with a DVC remote that CI pushed every output and its run-cache to."""
    work = tmp_path_factory.mktemp("run-stage")
    project = clone_reproduced(work)
    assert dvc(project, "remote", "add", "-d", "store", str(work / "remote")).returncode == 0
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "a DVC remote")
    pushed = dvc(project, "push", "--run-cache")
    assert pushed.returncode == 0, pushed.stdout[-2000:] + pushed.stderr[-2000:]
    for stage in ("ingest", "features", "train"):  # what each stage job pushes after its run
        kept = mlops(project, "run-stage", stage, "--push-only")
        assert kept.returncode == 0, kept.stdout[-2000:] + kept.stderr[-2000:]
    return project


def fresh_clone(origin: Path, folder: Path) -> Path:
    """What a stage job starts from: a checkout, then the setup action's `dvc pull --run-cache`."""
    git(folder, "clone", "-q", str(origin), "clone")
    clone = folder / "clone"
    pulled = dvc(clone, "pull", "--allow-missing", "--run-cache")
    assert pulled.returncode == 0, pulled.stdout[-2000:] + pulled.stderr[-2000:]
    return clone


def test_an_unchanged_stage_is_restored_from_the_run_cache_not_recomputed(origin, tmp_path):
    clone = fresh_clone(origin, tmp_path)
    result = mlops(clone, "run-stage", "train", "--single-item")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "is cached - skipping run" in result.stdout + result.stderr
    assert "Running stage 'train'" not in result.stdout + result.stderr
    assert how(clone) == "restored"
    assert train_entry(clone) == train_entry(origin)  # the lock CI ends with is the run's
    assert dvc_md5(clone / "models/candidate") == dvc_md5(origin / "models/candidate")
    status = dvc(clone, "status", "train", "--json")
    assert status.returncode == 0 and json.loads(status.stdout or "{}") == {}


def test_an_output_committed_with_a_doctored_lock_is_replaced_by_what_the_run_made(origin, tmp_path):
    clone = fresh_clone(origin, tmp_path)
    # a pull request commits better-looking metrics and a lock that agrees with them
    metrics = clone / "metrics/train.json"
    truth = metrics.read_bytes()
    doctored = json.loads(truth)
    doctored["doctored"] = True
    metrics.write_text(json.dumps(doctored))
    round_trip = YAML()  # YAML 1.2, as DVC reads its lock (PyYAML would make a `yes` param `true`)
    lock = round_trip.load((clone / "dvc.lock").read_text())
    for out in lock["stages"]["train"]["outs"]:
        if out["path"] == "metrics/train.json":
            out["md5"], out["size"] = dvc_md5(metrics), metrics.stat().st_size
    with (clone / "dvc.lock").open("w") as handle:
        round_trip.dump(lock, handle)
    assert dvc(clone, "status", "train", "--json").stdout.strip() in ("{}", "")  # DVC alone would skip it

    result = mlops(clone, "run-stage", "train", "--single-item")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert metrics.read_bytes() == truth
    assert train_entry(clone) == train_entry(origin)


def test_a_changed_stage_runs_and_its_run_is_pushed_for_the_next(origin, tmp_path):
    clone = fresh_clone(origin, tmp_path)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    model = params["model"]
    model["seed"] = int(model.get("seed", 0)) + 1  # another run with other inputs
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = mlops(clone, "run-stage", "train", "--single-item")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Running stage 'train'" in result.stdout + result.stderr
    assert how(clone) == "reproduced"

    # the next job or pull request with these inputs restores that run instead of recomputing it
    git(clone, "commit", "-q", "-am", "another seed")
    (tmp_path / "next").mkdir()
    again = fresh_clone(clone, tmp_path / "next")  # the same remote: .dvc/config is committed
    second = mlops(again, "run-stage", "train", "--single-item")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert how(again) == "restored"
    assert train_entry(again) == train_entry(clone)


def test_without_a_remote_the_stage_runs_even_when_nothing_changed(origin, tmp_path):
    clone = fresh_clone(origin, tmp_path)
    assert dvc(clone, "remote", "remove", "store").returncode == 0
    result = mlops(clone, "run-stage", "train", "--single-item")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Running stage 'train'" in result.stdout + result.stderr
    assert how(clone) == "reproduced"
    assert train_entry(clone) == train_entry(origin)  # deterministic: the same lock either way

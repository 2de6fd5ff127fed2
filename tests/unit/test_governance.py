"""Governance files: CODEOWNERS is generated from governance/owners.yaml, the ruleset names the real checks."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from german_credit_scoring.governance import codeowners_cli

ROOT = Path(__file__).resolve().parents[2]
OWNERS = ROOT / "governance" / "owners.yaml"
CODEOWNERS = ROOT / ".github" / "CODEOWNERS"
RULESET = ROOT / "governance" / "ruleset.json"
PR_WORKFLOW = ROOT / ".github" / "workflows" / "pr.yml"


def owners_of(path: str, codeowners: str) -> list[str]:
    """Who GitHub would ask to review ``path``: the last matching CODEOWNERS line wins."""
    owners: list[str] = []
    for line in codeowners.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pattern, *handles = line.split()
        if _matches(pattern, path):
            owners = handles
    return owners


def _matches(pattern: str, path: str) -> bool:
    if pattern == "*":
        return True
    anchored = pattern.lstrip("/")
    if anchored.endswith("/"):
        return path.startswith(anchored)
    if "**" in anchored:
        head, tail = anchored.split("**/", 1)
        return path.startswith(head) and fnmatch(path.rsplit("/", 1)[-1], tail)
    return path == anchored or path.startswith(anchored + "/")


def teams() -> dict[str, str]:
    return yaml.safe_load(OWNERS.read_text(encoding="utf-8"))["teams"]


def test_codeowners_is_in_step_with_owners_yaml(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert codeowners_cli(["--check"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("params.yaml", "model_risk"),
        ("dvc.lock", "model_risk"),
        ("governance/ruleset.json", "model_risk"),
        ("models/approved/model.joblib", "model_risk"),
        ("features/expectations.json", "data"),
        ("features/features.yaml", "data"),
        ("data/raw/german_credit.csv", "data"),
        ("serving/service.py", "platform"),
        (".github/workflows/pr.yml", "platform"),
        ("dvc.yaml", "platform"),
        ("uv.lock", "platform"),
        ("README.md", "platform"),
    ],
)
def test_each_area_is_reviewed_by_its_team(path, role):
    assert teams()[role] in owners_of(path, CODEOWNERS.read_text(encoding="utf-8"))


def test_policy_code_and_codeowners_need_model_risk():
    text = CODEOWNERS.read_text(encoding="utf-8")
    for path in ["src/german_credit_scoring/gate.py", ".github/CODEOWNERS"]:
        assert teams()["model_risk"] in owners_of(path, text)


def test_write_then_check_and_a_hand_edit_is_caught(tmp_path, capsys):
    # given an owners file and no CODEOWNERS yet
    owners = tmp_path / "owners.yaml"
    owners.write_text(
        "teams: {risk: '@org/risk', ops: '@org/ops'}\ndefault: [ops]\n"
        "paths:\n  - {path: params.yaml, owners: [risk]}\n  - {path: /models/, owners: [risk, ops]}\n"
    )
    out = tmp_path / "CODEOWNERS"
    args = ["--owners", str(owners), "--output", str(out)]
    assert codeowners_cli(["--check", *args]) == 1

    # when it is written, then it checks clean and says what it says
    assert codeowners_cli(["--write", *args]) == 0
    assert codeowners_cli(["--check", *args]) == 0
    rules = [line.split() for line in out.read_text().splitlines() if line and not line.startswith("#")]
    assert rules == [["*", "@org/ops"], ["/params.yaml", "@org/risk"], ["/models/", "@org/risk", "@org/ops"]]

    # when somebody edits CODEOWNERS by hand, then the check fails with a diff and the fix
    out.write_text(out.read_text().replace("@org/risk", "@org/someone-else"))
    capsys.readouterr()
    assert codeowners_cli(["--check", *args]) == 1
    err = capsys.readouterr().err
    assert "+/params.yaml" in err and "mlops codeowners --write" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("teams: {risk: 'org/risk'}\n", "GitHub handle"),
        ("teams: {risk: '@org/risk'}\npaths:\n  - {path: x, owners: [nobody]}\n", "unknown roles"),
        ("teams: {risk: '@org/risk'}\npaths:\n  - {path: a b, owners: [risk]}\n", "without spaces"),
        ("teams: {risk: '@org/risk'}\nowner: x\n", "unknown keys"),
        ("paths: []\n", "teams"),
    ],
)
def test_bad_owners_file_is_a_clear_error(tmp_path, capsys, text, message):
    owners = tmp_path / "owners.yaml"
    owners.write_text(text)
    assert codeowners_cli(["--write", "--owners", str(owners), "--output", str(tmp_path / "CO")]) == 2
    assert message in capsys.readouterr().err


def expected_check_names() -> set[str]:
    """What GitHub calls each pr.yml job's check: '<caller job> / <called workflow's job name>'."""
    pr = yaml.safe_load(PR_WORKFLOW.read_text(encoding="utf-8"))
    names = set()
    for job_id, job in pr["jobs"].items():
        caller = job.get("name", job_id)
        if "uses" in job:
            called = yaml.safe_load((ROOT / job["uses"].removeprefix("./")).read_text(encoding="utf-8"))
            for called_id, called_job in called["jobs"].items():
                names.add(f"{caller} / {called_job.get('name', called_id)}")
        else:
            names.add(caller)
    return names


def test_ruleset_requires_exactly_the_pull_request_checks():
    ruleset = json.loads(RULESET.read_text(encoding="utf-8"))
    rules = {rule["type"]: rule.get("parameters", {}) for rule in ruleset["rules"]}
    required = {c["context"] for c in rules["required_status_checks"]["required_status_checks"]}
    assert required == expected_check_names()
    assert all(re.search(r" / dvc repro \w+$| / lint and tests$", name) for name in required)


def test_ruleset_protects_main():
    ruleset = json.loads(RULESET.read_text(encoding="utf-8"))
    assert ruleset["target"] == "branch" and ruleset["enforcement"] == "active"
    assert ruleset["conditions"]["ref_name"]["include"] == ["~DEFAULT_BRANCH"]
    rules = {rule["type"]: rule.get("parameters", {}) for rule in ruleset["rules"]}
    assert {"deletion", "non_fast_forward", "pull_request", "required_status_checks"} <= set(rules)
    assert rules["pull_request"]["require_code_owner_review"] is True
    assert rules["pull_request"]["required_approving_review_count"] >= 1
    assert ruleset["bypass_actors"] == []


def test_readme_tells_how_to_apply_the_ruleset():
    readme = (ROOT / "governance" / "README.md").read_text(encoding="utf-8")
    assert "gh api -X POST repos/OWNER/REPO/rulesets --input governance/ruleset.json" in readme

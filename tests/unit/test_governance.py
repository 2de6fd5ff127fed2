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
    for path in ["src/german_credit_scoring/lifecycle/gate.py", ".github/CODEOWNERS"]:
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


def promotion_check_name() -> str:
    """promote.yml's pull-request job: it runs on every pull request (a no-op unless production changes)."""
    promote = yaml.safe_load((ROOT / ".github/workflows/promote.yml").read_text(encoding="utf-8"))
    trigger = promote.get("on", promote.get(True))
    assert trigger["pull_request"] is None  # no paths filter: a required check must report on every PR
    return promote["jobs"]["check"]["name"]


def test_ruleset_requires_exactly_the_pull_request_checks():
    ruleset = json.loads(RULESET.read_text(encoding="utf-8"))
    rules = {rule["type"]: rule.get("parameters", {}) for rule in ruleset["rules"]}
    required = {c["context"] for c in rules["required_status_checks"]["required_status_checks"]}
    assert required == expected_check_names() | {promotion_check_name()}
    stage_checks = {
        name for name in required if name.endswith(tuple(f"/ dvc repro {s}" for s in ("gate", "package")))
    }
    assert len(stage_checks) == 2  # the gate and the release it packs are required, whatever else is


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


# --- risk tiers and the ruleset: who may merge what (GitHub's rules evaluated, not the text read) ----

from german_credit_scoring.governance import policy  # noqa: E402
from german_credit_scoring.governance.owners import load_teams  # noqa: E402

TIERS = ROOT / "governance" / "tiers.yaml"


def rules_for(tier: str) -> tuple[dict, str, dict[int, str]]:
    """The ruleset and CODEOWNERS `mlops codeowners --write` generates for ``tier``, and id -> team."""
    files = policy.generated_files(OWNERS, TIERS, ROOT / "params.yaml", RULESET, tier=tier)
    handles, ids = load_teams(OWNERS)
    return (
        json.loads(files[RULESET]),
        files[policy.CODEOWNERS_FILE],
        {team_id: handles[role] for role, team_id in ids.items()},
    )


def members(*roles: str) -> dict[str, list[str]]:
    """One approving user per role (``@alice-model_risk``), member of that role's team."""
    return {f"@user-{role}-{i}": [teams()[role]] for i, role in enumerate(roles)}


def blockers(tier: str, files: list[str], approvals: dict[str, list[str]], author: str | None = None):
    ruleset, codeowners, by_id = rules_for(tier)
    return policy.merge_blockers(files, approvals, ruleset, codeowners, by_id, author=author)


def test_committed_ruleset_is_the_one_for_the_projects_tier(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert policy.codeowners_cli(["--check"]) == 0, capsys.readouterr().err
    tier = policy.project_tier(ROOT / "params.yaml")
    assert json.loads(RULESET.read_text()) == rules_for(tier)[0]


def test_a_two_owner_codeowners_line_alone_lets_either_team_approve():
    # the hole the ruleset closes: with code-owner review only, platform alone approves the gate code
    _, codeowners, by_id = rules_for("high")
    bare = {"rules": [{"type": "pull_request", "parameters": {"require_code_owner_review": True}}]}
    gate_code = ["src/german_credit_scoring/lifecycle/gate.py"]
    assert policy.merge_blockers(gate_code, members("platform"), bare, codeowners, by_id) == []
    assert policy.merge_blockers(gate_code, members("model_risk"), bare, codeowners, by_id) == []


@pytest.mark.parametrize(
    "path",
    ["pipelines/gate.py", "src/german_credit_scoring/lifecycle/gate.py", "src/german_credit_scoring/governance/policy.py",
     ".github/workflows/gate.yml"],
)  # fmt: skip
def test_high_tier_gate_code_needs_model_risk_and_platform(path):
    missing_risk = blockers("high", [path], members("platform", "platform"))
    assert any(teams()["model_risk"] in b and "required reviewers" in b for b in missing_risk)
    missing_platform = blockers("high", [path], members("model_risk", "model_risk"))
    assert any(teams()["platform"] in b for b in missing_platform)
    assert blockers("high", [path], members("model_risk", "platform")) == []


@pytest.mark.parametrize(
    ("path", "code_owner"),
    [("params.yaml", "model_risk"), ("dvc.yaml", "platform"), ("dvc.lock", "model_risk"),
     ("metrics/evaluate.json", "model_risk")],
)  # fmt: skip
def test_promotion_inputs_need_model_risk_in_every_tier_that_requires_it(path, code_owner):
    for tier in ("medium", "high"):
        refused = blockers(tier, [path], members("platform", "data"))
        assert any(teams()["model_risk"] in b for b in refused), (tier, refused)
    assert blockers("medium", [path], members("model_risk", code_owner)) == []
    # high: two approvals, one of them model risk
    assert "needs 2 approving reviews, has 1" in blockers("high", [path], members("model_risk"))
    assert blockers("high", [path], members("model_risk", "data", code_owner)) == []


def test_tier_changes_the_approval_count_and_required_teams():
    counts = {t: rules_for(t)[0]["rules"] for t in ("low", "medium", "high")}
    pulls = {
        t: next(r["parameters"] for r in rules if r["type"] == "pull_request") for t, rules in counts.items()
    }
    assert [pulls[t]["required_approving_review_count"] for t in ("low", "medium", "high")] == [1, 1, 2]
    assert pulls["low"]["required_reviewers"] == []
    # low tier: dvc.yaml (platform-owned) merges with one platform approval; medium and high refuse it
    assert blockers("low", ["dvc.yaml"], members("platform")) == []
    assert blockers("medium", ["dvc.yaml"], members("platform"))


def test_authors_own_approval_does_not_count():
    approvals = members("model_risk", "platform")
    author = next(iter(approvals))
    refused = blockers("high", ["params.yaml"], approvals, author=author)
    assert "needs 2 approving reviews, has 1" in refused


def test_ordinary_code_needs_only_its_code_owner():
    assert blockers("high", ["README.md", "serving/service.py"], members("platform", "data")) == []
    assert any("README.md" in b for b in blockers("high", ["README.md"], members("data", "model_risk")))


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("params.yaml", "params.yaml", True),
        ("params.yaml", "sub/params.yaml", True),  # no slash: any depth (gitignore)
        ("/params.yaml", "sub/params.yaml", False),
        ("src/**/gate.py", "src/pkg/gate.py", True),
        ("src/**/gate.py", "src/gate.py", True),
        ("src/**/gate.py", "tests/src/pkg/gate.py", False),
        ("metrics/**", "metrics/evaluate.json", True),
        ("/models/", "models/approved/model.joblib", True),
        ("/models/", "src/models/x.py", False),
        ("*", "anything/at/all", True),
        ("docs/*", "docs/a.md", True),
        ("docs/*", "docs/a/b.md", True),  # a directory match covers what is below it
    ],
)
def test_patterns_follow_gitignore_rules(pattern, path, expected):
    assert policy.matches(pattern, path) is expected


def test_every_tier_is_defined_and_names_known_checks_and_groups(tmp_path):
    tiers = policy.load_tiers(TIERS)
    assert set(tiers.tiers) == {"low", "medium", "high"}
    assert tiers.policy("high").named_approver == "model_risk"
    assert set(tiers.policy("low").mandatory_checks) < set(tiers.policy("high").mandatory_checks)
    bad = tmp_path / "tiers.yaml"
    bad.write_text(TIERS.read_text().replace("paths: gate_code", "paths: nowhere"))
    with pytest.raises(policy.SettingsError, match=r"tiers\.high\.required_reviewers\[1\]\.paths.*'nowhere'"):
        policy.load_tiers(bad)
    bad.write_text(TIERS.read_text().replace("[metric]", "[metric, vibes]"))
    with pytest.raises(policy.SettingsError, match=r"tiers\.low\.mandatory_checks"):
        policy.load_tiers(bad)


def test_a_required_team_without_an_id_is_a_clear_error(tmp_path):
    owners = tmp_path / "owners.yaml"
    owners.write_text(OWNERS.read_text().replace("  platform: -3\n", ""))
    assert "platform" not in yaml.safe_load(owners.read_text())["team_ids"]
    (tmp_path / "tiers.yaml").write_text(TIERS.read_text())
    (tmp_path / "ruleset.json").write_text(RULESET.read_text())
    with pytest.raises(policy.SettingsError, match=r"team_ids\.platform"):
        policy.generated_files(
            owners, tmp_path / "tiers.yaml", ROOT / "params.yaml", tmp_path / "ruleset.json", "high"
        )


# --- team ids: placeholders and resolving them through the API ------------------------------------------

from tests.unit.test_github import fake_github  # noqa: E402, F401  (the REST stand-in's fixture)


def governance_copy(root: Path) -> Path:
    """governance/ and params.yaml in ``root`` (the fixture's working directory); the owners file."""
    import shutil

    shutil.copytree(ROOT / "governance", root / "governance")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    (root / ".github").mkdir()
    shutil.copy(CODEOWNERS, root / ".github/CODEOWNERS")
    return root / "governance/owners.yaml"


def team_handles(owners: Path) -> dict[str, str]:
    """Role -> "org/team", from the project's own owners file (the sample's, or a generated project's)."""
    return {role: handle.lstrip("@") for role, handle in yaml.safe_load(owners.read_text())["teams"].items()}


def test_check_says_which_team_ids_are_still_placeholders(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    from german_credit_scoring.governance.owners import placeholder_roles

    placeholders = placeholder_roles(load_teams(OWNERS)[1])
    tier = policy.project_tier(ROOT / "params.yaml")
    required = {r.role for r in policy.load_tiers(TIERS).policy(tier).required_reviewers}
    assert policy.codeowners_cli(["--check"]) == 0  # in step; the placeholders are a warning
    err = capsys.readouterr().err
    if not placeholders:  # a project that resolved its teams
        assert "placeholder" not in err
        return
    assert f"team_ids of {', '.join(placeholders)} are still placeholders" in err
    needed = [role for role in placeholders if role in required]
    assert (f"the {tier} tier's ruleset requires {', '.join(needed)}" in err) is bool(needed)
    assert "mlops codeowners --resolve-teams" in err


def test_placeholders_are_named_for_the_tier_that_needs_them(tmp_path, capsys):
    import shutil

    for name in ("owners.yaml", "tiers.yaml", "ruleset.json"):
        shutil.copy(ROOT / "governance" / name, tmp_path / name)
    args = ["--owners", str(tmp_path / "owners.yaml"), "--output", str(tmp_path / "CODEOWNERS")]
    args += ["--params", str(ROOT / "params.yaml")]
    (tmp_path / "owners.yaml").write_text(
        re.sub(r"(?m)^(  (\w+)): -?\d+$", lambda m: f"{m.group(1)}: {-1 - len(m.group(2))}",
               (tmp_path / "owners.yaml").read_text())
    )  # fmt: skip
    assert policy.codeowners_cli(["--write", "--tier", "high", *args]) == 0
    assert "the high tier's ruleset requires model_risk, platform" in capsys.readouterr().err
    assert policy.codeowners_cli(["--write", "--tier", "medium", *args]) == 0
    assert "the medium tier's ruleset requires model_risk (" in capsys.readouterr().err
    assert policy.codeowners_cli(["--write", "--tier", "low", *args]) == 0
    err = capsys.readouterr().err
    assert "are still placeholders" in err and "ruleset requires" not in err


def test_resolve_teams_writes_the_ids_and_the_ruleset_names_them(fake_github, tmp_path, capsys):  # noqa: F811
    owners = governance_copy(tmp_path)
    teams = team_handles(owners)
    ids = {"model_risk": 4101, "data": 4102, "platform": 4103}
    fake_github.teams = {teams[role]: team_id for role, team_id in ids.items()}
    before = owners.read_text()

    assert policy.codeowners_cli(["--resolve-teams"]) == 0, capsys.readouterr().err
    assert yaml.safe_load(owners.read_text())["team_ids"] == {
        "model_risk": 4101,
        "data": 4102,
        "platform": 4103,
    }
    # only the ids changed: comments and everything else kept
    changed = [
        (a, b) for a, b in zip(before.splitlines(), owners.read_text().splitlines(), strict=True) if a != b
    ]
    assert [b.split(":")[0].strip() for _, b in changed] == ["model_risk", "data", "platform"]
    requests = fake_github.calls("GET", r"^/orgs/")
    assert [r["path"] for r in requests] == [
        "/orgs/{}/teams/{}".format(*teams[role].split("/")) for role in ("model_risk", "data", "platform")
    ]
    assert {r["auth"] for r in requests} == {"Bearer ghs_workflow_token"}
    ruleset = json.loads((tmp_path / "governance/ruleset.json").read_text())
    pull = next(r["parameters"] for r in ruleset["rules"] if r["type"] == "pull_request")
    assert [e["reviewer"]["id"] for e in pull["required_reviewers"]] == [4101, 4103]  # high: risk, platform
    capsys.readouterr()
    assert policy.codeowners_cli(["--check"]) == 0
    assert "placeholder" not in capsys.readouterr().err


def test_a_team_that_does_not_exist_or_cannot_be_read_is_named(fake_github, tmp_path, capsys):  # noqa: F811
    owners = governance_copy(tmp_path)
    before = owners.read_text()
    teams = team_handles(owners)
    fake_github.teams = {teams["model_risk"]: 4101, teams["data"]: 4102}  # no platform team
    assert policy.codeowners_cli(["--resolve-teams"]) == 2
    err = capsys.readouterr().err
    assert f"team @{teams['platform']} (teams.platform) does not exist, or the token cannot see it" in err
    assert f"@{teams['model_risk']} " not in err and owners.read_text() == before  # nothing written

    fake_github.deny = {"GET"}
    assert policy.codeowners_cli(["--resolve-teams"]) == 2
    err = capsys.readouterr().err
    assert f"the token cannot read team @{teams['model_risk']} (teams.model_risk): 403" in err
    assert owners.read_text() == before


def test_resolve_teams_takes_the_gh_cli_token_or_says_it_has_none(fake_github, tmp_path, monkeypatch, capsys):  # noqa: F811
    teams = team_handles(governance_copy(tmp_path))
    fake_github.teams = {teams["model_risk"]: 1, teams["data"]: 2, teams["platform"]: 3}
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert policy.codeowners_cli(["--resolve-teams"]) == 2
    assert "set GITHUB_TOKEN or log in with `gh auth login`" in capsys.readouterr().err

    gh = tmp_path / "bin/gh"
    gh.parent.mkdir()
    gh.write_text("#!/bin/sh\n[ \"$1 $2\" = 'auth token' ] && echo gho_from_gh_cli\n")
    gh.chmod(0o755)
    assert policy.codeowners_cli(["--resolve-teams"]) == 0, capsys.readouterr().err
    assert {r["auth"] for r in fake_github.calls("GET", r"^/orgs/")} == {"Bearer gho_from_gh_cli"}


def test_team_ids_are_written_into_an_owners_file_without_them(tmp_path):
    from german_credit_scoring.governance.owners import write_team_ids

    owners = tmp_path / "owners.yaml"
    owners.write_text("teams: {risk: '@org/risk', ops: '@org/ops'}  # two teams\ndefault: [ops]\n")
    write_team_ids(owners, {"risk": 7, "ops": 8})
    assert load_teams(owners)[1] == {"risk": 7, "ops": 8}
    write_team_ids(owners, {"ops": 9})
    assert load_teams(owners)[1] == {"risk": 7, "ops": 9} and "# two teams" in owners.read_text()
    owners.write_text(owners.read_text().replace("ops: 9", "ops: 0"))
    with pytest.raises(policy.SettingsError, match=r"team_ids\.ops must be GitHub's team id"):
        load_teams(owners)

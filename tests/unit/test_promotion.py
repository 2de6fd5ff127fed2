"""Promotion and rollback as pull requests, their checks, and the audit record at merge time.

A stand-in for GitHub's REST API runs on 127.0.0.1 (branches holding files, pull requests, reviews,
team memberships), so the commands are exercised over real HTTP exactly as in Actions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest
import yaml

from german_credit_scoring.governance import audit, promotion
from german_credit_scoring.governance.production import Entry, Production, load_production, render_production

ROOT = Path(__file__).resolve().parents[2]
REPO = "octo-test/stand-in"  # a stand-in repository, never renamed with the project
TEAMS = yaml.safe_load((ROOT / "governance/owners.yaml").read_text())["teams"]


class StandInGitHub:
    """Branches of files, pull requests with reviews, team memberships; every request recorded."""

    def __init__(self) -> None:
        self.branches: dict[str, dict[str, str]] = {"main": {}}
        self.pulls: list[dict] = []
        self.reviews: dict[int, list[dict]] = {}
        self.members: dict[str, set[str]] = {}  # "@org/team" -> logins
        self.commit_pulls: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str]] = []

    def sha(self, branch: str) -> str:
        return hashlib.sha1(json.dumps(self.branches[branch], sort_keys=True).encode()).hexdigest()

    def handle(self, method: str, raw: str, body):
        url = urlparse(raw)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = unquote(url.path)
        self.requests.append((method, path))
        if m := re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", path):
            team = f"@{m.group(1)}/{m.group(2)}"
            if m.group(3) in self.members.get(team, set()):
                return 200, {"state": "active", "role": "member"}
            return 404, {"message": "Not Found"}
        prefix = f"/repos/{REPO}/"
        assert path.startswith(prefix), path
        route = path[len(prefix) :]
        if m := re.fullmatch(r"git/refs?/heads/(.+)", route):
            branch = m.group(1)
            if branch not in self.branches:
                return 404, {"message": "Not Found"}
            if method == "DELETE":
                del self.branches[branch]
                return 204, None
            return 200, {"ref": f"refs/heads/{branch}", "object": {"sha": self.sha(branch)}}
        if route == "git/refs" and method == "POST":
            name = body["ref"].removeprefix("refs/heads/")
            if name in self.branches:
                return 422, {"message": "Reference already exists"}
            source = next(b for b in self.branches if self.sha(b) == body["sha"])
            self.branches[name] = dict(self.branches[source])
            return 201, {"ref": body["ref"]}
        if m := re.fullmatch(r"contents/(.+)", route):
            file = m.group(1)
            branch = query.get("ref") or (body or {}).get("branch") or "main"
            files = self.branches[branch]
            blob = hashlib.sha1(files[file].encode()).hexdigest() if file in files else None
            if method == "GET":
                if file not in files:
                    return 404, {"message": "Not Found"}
                return 200, {"sha": blob, "content": base64.b64encode(files[file].encode()).decode()}
            if body.get("sha") != blob:
                return 409, {"message": f"{file} does not match {body.get('sha')}"}
            files[file] = base64.b64decode(body["content"]).decode()
            return 200, {"content": {"sha": hashlib.sha1(files[file].encode()).hexdigest()}}
        if route == "pulls" and method == "GET":
            head = query.get("head", "").split(":", 1)[-1]
            found = [
                p for p in self.pulls if p["state"] == query.get("state", "open") and p["head"]["ref"] == head
            ]
            return 200, found
        if route == "pulls" and method == "POST":
            number = len(self.pulls) + 1
            pull = {"number": number, "state": "open", "title": body["title"], "body": body["body"],
                    "head": {"ref": body["head"]}, "base": {"ref": body["base"]}, "labels": [],
                    "html_url": f"https://github.test/{REPO}/pull/{number}", "merged_at": None}  # fmt: skip
            self.pulls.append(pull)
            return 201, pull
        if m := re.fullmatch(r"pulls/(\d+)", route):
            pull = self.pulls[int(m.group(1)) - 1]
            pull.update(body)
            return 200, pull
        if m := re.fullmatch(r"issues/(\d+)/labels", route):
            self.pulls[int(m.group(1)) - 1]["labels"] += body["labels"]
            return 200, []
        if m := re.fullmatch(r"pulls/(\d+)/reviews", route):
            return 200, self.reviews.get(int(m.group(1)), [])
        if m := re.fullmatch(r"commits/([0-9a-f]+)/pulls", route):
            return 200, self.commit_pulls.get(m.group(1), [])
        return 404, {"message": f"no route {method} {route}"}

    # -- what a merge does
    def merge(self, number: int, sha: str) -> None:
        pull = self.pulls[number - 1]
        pull.update(state="closed", merged_at="2026-12-01T23:30:00Z")
        self.branches["main"] = dict(self.branches[pull["head"]["ref"]])
        self.commit_pulls[sha] = [pull]

    def review(self, number: int, login: str, state: str = "APPROVED") -> None:
        self.reviews.setdefault(number, []).append(
            {
                "user": {"login": login},
                "state": state,
                "submitted_at": "2026-12-01T23:20:00Z",
                "commit_id": "abc",
            }
        )


@pytest.fixture
def github(monkeypatch):
    fake = StandInGitHub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = fake.handle(self.command, self.path, body)
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    monkeypatch.setenv("GITHUB_TOKEN", "test-token")
    yield fake
    server.shutdown()
    server.server_close()


def gate_result(version: str, passed: bool = True, skip_regression: bool = False) -> dict:
    kinds = ["metric", "fairness", "regression", "latency", "size"]
    checks = [
        {"name": f"{k} check", "kind": k, "passed": True, "status": "pass", "detail": "", "value": None}
        for k in kinds
    ]
    if skip_regression:
        checks[2].update(status="skipped", detail="not checked: no production baseline found on origin/main")
    if not passed:
        checks[0].update(passed=False, status="fail")
    return {
        "passed": passed,
        "model_version": version,
        "risk_tier": "high",
        "mandatory": kinds,
        "checks": checks,
    }


@pytest.fixture
def project(tmp_path, monkeypatch, github):
    """A git project on main with governance files, an approved model and its gate result."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "governance", tmp_path / "governance")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "serving/k8s", tmp_path / "serving/k8s")
    (tmp_path / "governance/audit.jsonl").unlink(missing_ok=True)
    set_model(tmp_path, "v1")
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "main"]):
        subprocess.run(["git", *cmd], check=True, capture_output=True,
                       env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                            "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"})  # fmt: skip
    github.branches["main"]["governance/production.yaml"] = (
        tmp_path / "governance/production.yaml"
    ).read_text()
    return tmp_path


def set_model(root: Path, version: str, passed: bool = True, skip_regression: bool = False) -> None:
    model = root / "models/approved"
    model.mkdir(parents=True, exist_ok=True)
    (model / "model.joblib").write_bytes(f"model {version}".encode())
    (model / "model.json").write_text(json.dumps({"version": version}))
    (root / "metrics").mkdir(exist_ok=True)
    (root / "metrics/gate.json").write_text(json.dumps(gate_result(version, passed, skip_regression)))


def take(github: StandInGitHub, root: Path, branch: str) -> None:
    """Check out what the pull request's branch holds (the workflow's checkout)."""
    for name, text in github.branches[branch].items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def promote_and_merge(
    github, root: Path, version: str, sha: str, approvers=("@risk-ann", "@plat-bob")
) -> int:
    set_model(root, version)
    assert (
        promotion.promote_cli(["--version", version, "--image", f"ghcr.io/acme/credit@sha256:{'a' * 64}"])
        == 0
    )
    number = len(github.pulls)
    for login in approvers:
        github.review(number, login.lstrip("@"))
    github.merge(number, sha)
    take(github, root, "main")
    return number


def test_promote_opens_one_pull_request_that_changes_only_production_yaml(project, github):
    assert promotion.promote_cli(["--version", "v1", "--reason", "first release"]) == 0
    (pull,) = github.pulls
    assert (
        pull["head"]["ref"] == "promote/v1"
        and pull["base"]["ref"] == "main"
        and pull["labels"] == ["promotion"]
    )
    assert "Promotion" in pull["body"] and "Risk tier **high**" in pull["body"]
    branch = github.branches["promote/v1"]
    assert set(branch) == {"governance/production.yaml", "serving/k8s/kustomization.yaml"}
    state = Production.model_validate(yaml.safe_load(branch["governance/production.yaml"]))
    assert state.current.model_version == "v1" and state.history == []
    assert state.current.model_digest == "sha256:" + hashlib.sha256(b"model v1").hexdigest()
    # again: the same pull request is refreshed, not a second one
    assert promotion.promote_cli(["--version", "v1", "--reason", "first release"]) == 0
    assert len(github.pulls) == 1


@pytest.mark.parametrize(
    ("version", "kwargs", "message"),
    [
        ("v2", {}, "metrics/gate.json is for model 'v1', not 'v2'"),
        ("v1", {"passed": False}, "the gate failed for v1: metric check"),
        (
            "v1",
            {"skip_regression": True},
            "mandatory check 'regression check' (high tier) did not pass: skipped",
        ),
    ],
)
def test_promotion_missing_a_mandatory_check_is_refused_naming_it(
    project, github, capsys, version, kwargs, message
):
    set_model(project, "v1", **kwargs)
    assert promotion.promote_cli(["--version", version]) == 1
    assert message in capsys.readouterr().err
    assert github.pulls == []


def test_low_tier_promotes_what_high_refuses(project, github):
    set_model(project, "v1", skip_regression=True)
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("risk_tier: high", "risk_tier: low"))
    assert promotion.promote_cli(["--version", "v1"]) == 0


def test_check_needs_the_named_model_risk_approver_from_the_api(project, github, capsys):
    github.members[TEAMS["model_risk"]] = {"risk-ann"}
    assert promotion.promote_cli(["--version", "v1"]) == 0
    take(github, project, "promote/v1")
    args = ["--base-ref", "main", "--pull-request", "1"]
    github.review(1, "plat-bob")
    assert promotion.check_cli(args) == 1
    assert f"needs an approving review from a member of {TEAMS['model_risk']}" in capsys.readouterr().err
    github.review(1, "risk-ann")
    assert promotion.check_cli(args) == 0
    github.review(1, "risk-ann", "CHANGES_REQUESTED")  # the latest review of a person counts
    assert promotion.check_cli(args) == 1


def test_check_refuses_a_hand_edited_history_and_a_model_that_is_not_the_one_named(project, github, capsys):
    promote_and_merge(github, project, "v1", "1" * 40)
    subprocess.run(["git", "commit", "-qam", "v1 in production"], check=True, capture_output=True)
    state = load_production()
    edited = state.promote(state.current.model_copy(update={"model_version": "v9"}))
    (project / "governance/production.yaml").write_text(render_production(edited))
    assert promotion.check_cli(["--base-ref", "main", "--pull-request", "1"]) == 1
    assert "v9" in capsys.readouterr().err  # the gate result is for v1, and no model v9 exists
    invented = state.current.model_copy(update={"model_version": "v0"})  # a past that never ran
    forged = Production(current=state.current, history=[invented])
    (project / "governance/production.yaml").write_text(render_production(forged))
    assert promotion.check_cli(["--base-ref", "main"]) == 1
    assert "history may not be edited" in capsys.readouterr().err


def test_rollback_restores_the_previous_entry_exactly(project, github):
    promote_and_merge(github, project, "v1", "1" * 40)
    before_v2 = (project / "governance/production.yaml").read_text()
    promote_and_merge(github, project, "v2", "2" * 40)
    assert load_production().current.model_version == "v2"

    assert promotion.rollback_cli(["--reason", "v2 misbehaves"]) == 0
    pull = github.pulls[-1]
    assert pull["head"]["ref"] == "rollback/v1" and "v2 misbehaves" in pull["body"]
    rolled = Production.model_validate(
        yaml.safe_load(github.branches["rollback/v1"]["governance/production.yaml"])
    )
    assert rolled == Production.model_validate(yaml.safe_load(before_v2))
    assert github.branches["rollback/v1"]["governance/production.yaml"] == before_v2  # byte for byte


def test_nothing_to_roll_back_to_is_a_clear_refusal(project, github, capsys):
    assert promotion.rollback_cli([]) == 1
    assert "no earlier entry to roll back to" in capsys.readouterr().err


def test_merge_records_approvers_from_the_reviews_in_a_hash_chained_trail(project, github, capsys):
    promote_and_merge(github, project, "v1", "1" * 40, approvers=("@risk-ann", "@plat-bob"))
    assert promotion.audit_record_cli(["--sha", "1" * 40]) == 0
    promote_and_merge(github, project, "v2", "2" * 40, approvers=("@risk-cy",))
    github.review(2, "plat-dee", "CHANGES_REQUESTED")
    assert promotion.audit_record_cli(["--sha", "2" * 40]) == 0
    trail = github.branches["audit"]["governance/audit.jsonl"]
    entries = [json.loads(line) for line in trail.splitlines()]
    assert [(e["action"], e["model_version"], e["replaced"]) for e in entries] == [
        ("promote", "v1", None),
        ("promote", "v2", "v1"),
    ]
    assert [a["login"] for a in entries[0]["approvers"]] == ["plat-bob", "risk-ann"]
    assert [a["login"] for a in entries[1]["approvers"]] == ["risk-cy"]  # changes requested is no approval
    assert entries[1]["prev_hash"] == entries[0]["hash"] and entries[1]["pull_request"] == 2
    audit.verify_chain(entries)

    # mlops audit prints a version's history from the trail
    local = project / "governance/audit.jsonl"
    local.write_text(trail)
    capsys.readouterr()
    assert audit.audit_cli(["v1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "promote v1" in out[0] and "risk-ann" in out[0] and "replaced v1" in out[1]


def test_a_commit_that_is_not_a_merged_pull_request_is_not_recorded(project, github, capsys):
    assert promotion.audit_record_cli(["--sha", "f" * 40]) == 1
    assert "did not come from a merged pull request" in capsys.readouterr().err


# --- the audit trail itself ------------------------------------------------------------------------------


def trail(tmp_path: Path, n: int = 3) -> Path:
    path = tmp_path / "audit.jsonl"
    for i in range(n):
        audit.append({"action": "promote", "model_version": f"v{i}", "approvers": [{"login": f"u{i}"}]}, path)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: [lines[0].replace('"u0"', '"mallory"'), *lines[1:]], r":1: hash does not match"),
        (lambda lines: [lines[0], *lines[2:]], r":2: seq is 3, expected 2"),
        (lambda lines: [lines[1], lines[0], lines[2]], r":1: seq is 2, expected 1"),
    ],
)
def test_any_edit_to_a_past_entry_is_caught(tmp_path, edit, message):
    path = trail(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    with pytest.raises(audit.AuditError, match=message):
        audit.verify_chain(audit.read_entries(path), str(path))


def test_a_recomputed_chain_still_fails_the_append_only_check_against_main(tmp_path, capsys):
    path = trail(tmp_path)
    on_main = path.read_text()
    # rewrite entry 1 and recompute every hash: the chain is valid again, but main's prefix changed
    entries = audit.read_entries(path)
    entries[0]["approvers"] = [{"login": "mallory"}]
    rebuilt = tmp_path / "rebuilt.jsonl"
    for entry in entries:
        audit.append({k: v for k, v in entry.items() if k not in {"seq", "prev_hash", "hash"}}, rebuilt)
    audit.verify_chain(audit.read_entries(rebuilt))
    with pytest.raises(audit.AuditError, match=r":1: a past entry was changed or removed"):
        audit.check_append_only(rebuilt, on_main)
    audit.append({"action": "rollback", "model_version": "v1"}, path)
    audit.check_append_only(path, on_main)  # appending is fine


def test_audit_check_cli_against_a_git_ref(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = trail(tmp_path / "governance", 2)
    path.rename(tmp_path / "governance/audit.jsonl")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}  # fmt: skip
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "trail"]):
        subprocess.run(["git", *cmd], check=True, capture_output=True, env=env)
    assert audit.audit_cli(["--check", "--base", "main"]) == 0
    text = (tmp_path / "governance/audit.jsonl").read_text()
    (tmp_path / "governance/audit.jsonl").write_text(text.replace('"v0"', '"v7"'))
    assert audit.audit_cli(["--check", "--base", "main"]) == 1
    assert "append-only" in capsys.readouterr().err


def test_production_entries_are_typed():
    with pytest.raises(ValueError, match="model_digest"):
        Entry(model_version="v1", model_digest="md5:abc", risk_tier="high", gate_passed=True)


@pytest.mark.e2e  # a real MLflow registry (embedded SQLite store): ~40 s of migrations
def test_merge_moves_the_mlflow_champion_alias_to_the_production_version(
    project, github, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    from mlflow import MlflowClient

    client = MlflowClient()
    name = "stand-in-model"  # any registered model name: not the project's, so generation moves nothing
    client.create_registered_model(name)
    for version in ("v1", "v2"):  # what main.yml's `mlops register` leaves: one registry version per model
        client.create_model_version(name, f"file:///models/{version}", tags={"model_version": version})
    promote_and_merge(github, project, "v1", "1" * 40)
    assert promotion.champion_cli(["--name", name]) == 0
    assert client.get_model_version_by_alias(name, "champion").tags["model_version"] == "v1"
    promote_and_merge(github, project, "v2", "2" * 40)
    assert promotion.champion_cli(["--name", name]) == 0
    assert client.get_model_version_by_alias(name, "champion").tags["model_version"] == "v2"
    promotion.rollback_cli([])
    github.merge(len(github.pulls), "3" * 40)
    take(github, project, "main")
    assert promotion.champion_cli(["--name", name]) == 0
    assert client.get_model_version_by_alias(name, "champion").tags["model_version"] == "v1"


def test_check_verifies_the_signed_release_when_given(project, github, capsys):
    from german_credit_scoring.governance import lineage
    from tests.unit.test_lineage import key_pair

    github.members[TEAMS["model_risk"]] = {"risk-ann"}
    assert promotion.promote_cli(["--version", "v1"]) == 0
    take(github, project, "promote/v1")
    github.review(1, "risk-ann")
    (project / "models/lineage.json").write_text(json.dumps(lineage.build_manifest()))
    private, public = key_pair(project)
    assert lineage.sign_cli(["--private-key", str(private)]) == 0
    args = [
        "--base-ref",
        "main",
        "--pull-request",
        "1",
        "--manifest",
        "models/lineage.json",
        "--public-key",
        str(public),
    ]
    assert promotion.check_cli(args) == 0
    (project / "models/approved/model.json").write_text(json.dumps({"version": "v1", "note": "edited"}))
    assert promotion.check_cli(args) == 1
    assert "models/approved/model.json: bytes changed" in capsys.readouterr().err


def test_the_tiers_review_interval_makes_production_overdue(project, github, capsys):
    promote_and_merge(github, project, "v1", "1" * 40)  # merged 2026-12-01, high tier: every 90 days
    assert promotion.audit_record_cli(["--sha", "1" * 40]) == 0
    (project / "governance/audit.jsonl").write_text(github.branches["audit"]["governance/audit.jsonl"])
    assert audit.audit_cli(["--overdue", "--today", "2027-02-28"]) == 0
    assert audit.audit_cli(["--overdue", "--today", "2027-03-02"]) == 1
    assert "every 90 days: overdue by 1 days" in capsys.readouterr().err

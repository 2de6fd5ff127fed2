"""`mlops comment` and `mlops retrain-pr` against a real HTTP stand-in for the GitHub REST API.

The stand-in runs on 127.0.0.1 in a thread, keeps comments, pull requests, labels, refs and files in
memory and records every request, so the tests see exactly what the commands would do to GitHub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from german_credit_scoring.gitops import github
from german_credit_scoring.gitops.github import COMMENT_LIMIT, comment_cli, retrain_pr_cli

# a stand-in repository, not the project's own name: nothing here may move when a project is generated
OWNER_REPO = "octo-test/stand-in"


class FakeGitHub:
    """In-memory GitHub: just the endpoints the project calls, with GitHub's pagination."""

    def __init__(self) -> None:
        self.comments: dict[int, list[dict]] = {}
        self.pulls: list[dict] = []
        self.refs: dict[str, str] = {"main": "sha-main"}
        self.files: dict[tuple[str, str], bytes] = {}
        self.dispatches: list[dict] = []
        self.requests: list[dict] = []
        self.deny: set[str] = set()  # HTTP methods answered with 403 (a fork's read-only token)
        self.next_id = 1000
        self.page_size: int | None = None  # force a smaller page than per_page asks for
        self.refuse_ref_moves = False  # GitHub refusing PATCH git/refs when workflows changed on base
        self.reviews: dict[int, list[dict]] = {}  # pull request -> its reviews
        self.members: dict[str, set[str]] = {}  # "@org/team" -> active members' logins
        self.teams: dict[str, int] = {}  # "org/slug" -> the team's id (GET /orgs/{org}/teams/{slug})
        self.merge_refusal: str | None = None  # the ruleset refusing a merge (405 and this message)

    # -- helpers for tests
    def add_comment(self, number: int, body: str, user: str = "someone") -> dict:
        self.next_id += 1
        comment = {"id": self.next_id, "body": body, "user": {"login": user}}
        self.comments.setdefault(number, []).append(comment)
        return comment

    def calls(self, method: str, pattern: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and re.search(pattern, r["path"])]

    def open_pulls(self) -> list[dict]:
        return [p for p in self.pulls if p["state"] == "open"]

    # -- the HTTP side
    def handle(self, method: str, raw_path: str, body, headers) -> tuple[int, object, dict]:
        parsed = urlparse(raw_path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        path = parsed.path
        self.requests.append(
            {
                "method": method,
                "path": path,
                "query": query,
                "body": body,
                "auth": headers.get("Authorization"),
            }
        )
        if method in self.deny:
            return 403, {"message": "Resource not accessible by integration"}, {}
        if (m := re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)", path)) and method == "GET":
            key = f"{m.group(1)}/{m.group(2)}"
            if key not in self.teams:
                return 404, {"message": "Not Found"}, {}
            return 200, {"id": self.teams[key], "slug": m.group(2), "organization": {"login": m.group(1)}}, {}
        if (m := re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", path)) and method == "GET":
            if unquote(m.group(3)) in self.members.get(f"@{m.group(1)}/{m.group(2)}", set()):
                return 200, {"state": "active", "role": "member"}, {}
            return 404, {"message": "Not Found"}, {}
        prefix = f"/repos/{OWNER_REPO}/"
        if not path.startswith(prefix):
            return 404, {"message": "Not Found"}, {}
        route = path[len(prefix) :]

        if m := re.fullmatch(r"issues/(\d+)/comments", route):
            number = int(m.group(1))
            if method == "GET":
                return self._page(self.comments.get(number, []), query, path)
            if method == "POST":
                return 201, self.add_comment(number, body["body"], user="github-actions[bot]"), {}
        if (m := re.fullmatch(r"issues/comments/(\d+)", route)) and method == "PATCH":
            for comment in (c for cs in self.comments.values() for c in cs):
                if comment["id"] == int(m.group(1)):
                    comment["body"] = body["body"]
                    return 200, comment, {}
            return 404, {"message": "Not Found"}, {}
        if route == "pulls" and method == "GET":
            owner, _, branch = query.get("head", ":").partition(":")
            found = [
                p
                for p in self.pulls
                if p["state"] == query.get("state", "open")
                and (not branch or (p["head"]["ref"] == branch and owner == OWNER_REPO.split("/")[0]))
            ]
            return self._page(found, query, path)
        if route == "pulls" and method == "POST":
            if any(p["head"]["ref"] == body["head"] for p in self.open_pulls()):
                return 422, {"message": "A pull request already exists"}, {}
            number = len(self.pulls) + 1
            pull = {
                "number": number,
                "state": "open",
                "title": body["title"],
                "body": body["body"],
                "head": {"ref": body["head"]},
                "base": {"ref": body["base"]},
                "labels": [],
            }
            self.pulls.append(pull)
            return 201, pull, {}
        if (m := re.fullmatch(r"pulls/(\d+)", route)) and method == "GET":
            if not 0 < int(m.group(1)) <= len(self.pulls):
                return 404, {"message": "Not Found"}, {}
            return 200, self.pulls[int(m.group(1)) - 1], {}
        if (m := re.fullmatch(r"pulls/(\d+)/reviews", route)) and method == "GET":
            return self._page(self.reviews.get(int(m.group(1)), []), query, path)
        if (m := re.fullmatch(r"pulls/(\d+)/merge", route)) and method == "PUT":
            return self._merge(int(m.group(1)), body or {})
        if (m := re.fullmatch(r"pulls/(\d+)", route)) and method == "PATCH":
            pull = self.pulls[int(m.group(1)) - 1]
            pull.update(body)
            return 200, pull, {}
        if (m := re.fullmatch(r"issues/(\d+)/labels", route)) and method == "POST":
            pull = self.pulls[int(m.group(1)) - 1]
            pull["labels"] = sorted(set(pull["labels"]) | set(body["labels"]))
            return 200, [{"name": n} for n in pull["labels"]], {}
        if (m := re.fullmatch(r"git/ref/heads/(.+)", route)) and method == "GET":
            branch = unquote(m.group(1))
            if branch not in self.refs:
                return 404, {"message": "Not Found"}, {}
            return 200, {"ref": f"refs/heads/{branch}", "object": {"sha": self.refs[branch]}}, {}
        if route == "git/refs" and method == "POST":
            branch = body["ref"].removeprefix("refs/heads/")
            if branch in self.refs:
                return 422, {"message": "Reference already exists"}, {}
            self.refs[branch] = body["sha"]
            for (ref, file_path), content in list(self.files.items()):
                if ref == "main":
                    self.files[(branch, file_path)] = content
            return 201, {"ref": body["ref"]}, {}
        if (m := re.fullmatch(r"git/refs/heads/(.+)", route)) and method == "DELETE":
            branch = unquote(m.group(1))
            self.refs.pop(branch, None)
            for key in [k for k in self.files if k[0] == branch]:
                del self.files[key]
            return 204, None, {}
        if (m := re.fullmatch(r"git/refs/heads/(.+)", route)) and method == "PATCH":
            if self.refuse_ref_moves:
                return 422, {"message": "refusing to allow a GitHub App to create or update workflow"}, {}
            branch = unquote(m.group(1))
            self.refs[branch] = body["sha"]
            for key in [k for k in self.files if k[0] == branch]:
                del self.files[key]
            return 200, {"ref": f"refs/heads/{branch}"}, {}
        if m := re.fullmatch(r"contents/(.+)", route):
            file_path = unquote(m.group(1))
            if method == "GET":
                key = (query.get("ref", "main"), file_path)
                if key not in self.files:
                    return 404, {"message": "Not Found"}, {}
                content = self.files[key]
                sha = hashlib.sha1(content).hexdigest()
                return 200, {"sha": sha, "content": base64.b64encode(content).decode()}, {}
            if method == "PUT":
                key = (body["branch"], file_path)
                if key in self.files and body.get("sha") != hashlib.sha1(self.files[key]).hexdigest():
                    return 409, {"message": "sha does not match"}, {}
                self.files[key] = base64.b64decode(body["content"])
                self.refs[body["branch"]] = f"sha-{len(self.requests)}"
                return 200, {"commit": {"sha": self.refs[body["branch"]]}}, {}
        if (m := re.fullmatch(r"actions/workflows/([^/]+)/dispatches", route)) and method == "POST":
            self.dispatches.append({"workflow": unquote(m.group(1)), **body})
            return 204, None, {}
        return 404, {"message": f"stand-in has no route for {method} {route}"}, {}

    def _merge(self, number: int, body: dict) -> tuple[int, object, dict]:
        """PUT pulls/{n}/merge as GitHub answers it: 405 when not mergeable, 409 when the head moved."""
        if not 0 < number <= len(self.pulls):
            return 404, {"message": "Not Found"}, {}
        pull = self.pulls[number - 1]
        if pull["state"] != "open":
            return 405, {"message": "Pull Request is not mergeable"}, {}
        if self.merge_refusal:
            return 405, {"message": self.merge_refusal}, {}
        if body.get("sha") and body["sha"] != pull["head"].get("sha"):
            return 409, {"message": "Head branch was modified. Review and try the merge again."}, {}
        head, base = pull["head"]["ref"], pull["base"]["ref"]
        for (ref, file_path), content in list(self.files.items()):
            if ref == head:
                self.files[(base, file_path)] = content
        sha = hashlib.sha1(f"merge {number} {pull['head'].get('sha')}".encode()).hexdigest()
        self.refs[base] = sha
        pull.update(state="closed", merged=True, merged_at="2026-12-02T00:00:00Z", merge_commit_sha=sha)
        return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}, {}

    def _page(self, items: list, query: dict, path: str) -> tuple[int, object, dict]:
        size = self.page_size or int(query.get("per_page", 30))
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * size : page * size]
        headers = {}
        if page * size < len(items):
            rest = {k: v for k, v in query.items() if k != "page"}
            params = "&".join(f"{k}={v}" for k, v in rest.items())
            headers["Link"] = f'<{self.base_url}{path}?{params}&page={page + 1}>; rel="next"'
        return 200, chunk, headers


@pytest.fixture
def fake_github(monkeypatch, tmp_path):
    """A running stand-in and an Actions-like environment pointing at it."""
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload, headers = fake.handle(self.command, self.path, body, self.headers)
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()

    summary = tmp_path / "step_summary.md"
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}, "number": 7}))
    monkeypatch.setenv("GITHUB_API_URL", fake.base_url)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_workflow_token")
    monkeypatch.setenv("GITHUB_REPOSITORY", OWNER_REPO)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("GH_APP_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_REF_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    fake.summary = summary
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- mlops comment


def test_first_run_creates_one_comment_and_second_run_updates_it(fake_github, tmp_path):
    # given a pull request with an unrelated human comment
    fake_github.add_comment(7, "Looks good to me")
    body = write(tmp_path / "train.md", "## train\n\nAUC 0.71\n")

    # when the train stage comments twice (two pushes) with different results
    assert comment_cli(["--marker", "train", "--body-file", str(body)]) == 0
    write(body, "## train\n\nAUC 0.74\n")
    assert comment_cli(["--marker", "train", "--body-file", str(body)]) == 0

    # then there is one train comment, updated in place, carrying the hidden marker and the new text
    ours = [c for c in fake_github.comments[7] if "<!-- mlops:train -->" in c["body"]]
    assert len(ours) == 1
    assert "AUC 0.74" in ours[0]["body"] and "AUC 0.71" not in ours[0]["body"]
    assert len(fake_github.calls("POST", r"/issues/7/comments$")) == 1
    assert len(fake_github.calls("PATCH", r"/issues/comments/\d+$")) == 1
    assert fake_github.comments[7][0]["body"] == "Looks good to me"
    # and the token was sent
    assert fake_github.requests[0]["auth"] == "Bearer ghs_workflow_token"


def test_each_stage_keeps_its_own_comment(fake_github, tmp_path):
    body = write(tmp_path / "b.md", "report\n")
    for stage in ["validate", "train", "validate"]:
        assert comment_cli(["--marker", stage, "--body-file", str(body)]) == 0
    assert len(fake_github.comments[7]) == 2


def test_unchanged_body_is_not_patched(fake_github, tmp_path):
    body = write(tmp_path / "b.md", "same\n")
    comment_cli(["--marker", "gate", "--body-file", str(body)])
    comment_cli(["--marker", "gate", "--body-file", str(body)])
    assert fake_github.calls("PATCH", r"comments") == []


def test_marker_found_on_a_later_page(fake_github, tmp_path, capsys):
    # given 250 comments with ours as the 240th, and a server serving 100 per page
    for i in range(250):
        fake_github.add_comment(7, "<!-- mlops:evaluate -->\nold" if i == 239 else f"chatter {i}")
    body = write(tmp_path / "e.md", "new evaluation\n")

    # when the evaluate stage comments
    assert comment_cli(["--marker", "evaluate", "--body-file", str(body)]) == 0

    # then it followed the Link header to page 3 and updated the old comment instead of adding one
    pages = [r["query"].get("page", "1") for r in fake_github.calls("GET", r"/issues/7/comments$")]
    assert pages == ["1", "2", "3"]
    assert len(fake_github.comments[7]) == 250
    assert "new evaluation" in fake_github.comments[7][239]["body"]
    assert "updated comment" in capsys.readouterr().out


def test_fork_token_403_is_a_clear_warning_and_the_summary_still_gets_the_report(
    fake_github, tmp_path, capsys
):
    # given a fork's read-only token: reads work, writes are refused
    fake_github.deny = {"POST", "PATCH"}
    body = write(tmp_path / "gate.md", "## gate\n\n❌ fail\n")

    # when the gate stage comments
    code = comment_cli(["--marker", "gate", "--body-file", str(body)])

    # then the command succeeds with a warning naming the cause, and the report is in the step summary
    assert code == 0
    err = capsys.readouterr().err
    assert "403" in err and "fork" in err and "step summary" in err
    assert "## gate" in fake_github.summary.read_text(encoding="utf-8")
    assert fake_github.comments.get(7, []) == []


def test_summary_is_appended_even_when_commenting_works(fake_github, tmp_path):
    write(fake_github.summary, "earlier step\n")
    body = write(tmp_path / "v.md", "## validate\n")
    comment_cli(["--marker", "validate", "--body-file", str(body)])
    assert fake_github.summary.read_text(encoding="utf-8") == "earlier step\n## validate\n"


def test_long_body_is_truncated_to_githubs_limit_with_a_visible_note(fake_github, tmp_path):
    body = write(tmp_path / "big.md", "x" * (COMMENT_LIMIT + 5000))
    assert comment_cli(["--marker", "fairness", "--body-file", str(body)]) == 0
    posted = fake_github.comments[7][0]["body"]
    assert len(posted) <= COMMENT_LIMIT
    assert posted.startswith("<!-- mlops:fairness -->")
    assert "Truncated" in posted and "65,536" in posted


def test_pr_number_from_option_overrides_the_event(fake_github, tmp_path):
    body = write(tmp_path / "b.md", "hi\n")
    assert comment_cli(["--marker", "train", "--body-file", str(body), "--pr", "12"]) == 0
    assert list(fake_github.comments) == [12]


def test_dispatched_run_finds_its_pull_request_by_branch(fake_github, tmp_path, monkeypatch):
    # given a run started by workflow_dispatch on the retraining branch, which has an open PR
    write(tmp_path / "event.json", json.dumps({"inputs": {}, "ref": "refs/heads/retrain/drift"}))
    monkeypatch.setenv("GITHUB_REF_NAME", "retrain/drift")
    fake_github.pulls.append(
        {
            "number": 1,
            "state": "open",
            "head": {"ref": "retrain/drift"},
            "base": {"ref": "main"},
            "labels": [],
        }
    )
    body = write(tmp_path / "b.md", "stage result\n")

    # when a stage comments, then the comment lands on that PR
    assert comment_cli(["--marker", "train", "--body-file", str(body)]) == 0
    assert list(fake_github.comments) == [1]


def test_no_pull_request_and_no_token_are_warnings_not_failures(fake_github, tmp_path, monkeypatch, capsys):
    write(tmp_path / "event.json", json.dumps({"ref": "refs/heads/main"}))
    body = write(tmp_path / "b.md", "main build\n")
    assert comment_cli(["--marker", "train", "--body-file", str(body)]) == 0
    assert "no pull request" in capsys.readouterr().err

    monkeypatch.delenv("GITHUB_TOKEN")
    assert comment_cli(["--marker", "train", "--body-file", str(body), "--pr", "3"]) == 0
    assert "GITHUB_TOKEN" in capsys.readouterr().err
    assert fake_github.comments == {}


def test_unreachable_api_is_a_warning(fake_github, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    body = write(tmp_path / "b.md", "x\n")
    assert comment_cli(["--marker", "train", "--body-file", str(body)]) == 0
    assert "cannot reach" in capsys.readouterr().err


def test_bad_marker_and_missing_body_are_usage_errors(fake_github, tmp_path, capsys):
    body = write(tmp_path / "b.md", "x\n")
    assert comment_cli(["--marker", "a b -->", "--body-file", str(body)]) == 2
    assert comment_cli(["--marker", "train", "--body-file", str(tmp_path / "missing.md")]) == 2
    assert "missing.md" in capsys.readouterr().err


# --------------------------------------------------------------------------- mlops retrain-pr


def drift_outputs(tmp_path: Path, verdict: str, report: str = "## Drift\n\nPSI 0.4 on duration\n") -> None:
    write(tmp_path / "reports" / "drift.json", json.dumps({"verdict": verdict}))
    write(tmp_path / "reports" / "drift.md", report)


RETRAIN = ["--report", "reports/drift.md", "--branch", "retrain/drift", "--dispatch-workflow", "pr.yml"]


def test_first_drift_opens_one_pr_and_second_run_updates_it(fake_github, tmp_path):
    # given drift
    drift_outputs(tmp_path, "drift")

    # when the scheduled job runs
    assert retrain_pr_cli(RETRAIN) == 0

    # then the branch exists, carries the report, and one labelled PR is open from it to main
    assert "retrain/drift" in fake_github.refs
    assert fake_github.files[("retrain/drift", "reports/drift.md")].startswith(b"## Drift")
    [pull] = fake_github.open_pulls()
    assert pull["head"]["ref"] == "retrain/drift" and pull["base"]["ref"] == "main"
    assert pull["labels"] == ["retraining"]
    assert "PSI 0.4" in pull["body"] and "<!-- mlops:retrain-pr -->" in pull["body"]
    # and the PR's checks were dispatched on the branch, since GITHUB_TOKEN's PRs start no workflows
    assert fake_github.dispatches == [{"workflow": "pr.yml", "ref": "retrain/drift"}]

    # when drift is found again next week with a new report
    drift_outputs(tmp_path, "drift", report="## Drift\n\nPSI 0.6 on duration\n")
    assert retrain_pr_cli(RETRAIN) == 0

    # then still one PR, its body refreshed, the new report committed on the same branch
    assert len(fake_github.pulls) == 1
    assert "PSI 0.6" in fake_github.pulls[0]["body"]
    assert b"PSI 0.6" in fake_github.files[("retrain/drift", "reports/drift.md")]
    assert len(fake_github.calls("POST", r"/pulls$")) == 1
    assert len(fake_github.calls("PATCH", r"/pulls/1$")) == 1


def test_no_drift_and_insufficient_data_open_nothing(fake_github, tmp_path, capsys):
    for verdict in ["no_drift", "insufficient_data"]:
        drift_outputs(tmp_path, verdict)
        assert retrain_pr_cli(RETRAIN) == 0
        assert f"`{verdict}`" in capsys.readouterr().out
    assert fake_github.requests == []
    assert fake_github.pulls == []
    assert "No retraining pull request opened" in fake_github.summary.read_text(encoding="utf-8")


def test_app_token_is_used_and_nothing_is_dispatched(fake_github, tmp_path, monkeypatch):
    # given a GitHub App installation token minted by the workflow
    monkeypatch.setenv("GH_APP_TOKEN", "ghs_app_token")
    drift_outputs(tmp_path, "drift")

    # when a retraining PR is opened
    assert retrain_pr_cli(RETRAIN) == 0

    # then every call used the App token (so pull_request workflows start) and no dispatch was needed
    assert {r["auth"] for r in fake_github.requests} == {"Bearer ghs_app_token"}
    assert fake_github.dispatches == []
    assert len(fake_github.open_pulls()) == 1


def test_data_pointer_is_committed_with_the_report(fake_github, tmp_path):
    drift_outputs(tmp_path, "drift")
    write(tmp_path / "data" / "raw" / "batch.csv.dvc", "outs:\n- md5: abc\n  path: batch.csv\n")
    assert retrain_pr_cli([*RETRAIN, "--data-pointer", "data/raw/batch.csv.dvc"]) == 0
    assert fake_github.files[("retrain/drift", "data/raw/batch.csv.dvc")].startswith(b"outs:")
    assert "data/raw/batch.csv.dvc" in fake_github.pulls[0]["body"]


def test_a_stale_branch_from_a_closed_pr_is_reset_to_base(fake_github, tmp_path):
    # given the branch is left over from a retraining PR that was closed
    fake_github.refs["retrain/drift"] = "sha-old"
    fake_github.pulls.append(
        {
            "number": 1,
            "state": "closed",
            "head": {"ref": "retrain/drift"},
            "base": {"ref": "main"},
            "labels": [],
        }
    )
    drift_outputs(tmp_path, "drift")

    # and main's workflows changed since: GitHub refuses to move the branch with PATCH git/refs
    # (the workflow token cannot have the workflows permission)
    fake_github.refuse_ref_moves = True

    # when drift is found, then the branch is deleted and made anew from main, and a new PR is opened
    assert retrain_pr_cli(RETRAIN) == 0
    assert not fake_github.calls("PATCH", r"/git/refs/heads/retrain/drift$")
    assert fake_github.calls("DELETE", r"/git/refs/heads/retrain/drift$")
    [created] = fake_github.calls("POST", r"/git/refs$")
    assert created["body"] == {"ref": "refs/heads/retrain/drift", "sha": "sha-main"}
    assert len(fake_github.open_pulls()) == 1


def test_a_report_equal_to_mains_opens_nothing_and_does_not_fail(fake_github, tmp_path, capsys):
    # given main already holds this very report (committed by an earlier retraining PR)
    drift_outputs(tmp_path, "drift")
    fake_github.files[("main", "reports/drift.md")] = (tmp_path / "reports/drift.md").read_bytes()

    # when the scheduled run finds drift again, then no PR is attempted (GitHub would answer
    # 422 "No commits between") and the run passes
    assert retrain_pr_cli(RETRAIN) == 0
    assert not fake_github.calls("POST", r"/pulls$")
    assert "no pull request to open" in capsys.readouterr().out


def test_refused_write_fails_the_retrain_job_with_a_hint(fake_github, tmp_path, capsys):
    fake_github.deny = {"POST", "PUT", "PATCH"}
    drift_outputs(tmp_path, "drift")
    assert retrain_pr_cli(RETRAIN) == 1
    err = capsys.readouterr().err
    assert "403" in err and "create pull requests" in err


def test_missing_or_malformed_verdict_is_a_usage_error(fake_github, tmp_path, capsys):
    assert retrain_pr_cli(RETRAIN) == 2
    assert "drift.json" in capsys.readouterr().err
    write(tmp_path / "reports" / "drift.json", json.dumps({"verdict": "maybe"}))
    assert retrain_pr_cli(RETRAIN) == 2


def test_next_link_parsing():
    header = '<https://x/a?page=2>; rel="next", <https://x/a?page=5>; rel="last"'
    assert github._next_link(header) == "https://x/a?page=2"
    assert github._next_link('<https://x/a?page=1>; rel="prev"') is None


def test_mlops_cli_dispatches_both_commands(fake_github, tmp_path):
    # given the real `mlops` entry point in a child process, pointed at the stand-in through the environment
    body = write(tmp_path / "b.md", "from the CLI\n")
    drift_outputs(tmp_path, "drift")
    run = [sys.executable, "-m", "german_credit_scoring.cli"]
    env = dict(os.environ)

    # when both commands run, then a comment and one PR exist
    done = subprocess.run([*run, "comment", "--marker", "cli", "--body-file", str(body)], env=env, timeout=60)
    assert done.returncode == 0
    done = subprocess.run([*run, "retrain-pr", *RETRAIN], env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0
    assert "from the CLI" in fake_github.comments[7][0]["body"]
    assert len(fake_github.open_pulls()) == 1

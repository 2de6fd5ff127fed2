"""The project's only link to GitHub: pull-request comments and the single retraining pull request.

A small REST client on the standard library (no extra dependency, no ``gh`` binary on the runner) that
reads the same environment GitHub Actions sets: ``GITHUB_API_URL``, ``GITHUB_TOKEN``,
``GITHUB_REPOSITORY``, ``GITHUB_EVENT_PATH``, ``GITHUB_STEP_SUMMARY``. Pointing ``GITHUB_API_URL`` at a
local stand-in is how the tests exercise it.

Why the shapes below:
- one comment per stage, found again by a hidden marker and edited in place, so a busy pull request
  does not collect a new comment for every push;
- a fork's pull request gets a read-only token: commenting then fails with 403/404, which is a warning,
  not a failed check, and the results still reach the run's step summary;
- drift opens at most one retraining pull request, from one fixed branch, and refreshes it afterwards;
- a pull request opened with ``GITHUB_TOKEN`` starts no ``pull_request`` workflows, so the checks are
  either triggered by using a GitHub App token or dispatched explicitly.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
COMMENT_LIMIT = 65_536  # GitHub rejects issue comments and PR bodies longer than this
TRUNCATION_NOTE = (
    "\n\n---\n> ⚠️ **Truncated:** this text was cut to fit GitHub's 65,536-character limit. "
    "The full report is in the workflow run's summary.\n"
)
MARKER_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
RETRAIN_MARKER_KEY = "retrain-pr"
USER_AGENT = "mlops-gitops"


class GitHubError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when the server could not be reached)."""

    def __init__(self, method: str, url: str, status: int, message: str) -> None:
        super().__init__(f"{method} {url} -> {status or 'no response'}: {message}")
        self.method = method
        self.url = url
        self.status = status
        self.message = message

    @property
    def permission_denied(self) -> bool:
        """403/404 (and 401) are what a fork's read-only or a missing token produce."""
        return self.status in {401, 403, 404}


class ConfigurationError(Exception):
    """The environment lacks what a command needs (repository, token, pull-request number)."""


@dataclass
class GitHub:
    """Minimal GitHub REST client: JSON in, JSON out, pagination through the ``Link`` header."""

    repository: str
    token: str | None = None
    api_url: str = DEFAULT_API_URL
    timeout: float = 30.0
    calls: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if "/" not in self.repository:
            raise ConfigurationError(f"repository must look like 'owner/name', got {self.repository!r}")
        self.api_url = self.api_url.rstrip("/")

    @classmethod
    def from_env(cls, token: str | None = None, repository: str | None = None) -> GitHub:
        repository = repository or os.environ.get("GITHUB_REPOSITORY", "")
        if not repository:
            raise ConfigurationError("GITHUB_REPOSITORY is not set (expected 'owner/name'; or pass --repo)")
        return cls(
            repository=repository,
            token=token if token is not None else (os.environ.get("GITHUB_TOKEN") or None),
            api_url=os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL,
        )

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    def repo_path(self, suffix: str) -> str:
        return f"/repos/{self.repository}/{suffix.lstrip('/')}"

    def _url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = path if path.startswith(("http://", "https://")) else f"{self.api_url}{path}"
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        return url

    def _send(self, method: str, url: str, body: Any = None) -> tuple[Any, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        request.add_header("User-Agent", USER_AGENT)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        self.calls.append((method, url))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                headers = {key.lower(): value for key, value in response.headers.items()}
        except urllib.error.HTTPError as error:
            raise GitHubError(method, url, error.code, _error_message(error)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise GitHubError(method, url, 0, f"cannot reach the GitHub API: {reason}") from None
        payload = json.loads(raw) if raw.strip() else None
        return payload, headers

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        return self._send(method, self._url(path, params), body)[0]

    def download(self, path: str) -> bytes:
        """Raw bytes (an artifact's zip): the redirect to blob storage gets no Authorization header."""
        request = urllib.request.Request(self._url(path), method="GET")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("User-Agent", USER_AGENT)
        if self.token:
            request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        self.calls.append(("GET", request.full_url))
        try:
            with urllib.request.urlopen(request, timeout=max(self.timeout, 300)) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise GitHubError("GET", request.full_url, error.code, _error_message(error)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise GitHubError("GET", request.full_url, 0, f"cannot reach the GitHub API: {reason}") from None

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Yield every item of a list endpoint, following ``Link: <...>; rel="next"``."""
        url: str | None = self._url(path, {"per_page": 100, **(params or {})})
        while url:
            payload, headers = self._send("GET", url)
            yield from payload or []
            url = _next_link(headers.get("link", ""))


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        raw = error.read()
        payload = json.loads(raw) if raw else {}
        return str(payload.get("message") or error.reason)
    except (ValueError, AttributeError, OSError):
        return str(error.reason)


def _next_link(link_header: str) -> str | None:
    for part in link_header.split(","):
        match = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', part)
        if match:
            return match.group(1)
    return None


# --------------------------------------------------------------------------- helpers shared by the CLIs


def marker_for(key: str) -> str:
    if not MARKER_PATTERN.match(key):
        raise ConfigurationError(f"marker {key!r} must use letters, digits, '.', '_' or '-' only")
    return f"<!-- mlops:{key} -->"


def fit_to_limit(text: str, limit: int = COMMENT_LIMIT) -> str:
    """Cut ``text`` to GitHub's size limit, saying so visibly at the end."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_NOTE)] + TRUNCATION_NOTE


def marked_body(key: str, body: str) -> str:
    return fit_to_limit(f"{marker_for(key)}\n{body}")


def append_step_summary(text: str) -> bool:
    """Append to the run's summary page (``$GITHUB_STEP_SUMMARY``) when running in Actions."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    return True


def warn(message: str) -> None:
    """A visible warning: an annotation on the run in Actions, a plain line elsewhere."""
    prefix = "::warning::" if os.environ.get("GITHUB_ACTIONS") == "true" else "warning: "
    print(prefix + message.replace("\n", " "), file=sys.stderr)


def pull_request_from_event(event_path: str | None) -> int | None:
    """The pull-request number of the event that started the run, if it has one."""
    if not event_path or not Path(event_path).is_file():
        return None
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except ValueError:
        return None
    if isinstance(event.get("pull_request"), dict) and event["pull_request"].get("number"):
        return int(event["pull_request"]["number"])
    issue = event.get("issue")
    if isinstance(issue, dict) and issue.get("pull_request") and issue.get("number"):
        return int(issue["number"])
    if event.get("number") and "pull_request" in event:
        return int(event["number"])
    return None


def find_open_pull_request(client: GitHub, branch: str, base: str | None = None) -> dict | None:
    params = {"head": f"{client.owner}:{branch}", "state": "open"}
    if base:
        params["base"] = base
    for pull in client.paginate(client.repo_path("pulls"), params):
        head = pull.get("head") or {}
        if head.get("ref") in (None, branch):
            return pull
    return None


def upsert_comment(client: GitHub, number: int, key: str, body: str) -> tuple[str, int]:
    """Edit the comment carrying ``key``'s marker, or create it; returns (action, comment id)."""
    marker = marker_for(key)
    text = marked_body(key, body)
    for comment in client.paginate(client.repo_path(f"issues/{number}/comments")):
        if marker in (comment.get("body") or ""):
            if comment.get("body") == text:
                return "unchanged", int(comment["id"])
            client.request("PATCH", client.repo_path(f"issues/comments/{comment['id']}"), body={"body": text})
            return "updated", int(comment["id"])
    created = client.request("POST", client.repo_path(f"issues/{number}/comments"), body={"body": text})
    return "created", int(created["id"])


# --------------------------------------------------------------------------- mlops comment


def comment_cli(argv: list[str]) -> int:
    """``mlops comment --marker KEY --body-file F [--pr N]``: create or update this stage's PR comment."""
    parser = argparse.ArgumentParser(prog="mlops comment", description=comment_cli.__doc__)
    parser.add_argument("--marker", required=True, help="key of this comment, e.g. the stage name")
    parser.add_argument("--body-file", required=True, type=Path, help="Markdown file with the comment body")
    parser.add_argument("--pr", type=int, help="pull-request number (default: from the event payload)")
    parser.add_argument("--repo", help="owner/name (default: $GITHUB_REPOSITORY)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(levelname)s %(message)s")

    try:
        marker_for(args.marker)
        body = args.body_file.read_text(encoding="utf-8")
    except ConfigurationError as error:
        print(f"mlops comment: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"mlops comment: cannot read --body-file {args.body_file}: {error.strerror}", file=sys.stderr)
        return 2

    # The summary is written first and always: it is what a fork's pull request still gets.
    if append_step_summary(body):
        log.info("appended %s to the step summary", args.body_file)

    try:
        client = GitHub.from_env(repository=args.repo)
    except ConfigurationError as error:
        warn(f"no pull-request comment for '{args.marker}': {error}")
        return 0
    if not client.token:
        warn(f"no pull-request comment for '{args.marker}': GITHUB_TOKEN is not set")
        return 0

    try:
        number = args.pr or pull_request_from_event(os.environ.get("GITHUB_EVENT_PATH"))
        if number is None and os.environ.get("GITHUB_REF_NAME"):
            # A dispatched run (e.g. the retraining PR's checks) has no PR in its event: find it by branch.
            pull = find_open_pull_request(client, os.environ["GITHUB_REF_NAME"])
            number = int(pull["number"]) if pull else None
        if number is None:
            warn(f"no pull request for this run; the '{args.marker}' report is in the step summary only")
            return 0
        action, comment_id = upsert_comment(client, number, args.marker, body)
    except GitHubError as error:
        if error.permission_denied:
            warn(
                f"cannot comment on the pull request ({error.status}: {error.message}); a pull request "
                "from a fork gets a read-only token. The report is in the run's step summary."
            )
        else:
            warn(f"cannot comment on the pull request: {error}. The report is in the run's step summary.")
        return 0
    print(f"{action} comment {comment_id} ('{args.marker}') on #{number}")
    return 0


# --------------------------------------------------------------------------- mlops retrain-pr


@dataclass(frozen=True)
class RetrainResult:
    action: str  # "opened" | "updated" | "none"
    number: int | None = None
    committed: tuple[str, ...] = ()
    dispatched: bool = False


def read_verdict(path: Path) -> str:
    try:
        verdict = json.loads(path.read_text(encoding="utf-8")).get("verdict")
    except OSError as error:
        raise ConfigurationError(f"cannot read the drift result {path}: {error.strerror}") from None
    except (ValueError, AttributeError):
        raise ConfigurationError(f"{path} is not a JSON object with a 'verdict' field") from None
    if verdict not in {"drift", "no_drift", "insufficient_data"}:
        raise ConfigurationError(
            f"{path}: 'verdict' must be drift, no_drift or insufficient_data, got {verdict!r}"
        )
    return verdict


def ensure_branch(client: GitHub, branch: str, base: str, keep_existing: bool) -> None:
    """Make ``branch`` exist; a branch left over from a closed PR starts again from ``base``.

    The stale branch is deleted and created anew at ``base``'s commit. Moving it with ``PATCH git/refs``
    would be refused by GitHub whenever ``.github/workflows`` changed on ``base`` since (the workflow
    token cannot have the ``workflows`` permission); deleting a ref and creating one at an existing
    commit need no such permission.
    """
    base_sha = client.request("GET", client.repo_path(f"git/ref/heads/{_quote_ref(base)}"))["object"]["sha"]
    try:
        client.request("GET", client.repo_path(f"git/ref/heads/{_quote_ref(branch)}"))
    except GitHubError as error:
        if error.status != 404:
            raise
    else:
        if keep_existing:
            return
        client.request("DELETE", client.repo_path(f"git/refs/heads/{_quote_ref(branch)}"))
    client.request(
        "POST", client.repo_path("git/refs"), body={"ref": f"refs/heads/{branch}", "sha": base_sha}
    )


def commit_file(client: GitHub, branch: str, path: str, content: bytes, message: str) -> bool:
    """Write one file on ``branch`` through the contents API; False when it is already identical."""
    url = client.repo_path(f"contents/{urllib.parse.quote(path)}")
    sha = None
    try:
        current = client.request("GET", url, params={"ref": branch})
        sha = current.get("sha")
        existing = base64.b64decode(current.get("content") or "")
        if existing == content:
            return False
    except GitHubError as error:
        if error.status != 404:
            raise
    body: dict[str, Any] = {
        "message": message,
        "content": base64.b64encode(content).decode("ascii"),
        "branch": branch,
    }
    if sha:
        body["sha"] = sha
    client.request("PUT", url, body=body)
    return True


def _quote_ref(ref: str) -> str:
    return urllib.parse.quote(ref, safe="/")


def retrain_decision(verdict: str, triggers_path: Path | None) -> tuple[bool, str, list[str]]:
    """Whether to open the retraining PR: drift found, or a retraining trigger fired
    (``mlops triggers``' reports/triggers.json). Returns (open, the triggers' Markdown, fired names)."""
    if triggers_path is None:
        return verdict == "drift", "", []
    from german_credit_scoring.monitoring.triggers import TriggerReport

    try:
        report = TriggerReport.model_validate_json(triggers_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(f"cannot read the triggers {triggers_path}: {error.strerror}") from None
    except ValueError as error:
        raise ConfigurationError(f"{triggers_path}: not a trigger report: {error}") from None
    return verdict == "drift" or report.fired, report.markdown(), report.fired_names


def retrain_body(report: str, data_pointers: list[str], dispatched_by: str, triggers: str = "") -> str:
    pointers = "".join(f"- `{p}`\n" for p in data_pointers) or "- none: retrains on the current data\n"
    text = (
        "## 🔁 Retraining: data drift detected\n\n"
        "The scheduled drift check found drift against the training reference. This pull request reruns "
        "the whole pipeline (validate → train → evaluate → fairness → gate) so that reviewers can decide "
        "on the retrained model with the usual checks and reports.\n\n"
        + (f"{triggers.strip()}\n\n" if triggers.strip() else "")
        + f"**Updated data pointers**\n\n{pointers}\n"
        f"**Checks** {dispatched_by}\n\n"
        "**Before merging** this branch still carries main's `dvc.lock`: the check *dvc.lock is what CI "
        "reproduced* names the stages the new data changed. Check the branch out, run "
        "`uv run mlops take-lock` (it downloads what CI reproduced), commit and push: the checks run "
        "again on your commit and record exactly the model reviewed here.\n\n"
        "<details open><summary>Drift report</summary>\n\n"
        f"{report.strip()}\n\n</details>\n"
    )
    return marked_body(RETRAIN_MARKER_KEY, text)


def open_or_update_retrain_pr(
    client: GitHub,
    *,
    report_path: Path,
    branch: str,
    base: str,
    label: str | None,
    data_pointers: list[Path],
    dispatch_workflow: str | None,
    app_token: bool,
    title: str,
    triggers: str = "",
) -> RetrainResult:
    """Commit the report (and data pointers) to ``branch`` and keep exactly one open PR from it."""
    existing = find_open_pull_request(client, branch, base)
    ensure_branch(client, branch, base, keep_existing=existing is not None)

    committed = []
    for path in [report_path, *data_pointers]:
        repo_path = path.as_posix()
        if commit_file(
            client, branch, repo_path, path.read_bytes(), f"retrain: update {repo_path} (drift detected)"
        ):
            committed.append(repo_path)

    if app_token:
        how = "run by themselves: this pull request was opened with the GitHub App's token."
    elif dispatch_workflow:
        how = f"were dispatched explicitly (`{dispatch_workflow}` on `{branch}`): GITHUB_TOKEN's PRs start no workflows."
    else:
        how = "do not start by themselves (opened with GITHUB_TOKEN): push to the branch or run them by hand."
    body = retrain_body(
        report_path.read_text(encoding="utf-8"), [p.as_posix() for p in data_pointers], how, triggers
    )

    if existing:
        number = int(existing["number"])
        client.request("PATCH", client.repo_path(f"pulls/{number}"), body={"body": body})
        action = "updated"
    elif not committed:
        # the branch holds exactly what base holds (the same report, no new data): a pull request
        # would be refused with 422 "No commits between" and would have nothing to review
        return RetrainResult(action="none")
    else:
        try:
            created = client.request(
                "POST",
                client.repo_path("pulls"),
                body={
                    "title": title,
                    "head": branch,
                    "base": base,
                    "body": body,
                    "maintainer_can_modify": True,
                },
            )
        except GitHubError as error:
            if error.status == 422 and "no commits between" in error.message.lower():
                return RetrainResult(action="none", committed=tuple(committed))
            raise
        number = int(created["number"])
        action = "opened"
    if label:
        client.request("POST", client.repo_path(f"issues/{number}/labels"), body={"labels": [label]})

    dispatched = False
    if dispatch_workflow and not app_token:
        workflow = urllib.parse.quote(dispatch_workflow, safe="")
        client.request(
            "POST", client.repo_path(f"actions/workflows/{workflow}/dispatches"), body={"ref": branch}
        )
        dispatched = True
    return RetrainResult(action=action, number=number, committed=tuple(committed), dispatched=dispatched)


TITLE = "Retrain the model: data drift detected"


def retrain_pr_cli(argv: list[str]) -> int:
    """``mlops retrain-pr``: on drift, open (or refresh) the one retraining pull request."""
    parser = argparse.ArgumentParser(prog="mlops retrain-pr", description=retrain_pr_cli.__doc__)
    parser.add_argument(
        "--report", type=Path, default=Path("reports/drift.md"), help="drift report (Markdown)"
    )
    parser.add_argument(
        "--verdict-file", type=Path, default=Path("reports/drift.json"), help="drift result (JSON)"
    )
    parser.add_argument("--branch", required=True, help="the fixed branch the retraining PR comes from")
    parser.add_argument("--base", default="main")
    parser.add_argument("--label", default="retraining", help="label put on the PR ('' for none)")
    parser.add_argument("--title", default=TITLE)
    parser.add_argument(
        "--data-pointer",
        type=Path,
        action="append",
        default=[],
        help="updated data pointer (.dvc file) to commit with the report; repeatable",
    )
    parser.add_argument(
        "--dispatch-workflow",
        help="workflow file to dispatch on the branch when no GitHub App token is given",
    )
    parser.add_argument("--repo", help="owner/name (default: $GITHUB_REPOSITORY)")
    parser.add_argument(
        "--triggers", type=Path, help="reports/triggers.json: open on any fired trigger, with its evidence"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(levelname)s %(message)s")

    try:
        verdict = read_verdict(args.verdict_file)
        retrain, triggers, fired = retrain_decision(verdict, args.triggers)
    except ConfigurationError as error:
        print(f"mlops retrain-pr: {error}", file=sys.stderr)
        return 2
    if fired and verdict != "drift" and args.title == TITLE:
        args.title = f"Retrain the model: {', '.join(fired)}"
    if not retrain:
        reason = "no drift" if verdict == "no_drift" else "not enough current data to judge drift"
        message = (
            f"### Retraining\n\nDrift verdict: `{verdict}` ({reason}). No retraining pull request opened.\n"
        )
        print(message.strip())
        append_step_summary(message)
        return 0

    missing = [p for p in [args.report, *args.data_pointer] if not p.is_file()]
    if missing:
        print(f"mlops retrain-pr: file not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    app_token = os.environ.get("GH_APP_TOKEN") or None
    try:
        client = GitHub.from_env(token=app_token, repository=args.repo)
        if not client.token:
            raise ConfigurationError("no token: set GH_APP_TOKEN (GitHub App) or GITHUB_TOKEN")
        result = open_or_update_retrain_pr(
            client,
            report_path=args.report,
            branch=args.branch,
            base=args.base,
            label=args.label or None,
            data_pointers=args.data_pointer,
            dispatch_workflow=args.dispatch_workflow,
            app_token=app_token is not None,
            title=args.title,
            triggers=triggers,
        )
    except ConfigurationError as error:
        print(f"mlops retrain-pr: {error}", file=sys.stderr)
        return 2
    except GitHubError as error:
        hint = ""
        if error.permission_denied:
            hint = (
                " (the token needs contents, pull-requests and actions write; and the repository must allow "
                "GitHub Actions to create pull requests: Settings > Actions > General)"
            )
        print(f"mlops retrain-pr: {error}{hint}", file=sys.stderr)
        return 1

    if result.action == "none":
        message = (
            "### Retraining\n\nDrift detected, but the retraining branch would hold exactly what "
            f"`{args.base}` holds (the same report, no new data): no pull request to open.\n"
        )
        print(message.strip())
        append_step_summary(message)
        return 0
    lines = [
        "### Retraining",
        "",
        f"Drift detected: {result.action} retraining pull request #{result.number} from `{args.branch}`.",
        f"Committed: {', '.join(result.committed) or 'nothing new (already up to date)'}.",
    ]
    if result.dispatched:
        lines.append(f"Dispatched `{args.dispatch_workflow}` on `{args.branch}`.")
    summary = "\n".join(lines) + "\n"
    print(summary.strip())
    append_step_summary(summary)
    return 0

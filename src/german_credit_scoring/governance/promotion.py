"""Promotion and rollback as pull requests, the checks on them, and the audit record at merge.

* ``mlops promote --version V`` builds the new ``governance/production.yaml`` (``current`` becomes
  the version, the old entry goes onto ``history``) and opens the pull request that changes it,
  through the GitHub REST API (the :mod:`german_credit_scoring.gitops.github` client). It refuses, naming
  what is missing, when the gate result is for another version, failed, or skipped a check the
  risk tier makes mandatory, or when the model's digest cannot be established.
* ``mlops rollback`` opens the pull request back to the newest ``history`` entry: exactly it.
* ``mlops promotion-check`` (the ``promote`` workflow, on the pull request) accepts only those two
  shapes of change, re-verifies the gate and the model digest, and, for tiers with a named approver,
  requires an approving review from a member of that team (read through the API). With
  ``--merge-if-allowed`` (the ``auto-merge`` job), a passing check in a tier with automatic promotion
  (low) merges the pull request through the API at the head it checked and records it in the audit
  trail at once; medium and high never merge by themselves.
* ``mlops audit-record`` (the ``promote`` workflow, on the push to main) reads the merged pull
  request's reviews through the API and appends the hash-chained entry to the audit trail, which is
  kept on the ``audit`` branch: main's ruleset lets no bot push, and a push to the pull request
  would dismiss the approvals it records.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from german_credit_scoring import io, paths
from german_credit_scoring.errors import SettingsError
from german_credit_scoring.gitops.github import ConfigurationError, GitHub, GitHubError
from german_credit_scoring.governance import audit
from german_credit_scoring.governance.deploy import KUSTOMIZATION, render_kustomization
from german_credit_scoring.governance.lineage import sha256_file
from german_credit_scoring.governance.owners import load_teams
from german_credit_scoring.governance.policy import TierPolicy, load_tiers, project_tier
from german_credit_scoring.governance.production import (
    PRODUCTION_FILE,
    Entry,
    Production,
    load_production,
    render_production,
)

AUDIT_BRANCH = "audit"
LABEL = "promotion"


class PromotionRefused(Exception):
    """The change may not go to production: the message names every missing piece."""


# --- what must hold for a version to be promoted -------------------------------------------------------


def gate_problems(version: str, gate_result: dict[str, Any], tier_name: str, tier: TierPolicy) -> list[str]:
    """Why the gate's result does not allow ``version`` in production under ``tier`` (empty: it does)."""
    if gate_result.get("model_version") != version:
        return [
            f"{paths.GATE_RESULT} is for model {gate_result.get('model_version')!r}, not {version!r}: "
            "promote the version the gate approved on main"
        ]
    problems = []
    if not gate_result.get("passed"):
        failed = [c["name"] for c in gate_result.get("checks", []) if not c.get("passed")]
        problems.append(f"the gate failed for {version}: {', '.join(failed) or 'see metrics/gate.json'}")
    checks = gate_result.get("checks", [])
    for kind in tier.mandatory_checks:
        of_kind = [c for c in checks if c.get("kind") == kind]
        if not of_kind:
            problems.append(f"mandatory check '{kind}' ({tier_name} tier) is missing from the gate result")
            continue
        for check in of_kind:
            if check.get("status") != "pass" and not str(check.get("detail", "")).startswith(
                "not applicable:"
            ):
                problems.append(
                    f"mandatory check '{check.get('name')}' ({tier_name} tier) did not pass: "
                    f"{check.get('status')} ({check.get('detail') or 'no detail'})"
                )
    return problems


def model_digest(version: str, model_dir: Path = paths.APPROVED_DIR, manifest: Path | None = None) -> str:
    """The sha256 of the version's model file, from the model directory or a release manifest."""
    meta = model_dir / "model.json"
    if (model_dir / "model.joblib").is_file() and meta.is_file():
        found = json.loads(meta.read_text(encoding="utf-8")).get("version")
        if found == version:
            return sha256_file(model_dir / "model.joblib")
    if manifest is not None and manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        if data.get("model_version") == version:
            return str(data["model_digest"])
    raise PromotionRefused(
        f"model {version} not found: {model_dir} holds another version or nothing "
        "(run `uv run dvc pull models/approved`, or pass --manifest with the release's lineage.json)"
    )


def promotion_entry(
    version: str,
    gate_result: dict[str, Any],
    tier_name: str,
    tier: TierPolicy,
    image: str | None,
    reason: str,
    manifest: Path | None = None,
) -> Entry:
    """The production entry for ``version``, or PromotionRefused naming everything that is missing."""
    problems = gate_problems(version, gate_result, tier_name, tier)
    digest = None
    try:
        digest = model_digest(version, manifest=manifest)
    except PromotionRefused as error:
        problems.append(str(error))
    if problems or digest is None:
        raise PromotionRefused(f"cannot promote {version}: " + "; ".join(problems))
    return Entry(
        model_version=version,
        model_digest=digest,
        image=image,
        risk_tier=tier_name,
        gate_passed=True,
        reason=reason,
    )


def classify_change(base: Production, head: Production) -> str:
    """``promote`` or ``rollback`` (the only two changes allowed), else PromotionRefused."""
    if head == base:
        return "unchanged"
    if (
        head.current is not None
        and base.rollback_target() == head.current
        and head.history == base.history[1:]
    ):
        return "rollback"
    expected_history = ([base.current] if base.current is not None else []) + list(base.history)
    if head.current is not None and head.history == expected_history:
        return "promote"
    raise PromotionRefused(
        f"{PRODUCTION_FILE}: not a promotion (new current, the old one first in history) nor a rollback "
        "(the newest history entry back, exactly): history may not be edited; use mlops promote / rollback"
    )


# --- GitHub: branches, the file, the pull request --------------------------------------------------------


def _ref(name: str) -> str:
    return urllib.parse.quote(name, safe="/")


def read_file(client: GitHub, path: str, ref: str) -> tuple[str | None, str | None]:
    """(text, blob sha) of ``path`` on ``ref``; (None, None) when it does not exist."""
    try:
        found = client.request(
            "GET", client.repo_path(f"contents/{urllib.parse.quote(path)}"), params={"ref": ref}
        )
    except GitHubError as error:
        if error.status == 404:
            return None, None
        raise
    return base64.b64decode(found.get("content") or "").decode("utf-8"), found.get("sha")


def write_file(client: GitHub, path: str, text: str, branch: str, message: str, sha: str | None) -> None:
    body: dict[str, Any] = {
        "message": message,
        "content": base64.b64encode(text.encode("utf-8")).decode("ascii"),
        "branch": branch,
    }
    if sha:
        body["sha"] = sha
    client.request("PUT", client.repo_path(f"contents/{urllib.parse.quote(path)}"), body=body)


def fresh_branch(client: GitHub, branch: str, base: str) -> None:
    """Create ``branch`` at ``base``; a leftover branch of that name (no open PR) is deleted first."""
    sha = client.request("GET", client.repo_path(f"git/ref/heads/{_ref(base)}"))["object"]["sha"]
    try:
        client.request("GET", client.repo_path(f"git/ref/heads/{_ref(branch)}"))
        client.request("DELETE", client.repo_path(f"git/refs/heads/{_ref(branch)}"))
    except GitHubError as error:
        if error.status != 404:
            raise
    client.request("POST", client.repo_path("git/refs"), body={"ref": f"refs/heads/{branch}", "sha": sha})


def open_change(
    client: GitHub, state: Production, branch: str, base: str, title: str, body: str
) -> dict[str, Any]:
    """Open (or refresh) the pull request that sets production.yaml to ``state``."""
    text = render_production(state)
    existing = next(
        iter(
            client.paginate(client.repo_path("pulls"), {"head": f"{client.owner}:{branch}", "state": "open"})
        ),
        None,
    )
    if existing is None:
        fresh_branch(client, branch, base)
    _, sha = read_file(client, PRODUCTION_FILE.as_posix(), branch)
    write_file(client, PRODUCTION_FILE.as_posix(), text, branch, title, sha)
    # what the cluster deploys (Argo CD / Flux build serving/k8s) moves in the same pull request
    kustomization = render_kustomization(state)
    current, sha = read_file(client, KUSTOMIZATION.as_posix(), branch)
    if current != kustomization:
        write_file(
            client, KUSTOMIZATION.as_posix(), kustomization, branch, f"{title}: the image it deploys", sha
        )
    if existing is not None:
        return client.request("PATCH", client.repo_path(f"pulls/{existing['number']}"), body={"body": body})
    pull = client.request(
        "POST", client.repo_path("pulls"), body={"title": title, "head": branch, "base": base, "body": body}
    )
    try:
        client.request("POST", client.repo_path(f"issues/{pull['number']}/labels"), body={"labels": [LABEL]})
    except GitHubError as error:  # a label is a convenience; the PR stands without it
        print(f"warning: could not label pull request #{pull['number']}: {error}", file=sys.stderr)
    return pull


def change_body(
    action: str, before: Entry | None, after: Entry | None, tier_name: str, tier: TierPolicy
) -> str:
    def row(entry: Entry | None) -> str:
        if entry is None:
            return "| nothing in production | | |"
        return f"| `{entry.model_version}` | `{entry.model_digest}` | {entry.image or 'not yet pushed'} |"

    approvers = "the ruleset's required reviewers" + (
        f" and a named approver from the `{tier.named_approver}` team" if tier.named_approver else ""
    )
    return (
        f"## {'🚀 Promotion' if action == 'promote' else '⏪ Rollback'} to production\n\n"
        f"Changes `{PRODUCTION_FILE}`; merging deploys it (Argo CD / Flux sync main) and records it in the "
        f"audit trail with the approvals of this pull request.\n\n"
        "| | model | digest | image |\n|---|---|---|---|\n"
        f"| before {row(before)[1:]}\n| after {row(after)[1:]}\n\n"
        f"Risk tier **{tier_name}**: mandatory checks {', '.join(tier.mandatory_checks)}; "
        f"needs {tier.required_approvals} approval(s) from {approvers}.\n"
    )


# --- merge time: the audit record ----------------------------------------------------------------------


def approvals(client: GitHub, number: int) -> list[dict[str, str]]:
    """Each reviewer's latest decisive review (APPROVED / CHANGES_REQUESTED), approvers only."""
    latest: dict[str, dict[str, str]] = {}
    for review in client.paginate(client.repo_path(f"pulls/{number}/reviews")):
        state = review.get("state")
        login = (review.get("user") or {}).get("login")
        if login and state in {"APPROVED", "CHANGES_REQUESTED", "DISMISSED"}:
            latest[login] = {
                "login": login,
                "state": state,
                "submitted_at": str(review.get("submitted_at") or ""),
                "commit_id": str(review.get("commit_id") or ""),
            }
    return [r for _, r in sorted(latest.items()) if r["state"] == "APPROVED"]


def team_members(client: GitHub, team_handle: str, logins: list[str]) -> list[str]:
    """Which of ``logins`` are active members of ``@org/team`` (the API needs members:read)."""
    org, _, slug = team_handle.lstrip("@").partition("/")
    members = []
    for login in logins:
        try:
            found = client.request("GET", f"/orgs/{org}/teams/{slug}/memberships/{urllib.parse.quote(login)}")
        except GitHubError as error:
            if error.status == 404:
                continue
            raise
        if (found or {}).get("state") == "active":
            members.append(login)
    return members


def audit_record(
    client: GitHub,
    sha: str,
    production: Production,
    gate_result: dict[str, Any],
    before: Production | None = None,
    pull: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit entry for merge commit ``sha``; ``before`` is production at its first parent.

    ``pull`` is the merged pull request when the caller just merged it (automatic promotion); else it
    is looked up from the commit.
    """
    if pull is None or not pull.get("merged_at"):
        pulls = client.request("GET", client.repo_path(f"commits/{sha}/pulls"))
        merged = [p for p in pulls or [] if p.get("merged_at")]
        if not merged:
            raise PromotionRefused(
                f"commit {sha} did not come from a merged pull request: refusing to record it"
            )
        pull = merged[0]
    current = production.current
    if current is None:
        raise PromotionRefused(f"{PRODUCTION_FILE}: nothing in production to record")
    if before is not None:
        action = classify_change(before, production)
        replaced = before.current.model_version if before.current else None
    else:  # no parent to compare with (a shallow history): the pull request's branch says which
        action = "rollback" if (pull.get("head") or {}).get("ref", "").startswith("rollback/") else "promote"
        replaced = production.history[0].model_version if production.history and action == "promote" else None
    return {
        "action": action,
        "model_version": current.model_version,
        "model_digest": current.model_digest,
        "image": current.image,
        "risk_tier": current.risk_tier,
        "replaced": replaced,
        "gate": {
            "passed": bool(gate_result.get("passed"))
            and gate_result.get("model_version") == current.model_version,
            "model_version": gate_result.get("model_version"),
            "mandatory": gate_result.get("mandatory", []),
        },
        "approvers": approvals(client, int(pull["number"])),
        "pull_request": int(pull["number"]),
        "merge_commit": sha,
        "merged_at": str(pull.get("merged_at")),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def append_audit(client: GitHub, record: dict[str, Any], branch: str = AUDIT_BRANCH) -> dict[str, Any]:
    """Append ``record`` to the trail on ``branch`` (created from main if missing) via the contents API.

    The blob sha makes the write conditional: a concurrent append makes GitHub answer 409, not lose one.
    """
    import tempfile

    try:
        client.request("GET", client.repo_path(f"git/ref/heads/{_ref(branch)}"))
    except GitHubError as error:
        if error.status != 404:
            raise
        fresh_branch(client, branch, "main")
    old, sha = read_file(client, audit.AUDIT_FILE.as_posix(), branch)
    # once per merge: an automatic promotion records in its own job, and the push of its merge (when an
    # App token made it, so that push workflows run) would record it again
    for line in (old or "").splitlines():
        try:
            earlier = json.loads(line)
        except ValueError:
            continue
        if record.get("merge_commit") and earlier.get("merge_commit") == record["merge_commit"]:
            print(
                f"merge commit {record['merge_commit']} is already in the audit trail (entry {earlier.get('seq')})"
            )
            return earlier
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / "audit.jsonl"
        local.write_text(old or "", encoding="utf-8")
        entry = audit.append(record, local)
        audit.check_append_only(local, old)
        text = local.read_text(encoding="utf-8")
    message = f"audit: {record['action']} {record['model_version']} (PR #{record['pull_request']})"
    write_file(client, audit.AUDIT_FILE.as_posix(), text, branch, message, sha)
    return entry


# --- CLIs ------------------------------------------------------------------------------------------------


def _client(argv_repo: str | None) -> GitHub:
    return GitHub.from_env(repository=argv_repo)


def _tier(args: argparse.Namespace) -> tuple[str, TierPolicy]:
    name = project_tier(args.params)
    return name, load_tiers(args.tiers).policy(name)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", help="owner/name (default: GITHUB_REPOSITORY)")
    parser.add_argument("--base", default="main")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--tiers", type=Path, default=Path("governance/tiers.yaml"))
    parser.add_argument("--production", type=Path, default=PRODUCTION_FILE)


def promote_cli(argv: list[str]) -> int:
    """``mlops promote --version V``: open the pull request that puts V in production."""
    parser = argparse.ArgumentParser(prog="mlops promote", description=promote_cli.__doc__)
    _common(parser)
    parser.add_argument(
        "--version", required=True, help="the model version (metrics/gate.json model_version)"
    )
    parser.add_argument("--image", help="the image that serves it, registry/name@sha256:...")
    parser.add_argument(
        "--manifest", type=Path, help="the release's lineage.json (when models/ is not pulled)"
    )
    parser.add_argument("--reason", default="")
    args = parser.parse_args(argv)
    try:
        tier_name, tier = _tier(args)
        gate_result = io.read_json(paths.GATE_RESULT) if paths.GATE_RESULT.is_file() else {}
        entry = promotion_entry(
            args.version, gate_result, tier_name, tier, args.image, args.reason, args.manifest
        )
        before = load_production(args.production)
        if before.current == entry:
            print(f"{args.version} is already in production")
            return 0
        body = change_body("promote", before.current, entry, tier_name, tier)
        pull = open_change(
            _client(args.repo), before.promote(entry), f"promote/{args.version}", args.base,
            f"Promote model {args.version} to production", body,
        )  # fmt: skip
    except (PromotionRefused, SettingsError) as error:
        print(f"mlops promote: {error}", file=sys.stderr)
        return 1
    except (GitHubError, ConfigurationError) as error:
        print(f"mlops promote: {error}", file=sys.stderr)
        return 2
    print(f"pull request #{pull['number']}: {pull.get('html_url', '')}")
    return 0


def rollback_cli(argv: list[str]) -> int:
    """``mlops rollback``: open the pull request back to the previous production entry."""
    parser = argparse.ArgumentParser(prog="mlops rollback", description=rollback_cli.__doc__)
    _common(parser)
    parser.add_argument("--reason", default="")
    args = parser.parse_args(argv)
    try:
        tier_name, tier = _tier(args)
        before = load_production(args.production)
        after = before.rollback()
        assert after.current is not None
        version = after.current.model_version
        body = change_body("rollback", before.current, after.current, tier_name, tier)
        if args.reason:
            body += f"\n**Reason:** {args.reason}\n"
        pull = open_change(
            _client(args.repo),
            after,
            f"rollback/{version}",
            args.base,
            f"Roll production back to model {version}",
            body,
        )
    except (PromotionRefused, SettingsError) as error:
        print(f"mlops rollback: {error}", file=sys.stderr)
        return 1
    except (GitHubError, ConfigurationError) as error:
        print(f"mlops rollback: {error}", file=sys.stderr)
        return 2
    print(f"pull request #{pull['number']}: {pull.get('html_url', '')}")
    return 0


def _git_show(ref: str, path: Path) -> str | None:
    done = subprocess.run(
        ["git", "show", f"{ref}:{path.as_posix()}"], capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else None


def check_cli(argv: list[str]) -> int:
    """``mlops promotion-check``: on a pull request, is this production change allowed? (exit 1 if not)"""
    parser = argparse.ArgumentParser(prog="mlops promotion-check", description=check_cli.__doc__)
    _common(parser)
    parser.add_argument("--base-ref", default="origin/main", help="git ref of the base branch")
    parser.add_argument("--pull-request", type=int, help="number, for the named-approver check")
    parser.add_argument("--manifest", type=Path, help="the release's lineage.json")
    parser.add_argument("--owners", type=Path, default=Path("governance/owners.yaml"))
    parser.add_argument("--public-key", type=Path, help="with --manifest: verify the release's signatures")
    parser.add_argument("--identity", help="with --manifest: the Sigstore identity that signed the release")
    parser.add_argument("--issuer", default="https://token.actions.githubusercontent.com")
    parser.add_argument(
        "--merge-if-allowed",
        action="store_true",
        help="when every check passes and the risk tier allows automatic promotion, merge the pull request "
        "(at --head-sha) and record it in the audit trail",
    )
    parser.add_argument("--head-sha", help="the pull request head that was checked (default: git HEAD)")
    args = parser.parse_args(argv)
    if args.merge_if_allowed and args.pull_request is None:
        print("mlops promotion-check: --merge-if-allowed needs --pull-request", file=sys.stderr)
        return 2
    problems: list[str] = []
    try:
        base_text = _git_show(args.base_ref, args.production)
        base = Production.model_validate(yaml.safe_load(base_text) or {}) if base_text else Production()
        head = load_production(args.production)
        action = classify_change(base, head)
        if action == "unchanged":
            print(
                f"{args.production} unchanged: nothing to check"
                + (", nothing to merge" if args.merge_if_allowed else "")
            )
            return 0
        tier_name, tier = _tier(args)
        current = head.current
        assert current is not None
        deployed = KUSTOMIZATION.read_text(encoding="utf-8") if KUSTOMIZATION.is_file() else ""
        if deployed != render_kustomization(head):
            problems.append(
                f"{KUSTOMIZATION} does not deploy what {args.production} says: run `uv run mlops kustomization --write`"
            )
        if action == "promote":
            gate_result = io.read_json(paths.GATE_RESULT) if paths.GATE_RESULT.is_file() else {}
            problems += gate_problems(current.model_version, gate_result, tier_name, tier)
            try:
                digest = model_digest(current.model_version, manifest=args.manifest)
                if digest != current.model_digest:
                    problems.append(
                        f"model {current.model_version}: digest {digest} is not the {current.model_digest} "
                        f"{args.production} names"
                    )
            except PromotionRefused as error:
                problems.append(str(error))
            if args.manifest is not None and (args.public_key or args.identity):
                from german_credit_scoring.governance.lineage import verify

                issuer = args.issuer if args.identity else None
                problems += verify(args.manifest, None, args.public_key, args.identity, issuer)
        if tier.named_approver:
            if args.pull_request is None:
                problems.append(f"the {tier_name} tier needs a named approver: pass --pull-request")
            else:
                client = _client(args.repo)
                approved = [a["login"] for a in approvals(client, args.pull_request)]
                team = load_teams(args.owners)[0][tier.named_approver]
                named = team_members(client, team, approved)
                if not named:
                    problems.append(
                        f"the {tier_name} tier needs an approving review from a member of {team} "
                        f"(approved so far: {', '.join(approved) or 'nobody'})"
                    )
                else:
                    print(f"named approver(s) from {team}: {', '.join(named)}")
    except (PromotionRefused, SettingsError) as error:
        problems.append(str(error))
    except (GitHubError, ConfigurationError) as error:
        print(f"mlops promotion-check: {error}", file=sys.stderr)
        return 2
    if problems:
        for problem in problems:
            print(f"REFUSED {problem}", file=sys.stderr)
        if args.merge_if_allowed:
            print(
                f"not merged: pull request #{args.pull_request} did not pass the promotion check",
                file=sys.stderr,
            )
        return 1
    print(f"{action} of {head.current.model_version if head.current else '?'}: every check passed")
    if args.merge_if_allowed:
        return merge_if_allowed(args, action, base, head, tier_name, tier)
    return 0


# --- automatic promotion: the workflow merges what passed, in tiers that allow it -----------------------

# What an automatic promotion may change: production's state and the image the cluster deploys.
PROMOTION_FILES = frozenset({PRODUCTION_FILE.as_posix(), KUSTOMIZATION.as_posix()})


def changed_files(base_ref: str, head: str = "HEAD") -> list[str]:
    """Files the pull request changes: ``git diff base...head`` (from their merge base)."""
    done = subprocess.run(
        ["git", "diff", "--name-only", f"{base_ref}...{head}"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise PromotionRefused(f"cannot tell what the pull request changes: git diff {base_ref}...{head}: "
                               f"{done.stderr.strip()}")  # fmt: skip
    return sorted(line for line in done.stdout.splitlines() if line)


def automatic_merge_refusal(
    tier_name: str, tier: TierPolicy, files: list[str], checked: str, head_sha: str
) -> str | None:
    """Why the workflow may not merge this (checked, passing) promotion pull request itself; None: it may."""
    if not tier.automatic_promotion:
        return (
            f"the {tier_name} risk tier does not allow automatic promotion (governance/tiers.yaml "
            f"tiers.{tier_name}.automatic_promotion is false): a person merges it once the ruleset's "
            "approvals are in"
        )
    others = [f for f in files if f not in PROMOTION_FILES]
    if others:
        return (
            f"it changes more than {' and '.join(sorted(PROMOTION_FILES))}: {', '.join(others)} "
            "(an automatic promotion changes nothing else; a person reviews and merges this one)"
        )
    if checked != head_sha:
        return f"the checked commit {checked} is not the pull request's head {head_sha}"
    return None


def merge_pull_request(client: GitHub, number: int, head_sha: str, title: str) -> str:
    """Merge ``number`` only if its head is still ``head_sha`` (GitHub answers 409 otherwise); the merge sha."""
    merged = client.request(
        "PUT",
        client.repo_path(f"pulls/{number}/merge"),
        body={"sha": head_sha, "merge_method": "merge", "commit_title": title},
    )
    if not (merged or {}).get("merged") or not merged.get("sha"):
        raise GitHubError("PUT", client.repo_path(f"pulls/{number}/merge"), 200, f"not merged: {merged}")
    return str(merged["sha"])


def _set_output(**values: str) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in values.items())


def merge_if_allowed(
    args: argparse.Namespace,
    action: str,
    base: Production,
    head: Production,
    tier_name: str,
    tier: TierPolicy,
) -> int:
    """After a passing check: merge the pull request when the tier allows it, then record the merge.

    A merge made with the workflow's token starts no ``push`` workflow, so the audit record is appended
    here, in the same job, right after the merge (``audit-record`` on the push skips a merge already
    recorded, for when an App token made the merge and the push does run it).
    """
    assert head.current is not None
    if not tier.automatic_promotion:  # before anything else: these tiers never merge by themselves
        print(f"not merged automatically: {automatic_merge_refusal(tier_name, tier, [], '', '')}")
        _set_output(merged="false")
        return 0
    checked = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    head_sha = args.head_sha or checked
    try:
        files = changed_files(args.base_ref, checked or "HEAD")
    except PromotionRefused as error:
        print(f"not merged automatically: {error}", file=sys.stderr)
        return 1
    refusal = automatic_merge_refusal(tier_name, tier, files, checked, head_sha)
    if refusal:
        print(f"not merged automatically: {refusal}")
        _set_output(merged="false")
        return 0
    version = head.current.model_version
    title = (
        f"{'Promote' if action == 'promote' else 'Roll back'} model {version} (automatic, {tier_name} tier)"
    )
    try:
        client = _client(args.repo)
        merge_sha = merge_pull_request(client, args.pull_request, head_sha, title)
    except (GitHubError, ConfigurationError) as error:
        print(f"mlops promotion-check: GitHub did not merge pull request #{args.pull_request}: {error}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(
        f"merged pull request #{args.pull_request} at {head_sha} as {merge_sha} ({tier_name} tier: automatic)"
    )
    _set_output(merged="true", merge_sha=merge_sha)
    try:
        pull = client.request("GET", client.repo_path(f"pulls/{args.pull_request}"))
        gate_result = io.read_json(paths.GATE_RESULT) if paths.GATE_RESULT.is_file() else {}
        record = audit_record(client, merge_sha, head, gate_result, before=base, pull=pull)
        entry = append_audit(client, record)
    except (PromotionRefused, audit.AuditError, GitHubError, ConfigurationError) as error:
        print(f"mlops promotion-check: merged as {merge_sha}, but the audit record failed: {error}; "
              f"`mlops audit-record --sha {merge_sha}` adds it", file=sys.stderr)  # fmt: skip
        return 1
    print(audit.format_entry(entry))
    return 0


def audit_record_cli(argv: list[str]) -> int:
    """``mlops audit-record --sha SHA``: after a merge, append who approved what to the audit trail."""
    parser = argparse.ArgumentParser(prog="mlops audit-record", description=audit_record_cli.__doc__)
    _common(parser)
    parser.add_argument(
        "--sha", default=os.environ.get("GITHUB_SHA"), help="the merge commit (default: GITHUB_SHA)"
    )
    parser.add_argument("--branch", default=AUDIT_BRANCH)
    args = parser.parse_args(argv)
    if not args.sha:
        print("mlops audit-record: --sha (or GITHUB_SHA) is required", file=sys.stderr)
        return 2
    try:
        client = _client(args.repo)
        gate_result = io.read_json(paths.GATE_RESULT) if paths.GATE_RESULT.is_file() else {}
        parent = _git_show(f"{args.sha}^", args.production)
        before = Production.model_validate(yaml.safe_load(parent) or {}) if parent is not None else None
        record = audit_record(client, args.sha, load_production(args.production), gate_result, before)
        entry = append_audit(client, record, args.branch)
    except (PromotionRefused, SettingsError, audit.AuditError) as error:
        print(f"mlops audit-record: {error}", file=sys.stderr)
        return 1
    except (GitHubError, ConfigurationError) as error:
        print(f"mlops audit-record: {error}", file=sys.stderr)
        return 2
    print(audit.format_entry(entry))
    return 0


def move_champion(model_version: str, name: str) -> str:
    """Point the MLflow alias ``champion`` at the registry version of ``model_version`` (by its tag)."""
    from german_credit_scoring.lifecycle.tracking import quiet_mlflow, tracking_uri

    quiet_mlflow()
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    versions = [
        v
        for v in client.search_model_versions(f"name = '{name}'")
        if (v.tags or {}).get("model_version") == model_version
    ]
    if not versions:
        raise PromotionRefused(
            f"MLflow has no version of {name!r} tagged model_version={model_version} "
            "(main.yml's `mlops register` registers it when the pull request merges)"
        )
    newest = max(versions, key=lambda v: int(v.version))
    client.set_registered_model_alias(name, "champion", newest.version)
    return str(newest.version)


def champion_cli(argv: list[str]) -> int:
    """``mlops champion``: move the MLflow alias champion to the version production.yaml names."""
    parser = argparse.ArgumentParser(prog="mlops champion", description=champion_cli.__doc__)
    parser.add_argument("--production", type=Path, default=PRODUCTION_FILE)
    parser.add_argument("--name", help="registered model name (default: project.slug)")
    args = parser.parse_args(argv)
    current = load_production(args.production).current
    if current is None:
        print(f"mlops champion: {args.production} names no model in production", file=sys.stderr)
        return 1
    name = args.name or (yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))["project"]["slug"])
    try:
        version = move_champion(current.model_version, name)
    except PromotionRefused as error:
        print(f"mlops champion: {error}", file=sys.stderr)
        return 1
    print(f"{name} version {version} (model {current.model_version}) is now champion")
    return 0

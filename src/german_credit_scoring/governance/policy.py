"""Risk-tier policy as data (``governance/tiers.yaml``) and what it makes GitHub require.

One tier (``project.risk_tier`` in params.yaml) decides:

* which gate check kinds are mandatory (see :mod:`german_credit_scoring.lifecycle.gate`);
* the branch ruleset's approval count and its *required reviewers by file pattern*
  (``governance/ruleset.json`` is generated from the tier, ``owners.yaml`` and the current ruleset);
* whether a promotion needs a named approver from a role, and how often the model is reviewed.

A CODEOWNERS line with two owners is satisfied by either of them, so "model risk AND platform must
approve the gate code" cannot be said in CODEOWNERS; a ruleset ``required_reviewers`` entry can, and
:func:`merge_blockers` evaluates exactly those rules (and the code-owner rule) so tests can show who
may merge what, rather than reading text.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from german_credit_scoring.errors import SettingsError
from german_credit_scoring.governance.owners import (
    CODEOWNERS_FILE,
    OWNERS_FILE,
    load_owners,
    load_teams,
    placeholder_roles,
    render_codeowners,
    write_team_ids,
)
from german_credit_scoring.io import write_text

TIERS_FILE = Path("governance/tiers.yaml")
RULESET_FILE = Path("governance/ruleset.json")
PARAMS_FILE = Path("params.yaml")
# calibration and proxy: the fairness bounds on max_group_calibration_error and proxy_auc (issue 13)
CHECK_KINDS = ("metric", "fairness", "calibration", "proxy", "regression", "latency", "size")
Tier = Literal["low", "medium", "high"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RequiredReviewer(_Frozen):
    """``approvals`` members of the team ``role`` must approve any change to the path group ``paths``."""

    role: str
    approvals: Annotated[int, Field(ge=1, le=10)] = 1
    paths: str


class TierPolicy(_Frozen):
    description: str = ""
    mandatory_checks: list[
        Literal["metric", "fairness", "calibration", "proxy", "regression", "latency", "size"]
    ]
    required_approvals: Annotated[int, Field(ge=0, le=10)]
    required_reviewers: list[RequiredReviewer] = Field(default_factory=list)
    automatic_promotion: bool = False
    named_approver: str | None = None
    review_every_days: Annotated[int, Field(ge=1)]


class TierFile(_Frozen):
    path_groups: dict[str, list[str]]
    tiers: dict[Tier, TierPolicy]

    @model_validator(mode="after")
    def _complete(self) -> TierFile:
        missing = {"low", "medium", "high"} - set(self.tiers)
        if missing:
            raise ValueError(f"tiers: every tier must be defined; missing {sorted(missing)}")
        for name, tier in self.tiers.items():
            for index, reviewer in enumerate(tier.required_reviewers):
                if reviewer.paths not in self.path_groups:
                    raise ValueError(
                        f"tiers.{name}.required_reviewers[{index}].paths: unknown path group "
                        f"{reviewer.paths!r}; known: {sorted(self.path_groups)}"
                    )
        return self

    def policy(self, tier: str) -> TierPolicy:
        if tier not in self.tiers:
            raise SettingsError(f"unknown risk tier {tier!r}; {TIERS_FILE} defines {sorted(self.tiers)}")
        return self.tiers[tier]  # type: ignore[index]


def load_tiers(path: Path | str = TIERS_FILE) -> TierFile:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path} is not valid YAML: {error}") from None
    try:
        return TierFile.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in error.errors()
        )
        raise SettingsError(f"{path}: {problems}") from None


def project_tier(params: Path | str = PARAMS_FILE) -> str:
    raw = yaml.safe_load(Path(params).read_text(encoding="utf-8")) or {}
    return str((raw.get("project") or {}).get("risk_tier", "high"))


# --- gitignore-style patterns (CODEOWNERS and ruleset file patterns) -----------------------------


@lru_cache(maxsize=512)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    directory = pattern.endswith("/")
    body = pattern.strip("/")
    anchored = pattern.startswith("/") or "/" in body
    out = []
    i = 0
    while i < len(body):
        if body.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif body.startswith("**", i):
            out.append(".*")
            i += 2
        elif body[i] == "*":
            out.append("[^/]*")
            i += 1
        elif body[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(body[i]))
            i += 1
    prefix = "^" if anchored else "^(?:.*/)?"
    suffix = "/.*$" if directory else "(?:/.*)?$"
    return re.compile(prefix + "".join(out) + suffix)


def matches(pattern: str, path: str) -> bool:
    """Does a CODEOWNERS / ruleset file pattern (gitignore syntax) cover ``path`` (repository-relative)?"""
    if pattern in {"*", "**", "/**"}:
        return True
    return bool(_pattern_regex(pattern).match(path.lstrip("/")))


def parse_codeowners(text: str) -> list[tuple[str, list[str]]]:
    rules = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            pattern, *owners = line.split()
            rules.append((pattern, owners))
    return rules


def code_owners(path: str, rules: list[tuple[str, list[str]]]) -> list[str]:
    """The owners GitHub requires for ``path``: the last matching line wins."""
    owners: list[str] = []
    for pattern, handles in rules:
        if matches(pattern, path):
            owners = handles
    return owners


# --- the ruleset ------------------------------------------------------------------------------------


def render_ruleset(
    base: Mapping[str, Any], tier: TierPolicy, tiers: TierFile, team_ids: Mapping[str, int]
) -> dict[str, Any]:
    """``base`` (the current ruleset) with its pull-request rule set from the tier."""
    ruleset = json.loads(json.dumps(base))
    rules = ruleset.setdefault("rules", [])
    pull = next((rule for rule in rules if rule.get("type") == "pull_request"), None)
    if pull is None:
        pull = {"type": "pull_request", "parameters": {}}
        rules.append(pull)
    parameters = pull.setdefault("parameters", {})
    parameters["required_approving_review_count"] = tier.required_approvals
    parameters["require_code_owner_review"] = True
    required = []
    for reviewer in tier.required_reviewers:
        if reviewer.role not in team_ids:
            raise SettingsError(
                f"{OWNERS_FILE}: team_ids.{reviewer.role} is needed (the tier requires that team's "
                f"approval); find it with `gh api orgs/ORG/teams/SLUG --jq .id`"
            )
        required.append(
            {
                "minimum_approvals": reviewer.approvals,
                "file_patterns": list(tiers.path_groups[reviewer.paths]),
                "reviewer": {"id": team_ids[reviewer.role], "type": "Team"},
            }
        )
    parameters["required_reviewers"] = required
    return ruleset


def generated_files(
    owners: Path = OWNERS_FILE,
    tiers_path: Path = TIERS_FILE,
    params: Path = PARAMS_FILE,
    ruleset_path: Path = RULESET_FILE,
    tier: str | None = None,
) -> dict[Path, str]:
    """What ``mlops codeowners --write`` writes: CODEOWNERS and, with a tier file, the ruleset."""
    rules = load_owners(owners)
    files = {CODEOWNERS_FILE: render_codeowners(rules)}
    if tiers_path.is_file() and ruleset_path.is_file():
        tiers = load_tiers(tiers_path)
        _, team_ids = load_teams(owners)
        base = json.loads(ruleset_path.read_text(encoding="utf-8"))
        chosen = tiers.policy(tier or project_tier(params))
        files[ruleset_path] = json.dumps(render_ruleset(base, chosen, tiers, team_ids), indent=2) + "\n"
    return files


# --- what GitHub would decide -------------------------------------------------------------------------


def merge_blockers(
    changed_files: Iterable[str],
    approvals: Mapping[str, Iterable[str]],
    ruleset: Mapping[str, Any],
    codeowners: str,
    team_handles: Mapping[int, str],
    author: str | None = None,
) -> list[str]:
    """Why the default branch's ruleset refuses the merge (empty: allowed), from its review rules.

    ``approvals`` maps each approving user (``@login``) to the team handles they belong to. Models
    GitHub's rules: the author's own approval does not count; ``required_approving_review_count``
    approvals; with ``require_code_owner_review`` every changed file needs an approval from one of its
    code owners (any one of them); every ``required_reviewers`` entry whose file patterns match a
    changed file needs ``minimum_approvals`` approvals from that team.
    """
    approvers = {user: set(teams) for user, teams in approvals.items() if user != author}
    files = sorted(set(changed_files))
    pull = next(
        (r.get("parameters", {}) for r in ruleset.get("rules", []) if r.get("type") == "pull_request"), None
    )
    if pull is None:
        return []
    blockers = []
    needed = int(pull.get("required_approving_review_count", 0))
    if len(approvers) < needed:
        blockers.append(f"needs {needed} approving reviews, has {len(approvers)}")
    if pull.get("require_code_owner_review"):
        rules = parse_codeowners(codeowners)
        for path in files:
            owners = code_owners(path, rules)
            if owners and not any(
                o == user or o in teams for user, teams in approvers.items() for o in owners
            ):
                blockers.append(f"{path}: needs a code-owner approval from one of {', '.join(owners)}")
    for entry in pull.get("required_reviewers", []) or []:
        touched = [p for p in files if any(matches(pattern, p) for pattern in entry["file_patterns"])]
        if not touched:
            continue
        team = team_handles.get(entry["reviewer"]["id"], f"team id {entry['reviewer']['id']}")
        got = sum(1 for teams in approvers.values() if team in teams)
        if got < entry["minimum_approvals"]:
            shown = ", ".join(touched[:3]) + (f" and {len(touched) - 3} more" if len(touched) > 3 else "")
            blockers.append(
                f"{shown}: needs {entry['minimum_approvals']} approval(s) from {team} "
                f"(ruleset required reviewers), has {got}"
            )
    return blockers


# --- team ids from the API -------------------------------------------------------------------------------


def github_token() -> str | None:
    """``GITHUB_TOKEN``, else what ``gh auth token`` prints (a logged-in GitHub CLI), else None."""
    import os
    import shutil
    import subprocess

    if os.environ.get("GITHUB_TOKEN"):
        return os.environ["GITHUB_TOKEN"]
    gh = shutil.which("gh")
    if gh is None:
        return None
    done = subprocess.run([gh, "auth", "token"], capture_output=True, text=True, check=False, timeout=30)
    return done.stdout.strip() or None if done.returncode == 0 else None


def resolve_team_ids(teams: Mapping[str, str], token: str | None = None) -> tuple[dict[str, int], list[str]]:
    """``(role -> team id, problems)`` from ``GET /orgs/{org}/teams/{slug}`` for every ``@org/slug`` team.

    A user handle (``@login``) is no team and is skipped; a team that does not exist, or that the token
    cannot see, is a problem naming it.
    """
    import os
    import urllib.parse

    from german_credit_scoring.gitops.github import DEFAULT_API_URL, GitHub, GitHubError

    ids: dict[str, int] = {}
    problems: list[str] = []
    api_url = os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL
    for role, handle in teams.items():
        org, slash, slug = handle.lstrip("@").partition("/")
        if not slash:
            print(f"teams.{role} is {handle}, a user, not a team: no team id (the ruleset cannot require it)")
            continue
        client = GitHub(repository=f"{org}/-", token=token, api_url=api_url)
        quote = urllib.parse.quote
        try:
            found = client.request("GET", f"/orgs/{quote(org, safe='')}/teams/{quote(slug, safe='')}")
        except GitHubError as error:
            if error.status == 404:
                problems.append(
                    f"team {handle} (teams.{role}) does not exist, or the token cannot see it: check the "
                    "handle, and that the token may read the organisation's teams (read:org)"
                )
            elif error.status in {401, 403}:
                problems.append(
                    f"the token cannot read team {handle} (teams.{role}): {error.status} {error.message}"
                )
            else:
                problems.append(f"team {handle} (teams.{role}): {error}")
            continue
        ids[role] = int(found["id"])
    return ids, problems


def _warn_placeholders(owners: Path, tier_name: str | None, tiers: TierFile | None) -> None:
    try:
        _, team_ids = load_teams(owners)
    except SettingsError:
        return
    roles = placeholder_roles(team_ids)
    if not roles:
        return
    used = {r.role for r in tiers.policy(tier_name).required_reviewers} if tiers and tier_name else set()
    needed = [r for r in roles if r in used]
    message = (
        f"{owners}: team_ids of {', '.join(roles)} are still placeholders, not GitHub team ids"
        + (
            f"; the {tier_name} tier's ruleset requires {', '.join(needed)} (GitHub refuses it as it is)"
            if needed
            else ""
        )
        + ": run `uv run mlops codeowners --resolve-teams` (token from GITHUB_TOKEN or `gh auth token`)"
    )
    from german_credit_scoring.gitops.github import warn

    warn(message)


# --- CLI ------------------------------------------------------------------------------------------------


def codeowners_cli(argv: list[str]) -> int:
    """``mlops codeowners --write | --check``: CODEOWNERS from owners.yaml, the ruleset from the risk tier."""
    parser = argparse.ArgumentParser(prog="mlops codeowners", description=codeowners_cli.__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write CODEOWNERS (and the ruleset)")
    mode.add_argument("--check", action="store_true", help="exit 1 when a file is not what --write gives")
    mode.add_argument(
        "--resolve-teams",
        action="store_true",
        help="look up each team's id (GET /orgs/ORG/teams/SLUG; token from GITHUB_TOKEN or `gh auth token`), "
        "write them into team_ids of the owners file, then --write",
    )
    parser.add_argument("--owners", type=Path, default=OWNERS_FILE)
    parser.add_argument("--output", type=Path, default=CODEOWNERS_FILE, help="the CODEOWNERS file")
    parser.add_argument("--tiers", type=Path, help="default: tiers.yaml beside the owners file")
    parser.add_argument("--ruleset", type=Path, help="default: ruleset.json beside the owners file")
    parser.add_argument("--params", type=Path, help="default: params.yaml above the owners' folder")
    parser.add_argument("--tier", choices=["low", "medium", "high"], help="default: project.risk_tier")
    args = parser.parse_args(argv)
    folder = args.owners.parent
    args.tiers = args.tiers or folder / TIERS_FILE.name
    args.ruleset = args.ruleset or folder / RULESET_FILE.name
    args.params = args.params or folder.parent / PARAMS_FILE.name
    if args.resolve_teams:
        try:
            teams, _ = load_teams(args.owners)
        except SettingsError as error:
            print(f"mlops codeowners: {error}", file=sys.stderr)
            return 2
        token = github_token()
        if token is None:
            print("mlops codeowners: --resolve-teams needs a token that may read the organisation's teams: "
                  "set GITHUB_TOKEN or log in with `gh auth login`", file=sys.stderr)  # fmt: skip
            return 2
        ids, problems = resolve_team_ids(teams, token)
        if problems:
            for problem in problems:
                print(f"mlops codeowners: {problem}", file=sys.stderr)
            print(f"mlops codeowners: {args.owners} left unchanged", file=sys.stderr)
            return 2
        write_team_ids(args.owners, ids)
        print(f"wrote team_ids to {args.owners}: " + ", ".join(f"{r} {i}" for r, i in ids.items()))
        args.write = True
    try:
        generated = generated_files(args.owners, args.tiers, args.params, args.ruleset, args.tier)
    except SettingsError as error:
        print(f"mlops codeowners: {error}", file=sys.stderr)
        return 2
    expected = {args.output if path == CODEOWNERS_FILE else path: text for path, text in generated.items()}
    status = 0
    for path, text in expected.items():
        if args.write:
            write_text(path, text)
            print(f"wrote {path}")
            continue
        actual = path.read_text(encoding="utf-8") if path.is_file() else ""
        if actual == text:
            print(f"{path} is in step with {args.owners}, {args.tiers}")
            continue
        diff = difflib.unified_diff(actual.splitlines(True), text.splitlines(True), str(path), "expected")
        sys.stderr.write("".join(diff))
        print(
            f"mlops codeowners: {path} is out of step with {args.owners} / {args.tiers} / the risk tier; "
            "run `uv run mlops codeowners --write`",
            file=sys.stderr,
        )
        status = 1
    tier_name = None
    tiers = None
    if args.tiers.is_file():
        try:
            tiers = load_tiers(args.tiers)
            tier_name = args.tier or project_tier(args.params)
        except (SettingsError, OSError):
            tiers = None
    _warn_placeholders(args.owners, tier_name, tiers)
    return status

"""Who must review what: ``governance/owners.yaml`` is the one place, ``.github/CODEOWNERS`` is derived.

Keeping the teams in one small YAML file (and generating CODEOWNERS from it) means a team rename is
one edit, and a test fails when somebody edits CODEOWNERS by hand and the two drift apart.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from german_credit_scoring.errors import SettingsError
from german_credit_scoring.io import write_text

OWNERS_FILE = Path("governance/owners.yaml")
CODEOWNERS_FILE = Path(".github/CODEOWNERS")
HANDLE = re.compile(r"^(@[A-Za-z0-9][A-Za-z0-9-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?|[^@\s]+@[^@\s]+\.[^@\s]+)$")
HEADER = (
    "# Generated from governance/owners.yaml by `mlops codeowners --write`: edit that file, not this one.\n"
    "# `mlops codeowners --check` (run by the tests) fails when the two differ.\n"
    "# The last matching line wins.\n"
)


@dataclass(frozen=True)
class Rule:
    pattern: str
    owners: tuple[str, ...]


def load_owners(path: Path = OWNERS_FILE) -> list[Rule]:
    """Read ``owners.yaml`` into CODEOWNERS rules, checking every team and path on the way."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("teams"), dict) or not raw["teams"]:
        raise SettingsError(
            f"{path}: expected a mapping with 'teams' (role: '@org/team'), 'default' and 'paths'"
        )
    unknown = set(raw) - {"teams", "team_ids", "default", "paths"}
    if unknown:
        raise SettingsError(
            f"{path}: unknown keys {sorted(unknown)} (expected teams, team_ids, default, paths)"
        )

    teams: dict[str, str] = {}
    for role, handle in raw["teams"].items():
        if not isinstance(handle, str) or not HANDLE.match(handle):
            raise SettingsError(
                f"{path}: teams.{role} must be a GitHub handle like '@org/team', got {handle!r}"
            )
        teams[str(role)] = handle

    def resolve(roles: object, where: str) -> tuple[str, ...]:
        if isinstance(roles, str):
            roles = [roles]
        if not isinstance(roles, list) or not roles:
            raise SettingsError(f"{path}: {where} must list at least one role from teams {sorted(teams)}")
        missing = [r for r in roles if r not in teams]
        if missing:
            raise SettingsError(f"{path}: {where} names unknown roles {missing}; known: {sorted(teams)}")
        return tuple(dict.fromkeys(teams[r] for r in roles))

    rules: list[Rule] = []
    if raw.get("default") is not None:
        rules.append(Rule("*", resolve(raw["default"], "default")))
    entries = raw.get("paths") or []
    if not isinstance(entries, list):
        raise SettingsError(f"{path}: 'paths' must be a list of {{path, owners}} entries")
    for index, entry in enumerate(entries):
        where = f"paths[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"path", "owners"}:
            raise SettingsError(f"{path}: {where} must have exactly the keys 'path' and 'owners'")
        pattern = str(entry["path"]).strip()
        if not pattern or any(c.isspace() for c in pattern) or pattern.startswith("#"):
            raise SettingsError(
                f"{path}: {where}.path {pattern!r} must be one CODEOWNERS pattern without spaces"
            )
        rules.append(Rule(_anchor(pattern), resolve(entry["owners"], f"{where}.owners")))
    return rules


def load_teams(path: Path = OWNERS_FILE) -> tuple[dict[str, str], dict[str, int]]:
    """``(role -> @handle, role -> GitHub team id)``; the ids are what a ruleset's required reviewers name."""
    load_owners(path)  # validates the file
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    teams = {str(role): str(handle) for role, handle in raw["teams"].items()}
    ids = raw.get("team_ids") or {}
    if not isinstance(ids, dict):
        raise SettingsError(f"{path}: team_ids must map roles to GitHub team ids (integers)")
    for role, team_id in ids.items():
        if role not in teams:
            raise SettingsError(f"{path}: team_ids.{role} names an unknown role; known: {sorted(teams)}")
        if isinstance(team_id, bool) or not isinstance(team_id, int) or team_id == 0:
            raise SettingsError(
                f"{path}: team_ids.{role} must be GitHub's team id (a positive integer; a negative one is a "
                f"placeholder), got {team_id!r}"
            )
    return teams, {str(k): int(v) for k, v in ids.items()}


def placeholder_roles(team_ids: dict[str, int]) -> list[str]:
    """Roles whose team id is still a placeholder (negative: GitHub refuses a ruleset naming it)."""
    return sorted(role for role, team_id in team_ids.items() if team_id < 0)


def write_team_ids(path: Path, ids: dict[str, int]) -> None:
    """Set ``team_ids.<role>`` in ``owners.yaml`` in place, keeping its comments and order."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"^team_ids:\s*(#.*)?$", line)), None)
    if start is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines += ["\nteam_ids:\n"]
        start = len(lines) - 1
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith((" ", "\t", "#"))):
        end += 1
    block = lines[start + 1 : end]
    done = set()
    for index, line in enumerate(block):
        found = re.match(r"^(\s+)([A-Za-z0-9_-]+):\s*[^#\n]*?(\s*#.*)?$", line.rstrip("\n"))
        if found and found.group(2) in ids:
            role = found.group(2)
            block[index] = f"{found.group(1)}{role}: {ids[role]}{found.group(3) or ''}\n"
            done.add(role)
    last = max((i for i, line in enumerate(block) if line.strip() and not line.lstrip().startswith("#")),
               default=-1)  # fmt: skip
    block[last + 1 : last + 1] = [f"  {role}: {ids[role]}\n" for role in ids if role not in done]
    write_text(path, "".join(lines[: start + 1] + block + lines[end:]))


def _anchor(pattern: str) -> str:
    """``models/`` -> ``/models/``: a listed path means that path at the root, not anywhere below it."""
    return pattern if pattern.startswith(("/", "*")) else "/" + pattern


def render_codeowners(rules: list[Rule]) -> str:
    width = max(len(rule.pattern) for rule in rules) if rules else 0
    lines = [f"{rule.pattern.ljust(width)}  {' '.join(rule.owners)}" for rule in rules]
    return HEADER + "\n" + "\n".join(lines) + "\n"


def codeowners_cli(argv: list[str]) -> int:
    """``mlops codeowners --write | --check``: generate or verify ``.github/CODEOWNERS``."""
    parser = argparse.ArgumentParser(prog="mlops codeowners", description=codeowners_cli.__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write CODEOWNERS from the owners file")
    mode.add_argument("--check", action="store_true", help="exit 1 when CODEOWNERS is not what --write gives")
    parser.add_argument("--owners", type=Path, default=OWNERS_FILE)
    parser.add_argument("--output", type=Path, default=CODEOWNERS_FILE)
    args = parser.parse_args(argv)

    try:
        expected = render_codeowners(load_owners(args.owners))
    except SettingsError as error:
        print(f"mlops codeowners: {error}", file=sys.stderr)
        return 2
    if args.write:
        write_text(args.output, expected)
        print(f"wrote {args.output} from {args.owners}")
        return 0
    actual = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
    if actual == expected:
        print(f"{args.output} matches {args.owners}")
        return 0
    diff = difflib.unified_diff(
        actual.splitlines(keepends=True), expected.splitlines(keepends=True), str(args.output), "expected"
    )
    sys.stderr.write("".join(diff))
    print(
        f"mlops codeowners: {args.output} is out of step with {args.owners}; run `uv run mlops codeowners --write`",
        file=sys.stderr,
    )
    return 1

"""The audit trail, ``governance/audit.jsonl``: append-only and hash-chained.

Every promotion and rollback that reaches main appends one JSON line: what (model version and
digest, image, gate verdict, risk tier), who approved (read from the pull request's reviews through
the API at merge time, never typed), which pull request and merge commit, when. Each entry carries
the SHA-256 of the previous entry and its own hash over its canonical JSON, so changing, removing
or reordering any past entry breaks the chain, and ``mlops audit --check --base origin/main`` (a CI
check) also requires main's file to be an unchanged prefix of the new one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from german_credit_scoring.errors import ProjectError

AUDIT_FILE = Path("governance/audit.jsonl")
GENESIS = "0" * 64


class AuditError(ProjectError):
    """The audit trail was edited, reordered or truncated."""


def entry_hash(entry: dict[str, Any]) -> str:
    body = {key: value for key, value in entry.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def read_entries(path: Path | str = AUDIT_FILE) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            raise AuditError(f"{path}:{number}: empty line (the trail is one JSON object per line)")
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise AuditError(f"{path}:{number}: not valid JSON ({error.msg})") from None
    return entries


def verify_chain(entries: list[dict[str, Any]], source: str = str(AUDIT_FILE)) -> None:
    """Raise AuditError naming the first line whose hash or link to its predecessor is wrong."""
    previous = GENESIS
    for number, entry in enumerate(entries, 1):
        if entry.get("seq") != number:
            raise AuditError(
                f"{source}:{number}: seq is {entry.get('seq')!r}, expected {number} (removed or reordered?)"
            )
        if entry.get("prev_hash") != previous:
            raise AuditError(
                f"{source}:{number}: prev_hash does not match line {number - 1} (an earlier entry changed)"
            )
        if entry.get("hash") != entry_hash(entry):
            raise AuditError(
                f"{source}:{number}: hash does not match the entry's content (this entry was edited)"
            )
        previous = entry["hash"]


def append(record: dict[str, Any], path: Path | str = AUDIT_FILE) -> dict[str, Any]:
    """Append ``record`` as the next chained entry (after verifying the chain so far)."""
    path = Path(path)
    entries = read_entries(path)
    verify_chain(entries, str(path))
    entry = {"seq": len(entries) + 1, "prev_hash": entries[-1]["hash"] if entries else GENESIS, **record}
    entry.pop("hash", None)
    entry["hash"] = entry_hash(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
    return entry


def check_append_only(path: Path | str, base_text: str | None) -> None:
    """The file at the base ref must be an unchanged prefix of the current one, and the chain valid."""
    path = Path(path)
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if base_text and not current.startswith(base_text):
        old, new = base_text.splitlines(), current.splitlines()
        line = next(
            (i for i, (a, b) in enumerate(zip(old, new, strict=False), 1) if a != b),
            min(len(old), len(new)) + 1,
        )
        raise AuditError(
            f"{path}:{line}: a past entry was changed or removed; the audit trail is append-only"
        )
    verify_chain(read_entries(path), str(path))


def approvers_of(model_version: str, path: Path | str = AUDIT_FILE) -> list[str]:
    """Who approved promotions of ``model_version`` (latest promotion), as recorded at merge time."""
    try:
        entries = read_entries(path)
    except AuditError:
        return []
    promotions = [
        e for e in entries if e.get("model_version") == model_version and e.get("action") == "promote"
    ]
    return [a["login"] for a in promotions[-1].get("approvers", [])] if promotions else []


def history(model_version: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e for e in entries if e.get("model_version") == model_version or e.get("replaced") == model_version
    ]


def format_entry(entry: dict[str, Any]) -> str:
    approvers = ", ".join(
        f"{a['login']} ({a.get('state', 'APPROVED').lower()})" for a in entry.get("approvers", [])
    )
    gate = entry.get("gate") or {}
    return (
        f"#{entry['seq']} {entry.get('merged_at', '?')} {entry.get('action')} {entry.get('model_version')} "
        f"(replaced {entry.get('replaced') or 'nothing'}) via PR #{entry.get('pull_request')} "
        f"merge {str(entry.get('merge_commit') or '?')[:12]}; tier {entry.get('risk_tier')}; "
        f"gate {'passed' if gate.get('passed') else 'FAILED'}; approved by {approvers or 'nobody'}; "
        f"model {entry.get('model_digest')}; image {entry.get('image') or 'n/a'}"
    )


def trail_file(path: Path, ref: str | None = "origin/audit") -> Path:
    """The local trail, else the one on the audit branch (``git fetch origin audit`` first), copied beside it."""
    if path.is_file() or not ref:
        return path
    shown = _git_show(ref, path)
    if shown is None:
        return path
    import tempfile

    copy = Path(tempfile.mkdtemp(prefix="audit-")) / path.name
    copy.write_text(shown, encoding="utf-8")
    return copy


def review_overdue(
    entries: list[dict[str, Any]], model_version: str, every_days: int, today: str | None = None
) -> str | None:
    """Why the production model's periodic review is overdue (None: it is not).

    The clock starts at the latest promotion or rollback that put ``model_version`` in production.
    """
    from datetime import UTC, date, datetime

    started = [e for e in entries if e.get("model_version") == model_version and e.get("merged_at")]
    if not started:
        return f"model {model_version} is in production but the audit trail has no entry for it"
    since = datetime.fromisoformat(str(started[-1]["merged_at"]).replace("Z", "+00:00")).date()
    now = date.fromisoformat(today) if today else datetime.now(UTC).date()
    age = (now - since).days
    if age > every_days:
        return (
            f"model {model_version} has run since {since} ({age} days); its risk tier requires a review "
            f"every {every_days} days: overdue by {age - every_days} days (promote it again, or a successor)"
        )
    return None


def _git_show(ref: str, path: Path) -> str | None:
    shown = subprocess.run(
        ["git", "show", f"{ref}:{path.as_posix()}"], capture_output=True, text=True, check=False
    )
    return shown.stdout if shown.returncode == 0 else None


def audit_cli(argv: list[str]) -> int:
    """``mlops audit [VERSION] | --check [--base REF]``: a model version's history, or verify the trail."""
    parser = argparse.ArgumentParser(prog="mlops audit", description=audit_cli.__doc__)
    parser.add_argument("version", nargs="?", help="model version (default: every entry)")
    parser.add_argument("--check", action="store_true", help="verify the hash chain (exit 1 on any edit)")
    parser.add_argument("--base", help="with --check: the ref whose trail must be an unchanged prefix")
    parser.add_argument("--file", type=Path, default=AUDIT_FILE)
    parser.add_argument("--json", action="store_true", help="print entries as JSON lines")
    parser.add_argument("--ref", default="origin/audit", help="where the trail is when --file is not here")
    parser.add_argument("--overdue", action="store_true", help="exit 1 when production's review is overdue")
    parser.add_argument("--today", help="YYYY-MM-DD (default: today, UTC)")
    args = parser.parse_args(argv)
    if args.overdue:
        return _overdue(args)
    if not args.check:
        args.file = trail_file(args.file, args.ref)
    try:
        if args.check:
            check_append_only(args.file, _git_show(args.base, args.file) if args.base else None)
            print(f"{args.file}: {len(read_entries(args.file))} entries, chain intact")
            return 0
        entries = read_entries(args.file)
        verify_chain(entries, str(args.file))
    except AuditError as error:
        print(f"mlops audit: {error}", file=sys.stderr)
        return 1
    shown = history(args.version, entries) if args.version else entries
    if not shown:
        print(f"no audit entries{' for model ' + args.version if args.version else ''} in {args.file}")
        return 0
    for entry in shown:
        print(json.dumps(entry, sort_keys=True) if args.json else format_entry(entry))
    return 0


def _overdue(args: argparse.Namespace) -> int:
    from german_credit_scoring.governance.policy import load_tiers
    from german_credit_scoring.governance.production import load_production

    current = load_production().current
    if current is None:
        print("no model in production: no review due")
        return 0
    try:
        entries = read_entries(trail_file(args.file, args.ref))
        verify_chain(entries, str(args.file))
    except AuditError as error:
        print(f"mlops audit: {error}", file=sys.stderr)
        return 1
    every = load_tiers().policy(current.risk_tier).review_every_days
    reason = review_overdue(entries, current.model_version, every, args.today)
    if reason:
        print(f"mlops audit: {reason}", file=sys.stderr)
        return 1
    print(f"model {current.model_version}: review not due (every {every} days, {current.risk_tier} tier)")
    return 0

"""Model lineage: which reference snapshot each served model version was trained against.

Read from what the pipeline already commits, no extra file: ``models/bento.json`` names the packaged
model version and ``dvc.lock`` holds the MD5 of the reference snapshot (``data/reference/``) it was
trained against. The working tree gives production's entry; the git history of those two files gives
every earlier release (first packaged = the oldest commit naming the version: the model's age). The
MD5 is DVC's, so an older version's snapshot is found in the DVC cache (``dvc fetch`` from the remote)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from german_credit_scoring import paths
from german_credit_scoring.errors import DataError

LOCK = Path("dvc.lock")
DVC_CACHE = Path(".dvc/cache/files/md5")


class VersionLineage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reference_md5: str
    reference_rows: int | None = None
    packaged_at: str
    bento: str | None = None


class Lineage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    production: str | None = None  # the version packaged last (what main serves)
    versions: dict[str, VersionLineage] = Field(default_factory=dict)


def md5_of(path: Path | str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(bento_text: str, lock_text: str) -> tuple[str, VersionLineage] | None:
    import json

    import yaml

    try:
        bento = json.loads(bento_text)
        lock = yaml.safe_load(lock_text) or {}
    except (ValueError, yaml.YAMLError):
        return None
    version = (bento.get("labels") or {}).get("model_version") or str(bento.get("model", "")).split(":")[-1]
    outs = ((lock.get("stages") or {}).get("ingest") or {}).get("outs") or []
    md5 = next((o.get("md5") for o in outs if o.get("path") == str(paths.REFERENCE)), None)
    if not version or not md5:
        return None
    return version, VersionLineage(reference_md5=md5, packaged_at="", bento=bento.get("bento"))


def _git(root: Path, *args: str) -> str | None:
    import subprocess

    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def load_lineage(root: Path | str = ".", max_commits: int = 500) -> Lineage:
    """Every model version packaged in the working tree or the git history, newest first."""
    root = Path(root)
    versions: dict[str, VersionLineage] = {}
    production = None
    bento, lock = root / paths.BENTO_RECORD, root / LOCK
    if bento.is_file() and lock.is_file():
        found = _entry(bento.read_text(encoding="utf-8"), lock.read_text(encoding="utf-8"))
        if found is not None:
            production = found[0]
            stamp = datetime.fromtimestamp(bento.stat().st_mtime, UTC).isoformat(timespec="seconds")
            versions[found[0]] = found[1].model_copy(update={"packaged_at": stamp})
    log_text = _git(
        root, "log", f"-n{max_commits}", "--format=%H %cI", "--", str(paths.BENTO_RECORD), str(LOCK)
    )
    for line in (log_text or "").splitlines():  # newest first: the last hit is when it was packaged
        commit, stamp = line.split(" ", 1)
        bento_text = _git(root, "show", f"{commit}:{paths.BENTO_RECORD}")
        lock_text = _git(root, "show", f"{commit}:{LOCK}")
        if bento_text is None or lock_text is None:
            continue
        found = _entry(bento_text, lock_text)
        if found is None:
            continue
        version, entry = found
        known = versions.get(version)
        if known is None or known.reference_md5 == entry.reference_md5:
            versions[version] = entry.model_copy(update={"packaged_at": stamp})
        production = production or version
    return Lineage(production=production, versions=versions)


def reference_for(
    version: str,
    lineage: Lineage,
    current_reference: Path = paths.REFERENCE,
    cache: Path = DVC_CACHE,
) -> tuple[Path, str]:
    """The snapshot a model version was trained against: today's reference if its hash matches,
    else the DVC cache's copy. Raises ``DataError`` naming the version and hash when neither has it."""
    entry = lineage.versions.get(version)
    if entry is None:
        raise DataError(f"model version {version!r} was never packaged here: its reference is unknown")
    if Path(current_reference).is_file() and md5_of(current_reference) == entry.reference_md5:
        return Path(current_reference), entry.reference_md5
    cached = Path(cache) / entry.reference_md5[:2] / entry.reference_md5[2:]
    if cached.is_file():
        return cached, entry.reference_md5
    raise DataError(
        f"the reference snapshot of model version {version!r} (md5 {entry.reference_md5}) is neither "
        f"{current_reference} nor in the DVC cache ({cached}): fetch it with `dvc fetch` from the remote"
    )

"""The desired production state, ``governance/production.yaml``: one typed reader and writer.

``current`` is what runs; ``history`` holds the entries it replaced, newest first. A promotion pushes
``current`` onto the history; a rollback pops the newest history entry back, byte for byte, so going
back restores exactly what ran before.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from german_credit_scoring.errors import SettingsError
from german_credit_scoring.io import write_text

PRODUCTION_FILE = Path("governance/production.yaml")
HEADER = (
    "# The desired production state: which model version (and image) runs in production.\n"
    "# Never edited by hand: `mlops promote` and `mlops rollback` open the pull request that changes it, the\n"
    "# ruleset requires the risk tier's approvers, and merging it deploys (Argo CD / Flux sync from main)\n"
    "# and appends to governance/audit.jsonl. `current: null` means no model is in production yet.\n"
)


class Entry(BaseModel):
    """One production release: the model and the image built from it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_version: str
    model_digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    image: str | None = None  # registry/name@sha256:... once main pushed it
    risk_tier: str
    gate_passed: bool
    reason: str = ""


class Production(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    current: Entry | None = None
    history: list[Entry] = Field(default_factory=list)

    def promote(self, entry: Entry) -> Production:
        history = [self.current, *self.history] if self.current is not None else list(self.history)
        return Production(current=entry, history=history)

    def rollback_target(self) -> Entry | None:
        return self.history[0] if self.history else None

    def rollback(self) -> Production:
        if not self.history:
            raise SettingsError(f"{PRODUCTION_FILE}: no earlier entry to roll back to")
        return Production(current=self.history[0], history=list(self.history[1:]))


def load_production(path: Path | str = PRODUCTION_FILE) -> Production:
    path = Path(path)
    if not path.is_file():
        return Production()
    try:
        return Production.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except yaml.YAMLError as error:
        raise SettingsError(f"{path} is not valid YAML: {error}") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise SettingsError(f"{path}: {problems}") from None


def render_production(state: Production) -> str:
    body = yaml.safe_dump(state.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return HEADER + body


def write_production(state: Production, path: Path | str = PRODUCTION_FILE) -> None:
    write_text(Path(path), render_production(state))


def in_production(
    refs: list[str] | tuple[str, ...], path: Path = PRODUCTION_FILE, cwd: Path | str = "."
) -> bool:
    """Does production (the first of ``refs`` that exists, like the gate's baseline) run a model?

    Read from git, not the work tree: a promotion pull request changes the file without making the
    gate's result (a DVC output) stale. Without any of the refs, the work tree's file decides.
    """
    import subprocess

    for ref in refs:
        exists = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                                cwd=cwd, capture_output=True, check=False)  # fmt: skip
        if exists.returncode != 0:
            continue
        shown = subprocess.run(["git", "show", f"{ref}:{path.as_posix()}"],
                               cwd=cwd, capture_output=True, text=True, check=False)  # fmt: skip
        if shown.returncode != 0:
            return False  # that ref is production and has no production state: nothing runs yet
        raw = yaml.safe_load(shown.stdout) or {}
        return raw.get("current") is not None
    return load_production(Path(cwd) / path).current is not None

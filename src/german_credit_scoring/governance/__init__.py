"""Governance: who approves what (owners, risk tiers, ruleset), model cards, lineage and signing,
promotion and rollback as pull requests, and the append-only audit trail.

``owners`` is re-exported here because ``mlops codeowners`` and the template's scaffold call
``german_credit_scoring.governance.load_owners`` / ``render_codeowners``.
"""

from german_credit_scoring.governance.owners import (
    CODEOWNERS_FILE,
    OWNERS_FILE,
    Rule,
    load_owners,
    render_codeowners,
)
from german_credit_scoring.governance.policy import codeowners_cli

__all__ = ["CODEOWNERS_FILE", "OWNERS_FILE", "Rule", "codeowners_cli", "load_owners", "render_codeowners"]

"""The model card: rendered with jinja2 from the pipeline's own outputs, never typed by hand.

Facts come from the files the stages wrote (``reports/ingest.json``, the candidate's ``model.json``,
``metrics/evaluate.json``, ``metrics/fairness.json``, the gate's verdict), the policy files
(``governance/tiers.yaml``, ``owners.yaml``) and, once a promotion was merged, the audit trail (who
approved). Only the statements people must make (intended and out-of-scope use, limitations) come
from ``governance/card.yaml``. The card is a function of those inputs: no time stamps, so the gate
stage can write it as a DVC output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from german_credit_scoring import io, paths
from german_credit_scoring.errors import SettingsError

CARD_FILE = Path("reports/model_card.md")
CARD_TEXT = Path("governance/card.yaml")
EXPLANATIONS = Path("reports/explain.json")  # the evaluate stage's ExplainReport


def _read_json(path: Path) -> dict[str, Any]:
    return io.read_json(path) if path.is_file() else {}


def _explanations(path: Path) -> dict[str, Any]:
    """The evaluate stage's explanation summary (its typed record), or {} when there is none."""
    if not path.is_file():
        return {}
    from german_credit_scoring.explain.global_importance import ExplainReport

    report = ExplainReport.read(path)
    top = sorted(report.importance, key=lambda f: f.share, reverse=True)[:5]
    return {"units": report.units, "rows": report.rows, "top": top, "unavailable": report.unavailable}


def card_context(
    settings: Any, gate_result: dict[str, Any], root: Path | str = ".", with_approvers: bool = False
) -> dict[str, Any]:
    """Everything the card shows, gathered from the pipeline's outputs and the governance files.

    ``with_approvers`` reads who approved this version from the audit trail: for a card rendered after
    the merge (``mlops card``); the gate stage's card (a DVC output) leaves it out, since approval
    happens after the gate and the trail is not one of the stage's inputs.
    """
    from german_credit_scoring.governance.audit import approvers_of, trail_file
    from german_credit_scoring.governance.owners import load_teams
    from german_credit_scoring.governance.policy import load_tiers

    root = Path(root)
    text_file = root / CARD_TEXT
    text = yaml.safe_load(text_file.read_text(encoding="utf-8")) if text_file.is_file() else {}
    unknown = set(text or {}) - {"intended_use", "out_of_scope", "limitations"}
    if unknown:
        raise SettingsError(
            f"{text_file}: unknown keys {sorted(unknown)} (intended_use, out_of_scope, limitations)"
        )
    meta = _read_json(root / paths.CANDIDATE_META)
    tier_name = settings.project.risk_tier
    tier = load_tiers(root / "governance/tiers.yaml").policy(tier_name)
    teams, _ = load_teams(root / "governance/owners.yaml")
    version = str(gate_result.get("model_version") or meta.get("version") or "unknown")
    return {
        "project": settings.project.name,
        "version": version,
        "text": text or {},
        "meta": meta,
        "data": settings.data,
        "split": settings.split,
        "ingest": _read_json(root / paths.INGEST_SUMMARY),
        "evaluation": _read_json(root / paths.EVALUATE_METRICS),
        "fairness": _read_json(root / paths.FAIRNESS_METRICS),
        "explanations": _explanations(root / EXPLANATIONS),
        "gate": gate_result,
        "tier_name": tier_name,
        "tier": tier,
        "owners": teams,
        "approvers": approvers_of(version, trail_file(root / "governance/audit.jsonl"))
        if with_approvers
        else [],
        "metric_names": [
            "roc_auc",
            "pr_auc",
            "f1",
            "precision",
            "recall",
            "accuracy",
            "brier",
            "expected_cost",
        ],
    }


def render_card(context: dict[str, Any]) -> str:
    from german_credit_scoring.markdown import render

    return render("model_card.md.j2", **context)


def write_card(settings: Any, gate_result: dict[str, Any], path: Path = CARD_FILE) -> str:
    """Render the card, write it to ``reports/model_card.md`` and return it (the gate comment embeds it)."""
    card = render_card(card_context(settings, gate_result))
    io.write_text(path, card)
    return card


def card_cli(argv: list[str]) -> int:
    """``mlops card``: render the model card from the current outputs, with approvers from the audit trail."""
    import argparse

    from german_credit_scoring.settings import load_settings

    parser = argparse.ArgumentParser(prog="mlops card", description=card_cli.__doc__)
    parser.add_argument("--output", type=Path, default=CARD_FILE, help="'-' prints it")
    args = parser.parse_args(argv)
    if not paths.GATE_RESULT.is_file():
        print(f"mlops card: {paths.GATE_RESULT} not found: run `dvc repro gate` first", file=sys.stderr)
        return 2
    card = render_card(card_context(load_settings(), io.read_json(paths.GATE_RESULT), with_approvers=True))
    if str(args.output) == "-":
        sys.stdout.write(card)
    else:
        io.write_text(args.output, card)
        print(f"wrote {args.output}")
    return 0

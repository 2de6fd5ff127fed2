"""What a refused model means for the team: the gate's verdict as a short summary (`mlops gate-summary`).

``python3 bootstrap.py pipeline`` calls this when ``dvc repro`` fails, so a refusal ends with which
checks failed, by how much, where the report is and the documented ways forward, instead of DVC's
error line. It reads ``metrics/gate.json`` (written by the gate stage) into a typed record.

Exit codes: 0 the gate approved the model, 1 the gate refused it, 2 no verdict from this run (the file
is missing, unreadable, or older than ``--since``: the pipeline stopped before the gate).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from german_credit_scoring import paths

EXIT_APPROVED = 0
EXIT_REFUSED = 1
EXIT_NO_VERDICT = 2
README_SECTION = 'README.md, "When the gate refuses a model"'
# Where each kind of check is set (the policy is reviewed like code: CODEOWNERS on params.yaml).
POLICY_KEYS = {
    "metric": "gate.min_metrics / gate.max_metrics",
    "fairness": "gate.max_fairness / gate.min_fairness",
    "regression": "gate.max_regression",
    "latency": "gate.max_latency_p95_ms",
    "size": "gate.max_model_size_mb",
}


class CheckRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    kind: str
    value: float | None = None
    threshold: float | None = None
    comparison: str = ""
    passed: bool
    detail: str = ""

    @property
    def shortfall(self) -> float | None:
        """How far the value is on the wrong side of the threshold (None when not comparable)."""
        if self.value is None or self.threshold is None or self.value != self.value:
            return None
        if self.comparison == ">=":
            return self.threshold - self.value
        if self.comparison == "<=":
            return self.value - self.threshold
        return None


class GateRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    passed: bool
    model_version: str = "unknown"
    risk_tier: str | None = None
    checks: list[CheckRecord]

    @property
    def failed(self) -> list[CheckRecord]:
        return [c for c in self.checks if not c.passed]


def _number(value: float) -> str:
    return f"{value:.4g}"


def describe(check: CheckRecord) -> str:
    """One failed check: its value against its limit and by how much it misses."""
    if check.value is None or check.threshold is None:
        return f"{check.name}: {check.detail or 'failed'}"
    line = f"{check.name} = {_number(check.value)}, limit {check.comparison} {_number(check.threshold)}"
    if check.shortfall is not None and check.shortfall > 0:
        line += f" (misses by {_number(check.shortfall)})"
    return line + (f"; {check.detail}" if check.detail else "")


def summary(record: GateRecord, gate_file: Path, report: Path, approved_dir: Path) -> str:
    tier = f", risk tier {record.risk_tier}" if record.risk_tier else ""
    if record.passed:
        return (
            f"gate: model {record.model_version} approved{tier}; all {len(record.checks)} checks met "
            f"(report: {report})"
        )
    failed = record.failed
    kinds = sorted({c.kind for c in failed})
    kept = (
        f"{approved_dir}/ still holds the last approved model"
        if approved_dir.is_dir() and any(approved_dir.iterdir())
        else f"no model is approved yet ({approved_dir}/ is empty)"
    )
    lines = [
        f"gate: model {record.model_version} REFUSED{tier}: {len(failed)} of {len(record.checks)} checks failed",
        *(f"  - {describe(c)}" for c in failed),
        f"Nothing was replaced: {kept}.",
        f"Report: {report} (every check), {gate_file}; the metrics behind it are in metrics/.",
        f"Ways forward ({README_SECTION}):",
        "  - change the policy in review: edit "
        + ", ".join(POLICY_KEYS.get(kind, f"gate ({kind})") for kind in kinds)
        + " in params.yaml in a pull request; model risk approves it (CODEOWNERS)",
    ]
    if "fairness" in kinds:
        lines.append(
            "  - mitigate: compare the options (uv run mlops compare), then set fairness.mitigation in "
            "params.yaml (e.g. reweighing) or drop inputs that stand in for a protected attribute; rerun"
        )
    lines.append("  - improve the model or the data (model.type, hyper-parameters, features), then rerun")
    return "\n".join(lines)


def load_record(path: Path) -> GateRecord:
    return GateRecord.model_validate(json.loads(path.read_text(encoding="utf-8")))


def gate_summary_cli(argv: list[str] | None = None) -> int:
    """`mlops gate-summary`: print the gate's verdict; exit 0 approved, 1 refused, 2 no verdict."""
    parser = argparse.ArgumentParser(prog="mlops gate-summary", description=gate_summary_cli.__doc__)
    parser.add_argument("--gate", type=Path, default=paths.GATE_RESULT, help="the gate's verdict file")
    parser.add_argument("--report", type=Path, default=paths.GATE_MD, help="the gate's report")
    parser.add_argument("--approved", type=Path, default=paths.APPROVED_DIR, help="the approved model")
    parser.add_argument(
        "--since",
        type=float,
        help="only a verdict written after this time (seconds since the epoch) counts: this run's",
    )
    args = parser.parse_args(argv)
    if not args.gate.is_file():
        print(f"gate: no verdict: {args.gate} does not exist (the pipeline stopped before the gate)")
        return EXIT_NO_VERDICT
    if args.since is not None and args.gate.stat().st_mtime < args.since:
        print(f"gate: no verdict from this run: {args.gate} is older (the pipeline stopped before the gate)")
        return EXIT_NO_VERDICT
    try:
        record = load_record(args.gate)
    except (OSError, ValueError, ValidationError) as error:
        print(f"gate: {args.gate}: cannot read the verdict: {error}", file=sys.stderr)
        return EXIT_NO_VERDICT
    print(summary(record, args.gate, args.report, args.approved))
    return EXIT_APPROVED if record.passed else EXIT_REFUSED

"""`mlops <command>`: the project's commands, the same ones the workflows and the README call.

Each command lives in the module that owns its logic and is imported only when it runs, so that
`mlops report` does not pay for `import mlflow`.
"""

from __future__ import annotations

import importlib
import sys

# command -> "module:function"; the function takes the remaining argv and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "infer-contract": (
        "german_credit_scoring.inference:infer_contract_cli",
        "draft features.yaml and the GX suite from a data file",
    ),
    "report": (
        "german_credit_scoring.gitops.reporting:report_cli",
        "assemble the stages' Markdown into the pull-request comment",
    ),
    "comment": (
        "german_credit_scoring.gitops.github:comment_cli",
        "create or update this workflow's pull-request comment",
    ),
    "drift": (
        "german_credit_scoring.monitoring.drift:drift_cli",
        "compare current data with the training reference",
    ),
    "score": (
        "german_credit_scoring.explain.batch:score_cli",
        "score a data file with the approved model, each record with its reasons",
    ),
    "ship-logs": (
        "german_credit_scoring.monitoring.commands:ship_logs_cli",
        "move closed prediction-log partitions to the store and prune expired ones",
    ),
    "prune-logs": (
        "german_credit_scoring.monitoring.commands:prune_logs_cli",
        "delete logs and outcomes older than monitoring.store.retention_days",
    ),
    "drift-window": (
        "german_credit_scoring.monitoring.commands:drift_window_cli",
        "write the drift window (data/current/) from the store with its version's reference",
    ),
    "drift-check": (
        "german_credit_scoring.monitoring.commands:drift_check_cli",
        "the drift check on the window (exit 1 drift, 2 bad input, 3 crash)",
    ),
    "labels": (
        "german_credit_scoring.monitoring.labels:labels_cli",
        "ingest outcome files; production performance and fairness per window",
    ),
    "triggers": (
        "german_credit_scoring.monitoring.triggers:triggers_cli",
        "evaluate the retraining triggers -> reports/triggers.{json,md}",
    ),
    "dataset": (
        "german_credit_scoring.monitoring.dataset:dataset_cli",
        "dataset append: newly labelled rows as a new DVC-tracked dataset version",
    ),
    "simulate-drift": (
        "german_credit_scoring.monitoring.simulate:simulate_cli",
        "write a current batch with a chosen kind of drift",
    ),
    "retrain-pr": (
        "german_credit_scoring.gitops.github:retrain_pr_cli",
        "open or update the single retraining pull request",
    ),
    "codeowners": (
        "german_credit_scoring.governance:codeowners_cli",
        "write or check .github/CODEOWNERS and the ruleset from governance/ (owners, risk tier); --resolve-teams",
    ),
    "card": ("german_credit_scoring.governance.card:card_cli", "render the model card (with approvers)"),
    "lineage": ("german_credit_scoring.governance.lineage:lineage_cli", "write the model's lineage manifest"),
    "sign": ("german_credit_scoring.governance.lineage:sign_cli", "sign the model and its manifest"),
    "verify": (
        "german_credit_scoring.governance.lineage:verify_cli",
        "check signatures and manifest against the model files",
    ),
    "promote": (
        "german_credit_scoring.governance.promotion:promote_cli",
        "open the pull request that puts a model version in production",
    ),
    "rollback": (
        "german_credit_scoring.governance.promotion:rollback_cli",
        "open the pull request back to the previous production entry",
    ),
    "promotion-check": (
        "german_credit_scoring.governance.promotion:check_cli",
        "verify a production change: model exists, tier's checks passed, approvals",
    ),
    "audit": (
        "german_credit_scoring.governance.audit:audit_cli",
        "a model version's history, or --check the trail",
    ),
    "audit-record": (
        "german_credit_scoring.governance.promotion:audit_record_cli",
        "after a merge, append who approved what to the audit trail",
    ),
    "champion": (
        "german_credit_scoring.governance.promotion:champion_cli",
        "move the MLflow alias champion to the production version",
    ),
    "kustomization": (
        "german_credit_scoring.governance.deploy:kustomization_cli",
        "write or check serving/k8s/kustomization.yaml from governance/production.yaml",
    ),
    "lock-check": (
        "german_credit_scoring.gitops.lock:check_cli",
        "is the committed dvc.lock what CI reproduced? names the differing stages (exit 1)",
    ),
    "run-stage": (
        "german_credit_scoring.gitops.stagerun:run_stage_cli",
        "a pull-request stage job's DVC work: restored from the run-cache or reproduced, never skipped",
    ),
    "take-lock": (
        "german_credit_scoring.gitops.takelock:take_lock_cli",
        "take the dvc.lock and outputs CI reproduced for this branch (any OS)",
    ),
    "handover": (
        "german_credit_scoring.gitops.handover:handover_cli",
        "pack, fetch and verify the reviewed release; the image's OCI labels",
    ),
    "compare": (
        "german_credit_scoring.explain.compare:compare_cli",
        "score production's model beside the candidate and mitigated variants on the same test rows",
    ),
    "register": (
        "german_credit_scoring.lifecycle.tracking:register_cli",
        "register the approved model in MLflow with alias challenger",
    ),
    "gate-summary": (
        "german_credit_scoring.governance.outcome:gate_summary_cli",
        "the gate's verdict in short: failed checks, by how much, ways forward (exit 1 refused)",
    ),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mlops <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"mlops: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, function_name = COMMANDS[name][0].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    return int(function(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

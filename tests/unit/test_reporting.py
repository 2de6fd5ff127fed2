"""`mlops report`: one comment from the stages' sections, under GitHub's limit, tables never cut."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from german_credit_scoring.gitops import reporting
from german_credit_scoring.lifecycle.fairness import fairness_report
from german_credit_scoring.lifecycle.fairness import render_markdown as fairness_md
from german_credit_scoring.lifecycle.gate import evaluate_gate
from german_credit_scoring.lifecycle.gate import render_markdown as gate_md
from german_credit_scoring.settings import GateSettings

ROOT = Path(__file__).resolve().parents[2]


def tables(text: str) -> list[list[str]]:
    return [b.lines for b in reporting.split_blocks(text) if b.kind == "table"]


def assert_well_formed(text: str) -> None:
    """Every table: header, separator, then rows with the header's number of cells."""
    for table in tables(text):
        cells = lambda line: len(re.split(r"(?<!\\)\|", line.strip().strip("|")))
        width = cells(table[0])
        assert reporting.TABLE_SEPARATOR.match(table[1]), table[:2]
        assert cells(table[1]) == width
        for row in table[2:]:
            assert cells(row) == width, row
            assert row.rstrip().endswith("|")
    assert text.count("<details>") == text.count("</details>")


# --- real-looking stage results ---------------------------------------------------------------------


def features_md(n_features: int) -> str:
    rows = "\n".join(
        f"| feature_{i:03d} | {'category' if i % 3 else 'float'} | {'one_hot' if i % 3 else 'standard'} | "
        f"Description of feature {i}, owned by the data team and reviewed quarterly | data-team |"
        for i in range(n_features)
    )
    return (
        "## Features\n\n✅ contract matches the data: "
        f"{n_features} features.\n\n| Feature | Type | Transformation | Description | Owner |\n"
        f"|---|---|---|---|---|\n{rows}\n"
    )


def predictions(n_groups: int, n: int = 20_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "y_true": rng.integers(0, 2, n),
            "decision": rng.integers(0, 2, n),
            "group__region": rng.choice([f"region_{i:02d}" for i in range(n_groups)], n),
            "group__branch": rng.choice([f"branch_{i:02d}" for i in range(n_groups)], n),
            "group__sex": rng.choice(["female", "male"], n),
        }
    )


def gate_result(fairness: dict, roc_auc: float):
    policy = GateSettings(
        min_metrics={"roc_auc": 0.7},
        max_fairness={"demographic_parity_difference": 0.3, "equalized_odds_difference": 0.35},
        max_regression={"roc_auc": 0.03},
    )
    evaluation = {"overall": {"roc_auc": roc_auc}}
    return evaluate_gate(policy, evaluation, fairness, "20260101-abc", None, None)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "reports").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_big_reports(workspace: Path, roc_auc: float = 0.65) -> None:
    frame = predictions(50)
    fairness = fairness_report(frame, ["region", "branch", "sex"])
    result = gate_result(fairness, roc_auc)
    (workspace / "reports/features.md").write_text(features_md(300))
    (workspace / "reports/fairness.md").write_text(fairness_md(fairness, len(frame)))
    (workspace / "reports/gate.md").write_text(gate_md(result, None, promoted=False))
    (workspace / "metrics").mkdir(exist_ok=True)
    (workspace / "metrics/gate.json").write_text(json.dumps(result.to_dict()))
    evaluate = "## Evaluation\n\n| Metric | Value |\n|---|---:|\n" + "".join(
        f"| metric_{i} | 0.{i:03d} |\n" for i in range(400)
    )
    (workspace / "reports/evaluate.md").write_text(evaluate)
    drift = "## Drift: ⚠️ 3 of 300 features drifted\n\n| Feature | PSI | KS | JS | Result |\n|---|---:|---:|---:|---|\n"
    drift += "".join(
        f"| feature_{i:03d} | {0.3 if i % 100 == 0 else 0.01:.3f} | 0.020 | 0.010 | "
        f"{'❌ drift' if i % 100 == 0 else '✅ stable'} |\n"
        for i in range(300)
    )
    (workspace / "reports/drift.md").write_text(drift)


# --- tests ------------------------------------------------------------------------------------------


def test_a_huge_report_fits_and_keeps_the_verdicts(workspace):
    # given 300 features, 50 groups per attribute and a failing gate: far more than GitHub accepts
    write_big_reports(workspace)
    raw = sum(len(p.read_text()) for p in (workspace / "reports").glob("*.md"))
    assert raw > reporting.GITHUB_LIMIT

    # when the comment is assembled
    assert reporting.report_cli(["--stage", "all", "--output", "reports/pr_comment.md"]) == 0
    text = (workspace / "reports/pr_comment.md").read_text()

    # then it fits, says what was cut, and still carries every verdict
    assert len(text) <= reporting.DEFAULT_LIMIT < reporting.GITHUB_LIMIT
    assert "truncated:" in text and "rows omitted" in text
    assert "## Promotion gate: ❌ fail" in text
    assert "| Promotion gate | ❌ fail |" in text  # the header's verdict table
    assert "| Data validation | ⏭️ not run |" in text
    assert "Data validation: not run" in text
    # the failing gate checks survive the trimming
    assert "| roc_auc | metric |" in text and "❌ fail" in text
    assert_well_formed(text)
    assert "**German Credit Scoring** · model version `20260101-abc`" in text
    assert "| feature_100 | 0.300 | 0.020 | 0.010 | ❌ drift |" in text


def test_small_reports_are_included_verbatim_with_a_header(workspace):
    # given two small sections
    frame = predictions(3, n=500)
    fairness = fairness_report(frame, ["sex"])
    (workspace / "reports/fairness.md").write_text(fairness_md(fairness, len(frame)))
    (workspace / "models/candidate").mkdir(parents=True)
    (workspace / "models/candidate/model.json").write_text(json.dumps({"version": "v42"}))

    # when
    assert reporting.report_cli(["--stage", "fairness", "--stage", "drift", "--title", "Fairness check"]) == 0
    text = (workspace / "reports/pr_comment.md").read_text()

    # then
    assert text.startswith("# Fairness check\n")
    assert "**German Credit Scoring** · model version `v42`" in text
    assert fairness_md(fairness, len(frame)).strip() in text
    assert "_Drift: not run (no `reports/drift.md`)._" in text
    assert "truncated" not in text and "<details>" not in text
    assert_well_formed(text)


def test_long_tables_fold_into_details_and_trim_by_whole_rows():
    table = "| a | b |\n|---|---|\n" + "".join(
        f"| {i} | {'❌ fail' if i == 77 else 'ok'} |\n" for i in range(100)
    )
    text = "intro\n\n" + table + "\nafter"
    folded = reporting.shape_markdown(text)
    assert "<details>" in folded and "<summary>Table: 100 rows</summary>" in folded
    assert len(tables(folded)[0]) == 102
    trimmed = reporting.shape_markdown(text, cap=10)
    rows = tables(trimmed)[0][2:]
    assert len(rows) == 10 and "| 77 | ❌ fail |" in rows  # failing rows are kept first
    assert "_truncated: 90 rows omitted._" in trimmed
    assert trimmed.splitlines()[0] == "intro" and trimmed.splitlines()[-1] == "after"
    gone = reporting.shape_markdown(text, cap=0)
    assert tables(gone) == [] and "table of 100 rows omitted (columns: a, b)" in gone


def test_pipes_in_code_fences_are_not_tables():
    text = "```\n| not | a |\n|---|---|\n| table | x |\n```\n"
    assert tables(text) == []
    assert reporting.shape_markdown(text, cap=0) == text.rstrip("\n")


def test_headings_are_normalised_and_remote_images_removed():
    body, has_heading = reporting.normalise_headings("# Drift\n\n### Details\n```\n# comment\n```")
    assert body.splitlines()[0] == "## Drift" and "#### Details" in body and "# comment" in body
    assert has_heading
    assert reporting.normalise_headings("plain text") == ("plain text", False)
    cleaned = reporting.strip_remote_images('![roc](https://example.com/roc.png) <img src="http://x/y.png">')
    assert "http" not in cleaned and "[image omitted: roc]" in cleaned


def test_stage_names_aliases_and_all():
    assert reporting.resolve_stages([]) == list(reporting.STAGE_ORDER)
    assert reporting.resolve_stages(["validate", "gate", "validation"]) == ["validation", "gate"]
    assert reporting.resolve_stages(["package"]) == ["package"]
    with pytest.raises(reporting.ProjectError, match="--stage"):
        reporting.resolve_stages(["../etc"])


def test_impossible_limit_is_a_clear_error(workspace, capsys):
    write_big_reports(workspace)
    assert reporting.report_cli(["--limit", "300"]) == 2
    assert "limit 300" in capsys.readouterr().err


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_metrics_diff_explains_a_missing_baseline_in_one_line(workspace):
    git(workspace, "init", "-q", "-b", "feature")
    assert reporting.report_cli(["--stage", "gate", "--metrics-diff"]) == 0
    text = (workspace / "reports/pr_comment.md").read_text()
    assert "_No baseline to compare with: none of origin/main, main exists in this clone._" in text


@pytest.mark.timeout(120)
def test_metrics_diff_runs_dvc_against_the_ref(workspace):
    # given a DVC project whose main has older metrics and params
    git(workspace, "init", "-q", "-b", "main")
    subprocess.run(
        [reporting.sys.executable, "-m", "dvc", "init", "-q"], cwd=workspace, check=True, capture_output=True
    )
    (workspace / "dvc.yaml").write_text(
        "stages:\n  evaluate:\n    cmd: echo\n    params: [model.seed]\n"
        "    metrics:\n      - metrics/evaluate.json:\n          cache: false\n"
    )
    (workspace / "metrics").mkdir()
    (workspace / "metrics/evaluate.json").write_text(json.dumps({"overall": {"roc_auc": 0.70}}))
    git(workspace, "add", ".")
    git(workspace, "commit", "-q", "-m", "production")
    (workspace / "metrics/evaluate.json").write_text(json.dumps({"overall": {"roc_auc": 0.75}}))
    params = (
        (workspace / "params.yaml").read_text().replace("  seed: 42\n  threshold", "  seed: 7\n  threshold")
    )
    (workspace / "params.yaml").write_text(params)

    # when
    assert reporting.report_cli(["--stage", "gate", "--metrics-diff", "main"]) == 0
    text = (workspace / "reports/pr_comment.md").read_text()

    # then both diffs are tables in the comment
    assert "## Metrics against `main`" in text and "## Parameters against `main`" in text
    assert "overall.roc_auc" in text and "0.75" in text
    assert "model.seed" in text
    assert_well_formed(text)
    # and a bad ref is one line, not a crash
    assert reporting.dvc_diff("metrics", "no-such-ref").startswith("_`dvc metrics diff no-such-ref` failed:")


@pytest.mark.parametrize(
    ("verdict", "cell"),
    [("drift", "⚠️ drift detected"), ("no_drift", "✅ no drift"), ("insufficient_data", "⏸️ not enough data")],
)
def test_drift_verdict_reaches_the_summary_table(tmp_path, verdict, cell):
    from german_credit_scoring.gitops.reporting import _json_verdict

    path = tmp_path / "drift.json"
    path.write_text(json.dumps({"verdict": verdict, "features": []}))
    assert _json_verdict([path]) == cell

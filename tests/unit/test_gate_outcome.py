"""`mlops gate-summary` and bootstrap.py's pipeline exit codes: a refused model is an outcome, not a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from german_credit_scoring.governance import outcome

ROOT = Path(__file__).resolve().parents[2]


def check(name, kind, value, threshold, comparison, passed, detail=""):
    return {
        "name": name,
        "kind": kind,
        "value": value,
        "threshold": threshold,
        "comparison": comparison,
        "passed": passed,
        "detail": detail,
        "status": "pass" if passed else "fail",
    }


REFUSED = {
    "passed": False,
    "model_version": "abc123",
    "risk_tier": "high",
    "mandatory": [],
    "checks": [
        check("roc_auc", "metric", 0.81, 0.6, ">=", True),
        check("demographic_parity_ratio[grp]", "fairness", 0.62, 0.8, ">=", False),
        check("equalized_odds_difference[grp]", "fairness", 0.41, 0.35, "<=", False),
        check("regression", "regression", None, None, "<=", True, "not applicable: no production"),
    ],
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    return tmp_path


def write_gate(project: Path, record: dict) -> Path:
    path = project / "metrics/gate.json"
    path.write_text(json.dumps(record))
    return path


def test_refused_gate_names_each_failed_check_with_its_shortfall_and_the_ways_forward(project, capsys):
    write_gate(project, REFUSED)
    assert outcome.gate_summary_cli([]) == outcome.EXIT_REFUSED
    out = capsys.readouterr().out
    assert "model abc123 REFUSED, risk tier high: 2 of 4 checks failed" in out
    assert "demographic_parity_ratio[grp] = 0.62, limit >= 0.8 (misses by 0.18)" in out
    assert "equalized_odds_difference[grp] = 0.41, limit <= 0.35 (misses by 0.06)" in out
    assert "roc_auc" not in out  # passing checks are in the report, not the summary
    assert "reports/gate.md" in out and "metrics/gate.json" in out
    assert "no model is approved yet" in out
    assert "gate.max_fairness / gate.min_fairness in params.yaml" in out
    assert "fairness.mitigation" in out and "When the gate refuses a model" in out


def test_a_metric_refusal_points_at_the_metric_limits_and_not_at_fairness_mitigation(project, capsys):
    record = {**REFUSED, "checks": [check("roc_auc", "metric", 0.55, 0.6, ">=", False)]}
    write_gate(project, record)
    (project / "models/approved").mkdir(parents=True)
    (project / "models/approved/model.joblib").write_bytes(b"x")
    assert outcome.gate_summary_cli([]) == 1
    out = capsys.readouterr().out
    assert "roc_auc = 0.55, limit >= 0.6 (misses by 0.05)" in out
    assert "gate.min_metrics / gate.max_metrics" in out and "fairness.mitigation" not in out
    assert "models/approved/ still holds the last approved model" in out


def test_an_approved_model_is_one_line_and_exit_0(project, capsys):
    write_gate(project, {**REFUSED, "passed": True, "checks": REFUSED["checks"][:1]})
    assert outcome.gate_summary_cli([]) == 0
    assert capsys.readouterr().out.strip().startswith("gate: model abc123 approved")


def test_no_verdict_from_this_run_is_exit_2(project, capsys):
    assert outcome.gate_summary_cli([]) == outcome.EXIT_NO_VERDICT  # no file
    gate = write_gate(project, REFUSED)
    old = time.time() - 3600
    os.utime(gate, (old, old))
    assert outcome.gate_summary_cli(["--since", str(time.time() - 60)]) == 2  # an earlier run's
    assert "older" in capsys.readouterr().out
    gate.write_text("{not json")
    assert outcome.gate_summary_cli([]) == 2
    assert "cannot read the verdict" in capsys.readouterr().err


FAKE_UV = """#!{python}
import os, sys
args = sys.argv[1:]
log = os.environ["FAKE_UV_LOG"]
with open(log, "a") as handle:
    handle.write(" ".join(args) + "\\n")
if args[:1] == ["sync"]:
    sys.exit(0)
if "dvc" in args:
    sys.exit(int(os.environ["FAKE_DVC_CODE"]))
if "gate-summary" in args:
    print("gate: (summary)")
    sys.exit(int(os.environ["FAKE_SUMMARY_CODE"]))
sys.exit(0)
"""


@pytest.mark.parametrize(
    ("dvc_code", "summary_code", "expected"),
    [(0, None, 0), (255, 1, 3), (255, 2, 1), (255, 0, 1)],
)
def test_bootstrap_pipeline_exit_codes(tmp_path, dvc_code, summary_code, expected):
    # given a stand-in uv whose `dvc repro` and `mlops gate-summary` answer as parametrized
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    uv = bin_dir / "uv"
    uv.write_text(FAKE_UV.format(python=sys.executable))
    uv.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_UV_LOG": str(log),
        "FAKE_DVC_CODE": str(dvc_code),
        "FAKE_SUMMARY_CODE": str(summary_code or 0),
    }
    # when the pipeline command runs
    done = subprocess.run(
        [sys.executable, str(ROOT / "bootstrap.py"), "pipeline"], env=env, capture_output=True, text=True
    )
    # then a refusal by this run's gate is exit 3, any other failure 1, and the summary is asked only on failure
    assert done.returncode == expected, done.stdout + done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "sync --locked" and calls[1] == "run --locked dvc repro"
    assert any("gate-summary --since" in c for c in calls) == (dvc_code != 0)

"""The promotion gate: one policy (``gate`` in params.yaml) every candidate must meet to be approved.

The checks are pure functions of numbers already measured (evaluation and fairness metrics, the
production baseline, latencies, the artefact's size), so each comparison is unit-tested on its own.
Only :func:`promote` touches the approved model, and only after every check passed; it swaps the
directory in with renames so that a crash never leaves a half-copied approved model.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from german_credit_scoring.errors import ProjectError
from german_credit_scoring.settings import GateSettings

log = logging.getLogger(__name__)

Comparison = Literal[">=", "<="]
Status = Literal["pass", "fail", "skipped"]

# Metrics where a smaller value is better: for them a regression is an increase.
LOWER_IS_BETTER = frozenset({"brier", "expected_cost", "log_loss", "expected_calibration_error", "ece"})
BYTES_PER_MB = 1_000_000
# A skipped check whose detail starts with this is not applicable (nothing to compare with), so even a
# tier that makes its kind mandatory does not fail it: the first model of a project has no production.
NOT_APPLICABLE = "not applicable:"
POLICY_KEYS = {
    "metric": "gate.min_metrics / gate.max_metrics",
    "fairness": "gate.max_fairness / gate.min_fairness (and data.protected_attributes)",
    "regression": "gate.max_regression",
    "latency": "gate.max_latency_p95_ms",
    "size": "gate.max_model_size_mb",
}
LATENCY_REPEATS = 5


class GateError(ProjectError):
    """The gate cannot be evaluated: a metric the policy names is missing or not a number."""


@dataclass(frozen=True)
class Check:
    """One line of the gate's verdict; ``passed`` is True for a skipped check (it did not fail)."""

    name: str
    kind: str
    value: float | None
    threshold: float | None
    comparison: str
    passed: bool
    detail: str
    status: Status

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    model_version: str
    checks: list[Check]
    risk_tier: str | None = None
    mandatory: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def not_checked(self) -> list[Check]:
        """Checks that did not run (skipped): they did not fail, and they did not pass either."""
        return [c for c in self.checks if c.status == "skipped"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "model_version": self.model_version,
            "risk_tier": self.risk_tier,
            "mandatory": list(self.mandatory),
            "checks": [check.to_dict() for check in self.checks],
        }


def compare(value: float, comparison: str, threshold: float) -> bool:
    """``value >= threshold`` or ``value <= threshold``; NaN never passes."""
    if value != value:  # NaN
        return False
    if comparison == ">=":
        return value >= threshold
    if comparison == "<=":
        return value <= threshold
    raise ValueError(f"unknown comparison {comparison!r}: use '>=' or '<='")


def metric_value(metrics: Mapping[str, Any], key: str, source: str, policy_key: str) -> float:
    """The metric ``key`` as a float, or a GateError that names the key, the file and the policy entry."""
    if key not in metrics:
        available = ", ".join(sorted(str(k) for k in metrics)) or "none"
        raise GateError(
            f"{source}: has no metric {key!r}, which {policy_key} requires (available: {available})"
        )
    value = metrics[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GateError(f"{source}: metric {key!r} must be a number for {policy_key}, got {value!r}")
    return float(value)


def _check(
    name: str, kind: str, value: float, comparison: Comparison, threshold: float, detail: str = ""
) -> Check:
    ok = compare(value, comparison, threshold)
    return Check(name, kind, value, threshold, comparison, ok, detail, "pass" if ok else "fail")


def _skipped(name: str, kind: str, comparison: str, threshold: float | None, detail: str) -> Check:
    return Check(name, kind, None, threshold, comparison, True, detail, "skipped")


def metric_checks(
    overall: Mapping[str, Any],
    min_metrics: Mapping[str, float],
    max_metrics: Mapping[str, float],
    source: str = "metrics/evaluate.json overall",
) -> list[Check]:
    checks = []
    for bounds, comparison, policy in (
        (min_metrics, ">=", "min_metrics"),
        (max_metrics, "<=", "max_metrics"),
    ):
        for key, threshold in bounds.items():
            value = metric_value(overall, key, source, f"gate.{policy}.{key}")
            checks.append(_check(key, "metric", value, comparison, threshold))
    return checks


# Fairness bounds with a check kind of their own, so a risk tier can make each mandatory.
FAIRNESS_KINDS = {"max_group_calibration_error": "calibration", "proxy_auc": "proxy"}


def fairness_value(
    summary: Mapping[str, Any], key: str, comparison: str, interval: str
) -> tuple[float | None, str]:
    """The value a fairness bound judges and how it was chosen (``gate.fairness_interval``).

    benefit_of_doubt: the interval's end most favourable to the model (the lower end for a maximum,
    the upper for a minimum), so only clear evidence fails it; burden_of_proof: the other end.
    """
    estimate = summary[key]
    if interval == "estimate" or estimate is None:
        return estimate, ""
    bounds = (summary.get("intervals") or {}).get(key) or {}
    favourable = interval == "benefit_of_doubt"
    end = "low" if (comparison == "<=") == favourable else "high"
    if bounds.get(end) is None:
        return estimate, "no interval recorded: judged on the estimate"
    level = summary.get("confidence")
    share = f"{level:.0%} " if isinstance(level, int | float) else ""
    how = f"judged on the {share}interval's {end} end ({interval}), estimate {estimate:.4f}"
    return float(bounds[end]), how


def fairness_checks(
    fairness: Mapping[str, Mapping[str, Any]],
    max_fairness: Mapping[str, float],
    min_fairness: Mapping[str, float],
    source: str = "metrics/fairness.json",
    interval: str = "estimate",
) -> list[Check]:
    """Every fairness bound on every protected attribute; an undefined value (null) fails.

    The detail names the groups and the size of the gap (from the fairness stage's explanations).
    """
    if not max_fairness and not min_fairness:
        return []
    if not fairness:
        return [
            _skipped(
                "fairness",
                "fairness",
                "",
                None,
                "skipped: no protected attributes (data.protected_attributes is empty)",
            )
        ]
    checks = []
    for attribute, summary in fairness.items():
        for bounds, comparison, policy in (
            (max_fairness, "<=", "max_fairness"),
            (min_fairness, ">=", "min_fairness"),
        ):
            for key, threshold in bounds.items():
                name = f"{key}[{attribute}]"
                if key not in summary:
                    available = ", ".join(k for k in summary if k != "groups")
                    raise GateError(
                        f"{source}: attribute {attribute!r} has no metric {key!r}, which "
                        f"gate.{policy}.{key} requires (available: {available})"
                    )
                if summary[key] is None:
                    checks.append(
                        Check(name, "fairness", None, threshold, comparison, False,
                              "undefined for this attribute (e.g. no group is ever selected)", "fail")
                    )  # fmt: skip
                    continue
                metric_value(summary, key, f"{source} [{attribute}]", f"gate.{policy}.{key}")
                value, how = fairness_value(summary, key, comparison, interval)
                why = ((summary.get("explanations") or {}).get(key)) or ""
                detail = "; ".join(part for part in (why, how) if part)
                kind = FAIRNESS_KINDS.get(key, "fairness")
                checks.append(_check(name, kind, float(value), comparison, threshold, detail))
    return checks


def regression_checks(
    candidate: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    max_regression: Mapping[str, float],
    baseline_ref: str | None,
    refs: Sequence[str],
    in_production: bool = True,
) -> list[Check]:
    """How much worse than production each metric may get (a drop, or a rise for lower-is-better).

    Without production's metrics the check is *not checked* (skipped, which a tier that makes
    regression mandatory turns into a failure), unless no model is in production yet
    (``in_production`` False): then there is nothing to regress from and it is not applicable.
    """
    checks = []
    for key, threshold in max_regression.items():
        name = f"{key} regression"
        value = metric_value(candidate, key, "metrics/evaluate.json overall", f"gate.max_regression.{key}")
        if baseline is None:
            detail = (
                f"{NOT_APPLICABLE} no model in production yet (governance/production.yaml names none) "
                f"and no baseline on {', '.join(refs)}"
                if not in_production
                else f"not checked: no production baseline found on {', '.join(refs)}"
            )
            checks.append(_skipped(name, "regression", "<=", threshold, detail))
            continue
        if key not in baseline or baseline[key] is None:
            checks.append(
                _skipped(name, "regression", "<=", threshold,
                         f"skipped: production ({baseline_ref}) has no {key!r}")
            )  # fmt: skip
            continue
        production = metric_value(baseline, key, f"{baseline_ref}:metrics/evaluate.json", name)
        worse = value - production if key in LOWER_IS_BETTER else production - value
        detail = f"candidate {value:.4f} vs production {production:.4f} ({baseline_ref})"
        checks.append(_check(name, "regression", worse, "<=", threshold, detail))
    return checks


def p95(latencies_ms: Iterable[float]) -> float:
    values = np.asarray(list(latencies_ms), dtype=float)
    if values.size == 0:
        raise GateError("no latency measurements: the test features have no rows")
    return float(np.percentile(values, 95))


def latency_check(
    latencies_ms: Sequence[float], max_p95_ms: float | None, record_value: bool = True
) -> list[Check]:
    """p95 of per-record latencies against the limit.

    ``record_value=False`` leaves the figure out of the check (value None, a fixed detail): the
    verdict is then a function of the model, while the volatile figure goes to the run record.
    """
    if max_p95_ms is None:
        return []
    value = p95(latencies_ms)
    if not record_value:
        ok = compare(value, "<=", max_p95_ms)
        detail = (
            f"p95 of the best of {LATENCY_REPEATS} CPU-time measurements per record (single-row predict_proba): "
            "other processes on the runner cannot inflate it; figures in runs/gate.json and the comment"
        )
        return [
            Check("latency_p95_ms", "latency", None, max_p95_ms, "<=", ok, detail, "pass" if ok else "fail")
        ]
    detail = f"{len(latencies_ms)} single-row predict_proba calls, median {np.median(latencies_ms):.2f} ms"
    return [_check("latency_p95_ms", "latency", value, "<=", max_p95_ms, detail)]


def size_check(size_bytes: int, max_mb: float | None) -> list[Check]:
    if max_mb is None:
        return []
    detail = f"{size_bytes:,} bytes (1 MB = {BYTES_PER_MB:,} bytes)"
    return [_check("model_size_mb", "size", size_bytes / BYTES_PER_MB, "<=", max_mb, detail)]


def evaluate_gate(
    policy: GateSettings,
    evaluation: Mapping[str, Any],
    fairness: Mapping[str, Mapping[str, Any]],
    model_version: str,
    baseline: Mapping[str, Any] | None = None,
    baseline_ref: str | None = None,
    latencies_ms: Sequence[float] | None = None,
    size_bytes: int | None = None,
    mandatory: Iterable[str] = (),
    risk_tier: str | None = None,
    in_production: bool = True,
    record_latency: bool = True,
) -> GateResult:
    """Apply the whole policy. ``evaluation``/``baseline`` are evaluate.json documents (with "overall").

    ``mandatory`` (the risk tier's check kinds) must be configured and must run: a mandatory kind
    with no check, or a skipped one, fails (see :func:`enforce_mandatory`).
    """
    if "overall" not in evaluation or not isinstance(evaluation["overall"], Mapping):
        raise GateError("metrics/evaluate.json: expected an 'overall' mapping of metrics")
    overall = evaluation["overall"]
    baseline_overall = None
    if baseline is not None:
        baseline_overall = baseline.get("overall") if isinstance(baseline.get("overall"), Mapping) else {}
    checks = [
        *metric_checks(overall, policy.min_metrics, policy.max_metrics),
        *fairness_checks(
            fairness, policy.max_fairness, policy.min_fairness, interval=policy.fairness_interval
        ),
        *regression_checks(
            overall,
            baseline_overall,
            policy.max_regression,
            baseline_ref,
            policy.baseline_refs,
            in_production,
        ),
    ]
    if policy.max_latency_p95_ms is not None:
        if latencies_ms is None:
            raise GateError("gate.max_latency_p95_ms is set but latency was not measured")
        checks += latency_check(latencies_ms, policy.max_latency_p95_ms, record_latency)
    if policy.max_model_size_mb is not None:
        if size_bytes is None:
            raise GateError("gate.max_model_size_mb is set but the model size was not measured")
        checks += size_check(size_bytes, policy.max_model_size_mb)
    mandatory = tuple(dict.fromkeys(mandatory))
    checks = enforce_mandatory(checks, mandatory, risk_tier)
    return GateResult(all(c.passed for c in checks), model_version, checks, risk_tier, mandatory)


def enforce_mandatory(checks: list[Check], mandatory: Sequence[str], risk_tier: str | None) -> list[Check]:
    """A tier's mandatory check kinds must run: skipped ones fail, missing ones are added as failures."""
    tier = f"the {risk_tier} risk tier" if risk_tier else "the risk tier"
    out = []
    for check in checks:
        if (
            check.kind in mandatory
            and check.status == "skipped"
            and not check.detail.startswith(NOT_APPLICABLE)
        ):
            detail = (
                f"{check.detail}; {tier} makes {check.kind} checks mandatory, so not checked is a failure"
            )
            check = replace(check, passed=False, status="fail", detail=detail)
        out.append(check)
    for kind in mandatory:
        if not any(check.kind == kind for check in checks):
            detail = (
                f"{tier} makes {kind} checks mandatory, but params.yaml sets none: set {POLICY_KEYS[kind]}"
            )
            out.append(Check(f"{kind} (mandatory)", kind, None, None, "", False, detail, "fail"))
    return out


# --- measurements and side effects (thin, used by pipelines/gate.py) ---------------------------------


def read_baseline(
    refs: Sequence[str], path: str = "metrics/evaluate.json", cwd: Path | str = "."
) -> tuple[str | None, dict[str, Any] | None]:
    """Production's metrics: ``git show <ref>:<path>`` for the first ref that has the file."""
    for ref in refs:
        shown = subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=cwd, capture_output=True, text=True, check=False
        )
        if shown.returncode != 0:
            reason = " ".join(shown.stderr.strip().splitlines()[-1:]) or f"exit code {shown.returncode}"
            log.info("no baseline at %s:%s (%s)", ref, path, reason)
            continue
        try:
            return ref, json.loads(shown.stdout)
        except json.JSONDecodeError as error:
            raise GateError(f"{ref}:{path} is not valid JSON: {error}") from None
    return None, None


@dataclass(frozen=True)
class Latency:
    """Milliseconds per record, the best of ``repeats`` timings each: process CPU time and wall time."""

    cpu_ms: list[float]  # what the verdict is decided on
    wall_ms: list[float]  # shown beside it
    repeats: int


def measure_latency(
    predict: Callable[[Any], Any],
    rows: Sequence[Any],
    warmup: int = 10,
    repeats: int = LATENCY_REPEATS,
    cpu: Callable[[], float] = time.process_time,
    wall: Callable[[], float] = time.perf_counter,
) -> Latency:
    """Time ``predict`` on each prepared single-row input, ``repeats`` passes over all rows.

    On a shared runner, other processes take the CPU: that stretches wall time (in bursts, or all
    along when the machine is saturated) but not this process's CPU time, so the verdict is decided
    on CPU time (all threads of the process, so a model that computes in threads is not undercounted).
    The best of several passes per record also drops what the process itself does now and then
    (garbage collection, a cold cache). A slow model is slow in every pass, by either clock.
    """
    if not rows:
        raise GateError("no rows to measure latency on")
    for row in rows[: max(warmup, 0)]:
        predict(row)
    best_cpu = [float("inf")] * len(rows)
    best_wall = [float("inf")] * len(rows)
    for _ in range(max(repeats, 1)):
        for index, row in enumerate(rows):
            w0, c0 = wall(), cpu()
            predict(row)
            c1, w1 = cpu(), wall()
            best_cpu[index] = min(best_cpu[index], (c1 - c0) * 1000)
            best_wall[index] = min(best_wall[index], (w1 - w0) * 1000)
    return Latency(best_cpu, best_wall, max(repeats, 1))


def latency_note(figures: Mapping[str, Any]) -> str:
    """The latency figures as one line for the pull request (from the run record, never a DVC output)."""
    return (
        f"latency p95 {figures['cpu_p95_ms']:.2f} ms CPU per record (wall {figures['wall_p95_ms']:.2f} ms; "
        f"best of {figures['repeats']} timings per record over {figures['records']} records; "
        f"limit {figures['limit_p95_ms']} ms, decided on CPU time)"
    )


def latency_summary(latency: Latency, max_p95_ms: float | None) -> dict[str, Any]:
    """The figures behind the latency verdict, for the run record and the log (never a DVC output)."""
    return {
        "records": len(latency.cpu_ms),
        "repeats": latency.repeats,
        "cpu_p50_ms": round(float(np.median(latency.cpu_ms)), 3),
        "cpu_p95_ms": round(p95(latency.cpu_ms), 3),
        "wall_p50_ms": round(float(np.median(latency.wall_ms)), 3),
        "wall_p95_ms": round(p95(latency.wall_ms), 3),
        "limit_p95_ms": max_p95_ms,
        "decided_on": "cpu",
    }


def promote(candidate_dir: Path, approved_dir: Path, approval: dict[str, Any]) -> None:
    """Replace ``approved_dir`` with a copy of ``candidate_dir`` plus the approval record.

    The copy is built in a temporary directory beside the target and swapped in with two renames;
    the previous approved model is removed only once the new one is in place.
    """
    candidate_dir, approved_dir = Path(candidate_dir), Path(approved_dir)
    if not candidate_dir.is_dir():
        raise GateError(f"{candidate_dir}: candidate model directory not found")
    approved_dir.parent.mkdir(parents=True, exist_ok=True)
    _recover(approved_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{approved_dir.name}.new-", dir=approved_dir.parent))
    retired: Path | None = None
    try:
        copy = staging / "model"
        shutil.copytree(candidate_dir, copy)
        meta_path = copy / "model.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        meta["approval"] = approval
        meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        if approved_dir.exists():
            retired = approved_dir.parent / f"{staging.name.replace('.new-', '.old-')}"
            approved_dir.rename(retired)
        try:
            copy.rename(approved_dir)
        except OSError:
            if retired is not None:  # put the last good model back
                retired.rename(approved_dir)
                retired = None
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)


def _recover(approved_dir: Path) -> None:
    """After a crash between the two renames, put the retired approved model back first."""
    if approved_dir.exists():
        return
    retired = sorted(approved_dir.parent.glob(f".{approved_dir.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if retired:
        log.warning("restoring %s from %s left by an interrupted promotion", approved_dir, retired[-1])
        retired[-1].rename(approved_dir)


def approval_record(result: GateResult) -> dict[str, Any]:
    """The gate's verdict as the approved model carries it: a function of the inputs only.

    When and at which commit it was approved are run facts (``runs/gate.json``), and who approved the
    merge is read from the pull request by the governance record.
    """
    return result.to_dict()


def render_markdown(
    result: GateResult, baseline_ref: str | None, promoted: bool, card: str | None = None
) -> str:
    """The gate's pull-request section; ``card`` (the model card) is appended collapsed."""
    from german_credit_scoring.markdown import render

    return render(
        "gate.md.j2", result=result.to_dict(), baseline_ref=baseline_ref, promoted=promoted, card=card
    )

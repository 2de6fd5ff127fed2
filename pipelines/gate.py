"""DVC stage `gate`: apply the promotion policy; only a passing candidate replaces models/approved."""

import logging

import joblib

from german_credit_scoring import io, paths, runs
from german_credit_scoring.contract import load_features
from german_credit_scoring.data import model_frame, read_table
from german_credit_scoring.errors import DataError
from german_credit_scoring.governance.card import write_card
from german_credit_scoring.governance.policy import load_tiers
from german_credit_scoring.governance.production import in_production
from german_credit_scoring.lifecycle import gate
from german_credit_scoring.settings import load_settings
from german_credit_scoring.stage import CheckFailed, entry

log = logging.getLogger("german_credit_scoring.lifecycle.gate")
LATENCY_ROWS = 200


def require(*files):
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise DataError(f"the gate needs {missing}: run the train, evaluate and fairness stages first")


def main() -> None:
    settings = load_settings()
    policy = settings.gate
    require(paths.EVALUATE_METRICS, paths.FAIRNESS_METRICS, paths.CANDIDATE_MODEL)
    evaluation = io.read_json(paths.EVALUATE_METRICS)
    fairness = io.read_json(paths.FAIRNESS_METRICS)
    meta = io.read_json(paths.CANDIDATE_META) if paths.CANDIDATE_META.exists() else {}
    baseline_ref, baseline = gate.read_baseline(policy.baseline_refs, str(paths.EVALUATE_METRICS))
    tier = settings.project.risk_tier
    mandatory = load_tiers().policy(tier).mandatory_checks
    production_runs_a_model = in_production(policy.baseline_refs)

    latencies = None
    if policy.max_latency_p95_ms is not None:
        require(paths.FEATURES_TEST)
        pipeline = joblib.load(paths.CANDIDATE_MODEL)
        features = load_features(settings.features)
        frame = model_frame(
            read_table(paths.FEATURES_TEST).head(LATENCY_ROWS),
            features,
            include_sensitive=settings.data.use_protected_as_features,
        )
        rows = [frame.iloc[[i]] for i in range(len(frame))]
        latency = gate.measure_latency(pipeline.predict_proba, rows)
        latencies = latency.cpu_ms
        figures = gate.latency_summary(latency, policy.max_latency_p95_ms)
        runs.record("gate", latency=figures)  # volatile: a run fact, never in metrics/gate.json
        log.info("latency per record (best of %d): %s", gate.LATENCY_REPEATS, figures)

    result = gate.evaluate_gate(
        policy,
        evaluation,
        fairness,
        model_version=str(meta.get("version", "unknown")),
        baseline=baseline,
        baseline_ref=baseline_ref,
        latencies_ms=latencies,
        size_bytes=paths.CANDIDATE_MODEL.stat().st_size,
        mandatory=mandatory,
        risk_tier=tier,
        in_production=production_runs_a_model,
        record_latency=False,
    )
    io.write_json(paths.GATE_RESULT, result.to_dict())
    card = write_card(settings, result.to_dict())
    io.write_text(
        paths.GATE_MD, gate.render_markdown(result, baseline_ref, promoted=result.passed, card=card)
    )
    if not result.passed:
        names = ", ".join(check.name for check in result.failed)
        raise CheckFailed(
            f"{len(result.failed)} gate checks failed ({names}); models/approved left unchanged"
        )
    gate.promote(paths.CANDIDATE_DIR, paths.APPROVED_DIR, gate.approval_record(result))
    log.info("model %s approved", result.model_version)


if __name__ == "__main__":
    entry(main, "gate")

"""`mlops compare`: production's model beside the candidate (and mitigated variants) on the same test rows.

A run record, not a pipeline output: production is whatever main released, which is not an input of
any DVC stage, so ``reports/compare.json`` and ``reports/compare.md`` stay outside ``dvc.lock``.
Production's model is *scored* here on the candidate's test rows, never read from an old metrics file,
so every figure is comparable: every headline metric, every slice, every fairness figure, calibration
and ROC points, and global importance, each with the change (candidate minus production), as
``dvc metrics diff`` shows numbers.

Where production's model comes from: ``--production DIR`` (``model.joblib`` + ``model.json``, placed by
the workflow from the hand-over of main's release). Locally ``--production-ref main`` restores main's
``models/approved`` from DVC's cache by the hash ``git show main:dvc.lock`` records. When neither
yields a model the report says "no production model available" and the command still succeeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict

from german_credit_scoring import io, paths
from german_credit_scoring.errors import DataError, ProjectError

log = logging.getLogger(__name__)

COMPARE_JSON = Path("reports/compare.json")
COMPARE_MD = Path("reports/compare.md")
DEFAULT_PRODUCTION = Path("models/production")
HEADLINE = (
    "roc_auc", "pr_auc", "expected_cost", "brier", "recall", "precision", "f1", "accuracy",
    "predicted_positive_rate", "threshold",
)  # fmt: skip
SLICE_METRICS = ("roc_auc", "recall", "expected_cost")
FPR_POINTS = (0.05, 0.1, 0.2, 0.3)
LOWER_IS_BETTER = frozenset({"brier", "expected_cost"})


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelColumn(Record):
    name: str
    role: Literal["candidate", "production", "variant"]
    version: str
    servable: bool = True
    note: str = ""
    overall: dict[str, float | int | None]
    slices: dict[str, dict[str, dict[str, float | int | None]]]
    fairness: dict[str, dict[str, float | None]]  # attribute -> summary metric -> value
    calibration: list[dict[str, float | int]]
    tpr_at_fpr: dict[str, float | None]
    importance: dict[str, float] | None = None  # input -> mean |contribution|


class Comparison(Record):
    rows: int
    test_source: str
    production_note: str | None = None  # set when there is no production column, saying why
    columns: list[ModelColumn]
    skipped_variants: dict[str, str] = {}  # variant -> why it could not be trained
    # gate.max_regression applied to production scored on these same rows (the gate itself reads main's
    # committed metrics, which were measured on main's test rows)
    regression: list[dict[str, Any]] = []

    def column(self, role: str) -> ModelColumn | None:
        return next((c for c in self.columns if c.role == role), None)


# --- production's model ------------------------------------------------------------------------------


def _cache_file(cache: Path, md5: str) -> Path | None:
    for candidate in (cache / "files" / "md5" / md5[:2] / md5[2:], cache / md5[:2] / md5[2:]):
        if candidate.is_file():
            return candidate
    return None


def restore_from_dvc_cache(
    ref: str, destination: Path, out: str = str(paths.APPROVED_DIR), cache: Path = Path(".dvc/cache")
) -> str | None:
    """Copy ``out`` as ``ref``'s dvc.lock pins it from the local DVC cache; None or the reason it failed."""
    shown = subprocess.run(["git", "show", f"{ref}:dvc.lock"], capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        return f"{ref} has no dvc.lock ({shown.stderr.strip().splitlines()[-1:] or 'git show failed'})"
    lock = yaml.safe_load(shown.stdout) or {}
    md5 = next(
        (
            str(entry.get("md5"))
            for stage in (lock.get("stages") or {}).values()
            for entry in stage.get("outs") or []
            if entry.get("path") == out and entry.get("md5")
        ),
        None,
    )
    if md5 is None:
        return f"{ref}:dvc.lock records no {out}"
    listing = _cache_file(cache, md5)
    if listing is None:
        return f"{out} of {ref} ({md5}) is not in the DVC cache {cache}; `dvc pull` it or pass --production"
    files = json.loads(listing.read_text(encoding="utf-8")) if md5.endswith(".dir") else None
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for entry in files or [{"md5": md5, "relpath": Path(out).name}]:
        source = _cache_file(cache, entry["md5"])
        if source is None:
            shutil.rmtree(staging, ignore_errors=True)
            return f"{out}/{entry['relpath']} of {ref} is missing from the DVC cache"
        target = staging / entry["relpath"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    return None


def load_model(directory: Path) -> tuple[Any, dict[str, Any]] | str:
    """``(pipeline, meta)`` from a model directory, or the reason there is none."""
    import joblib

    model, meta = directory / "model.joblib", directory / "model.json"
    if not model.is_file():
        return f"{model} not found"
    try:
        return joblib.load(model), (io.read_json(meta) if meta.is_file() else {})
    except Exception as error:  # an artefact that does not load is reported, not a crash
        return f"{model} cannot be loaded: {error}"


# --- scoring -----------------------------------------------------------------------------------------


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import roc_curve

    if not 0 < labels.sum() < len(labels):
        return {f"{p:g}": None for p in FPR_POINTS}
    fpr, tpr, _ = roc_curve(labels, scores)
    return {f"{p:g}": float(np.interp(p, fpr, tpr)) for p in FPR_POINTS}


def column_of(
    name: str,
    role: str,
    version: str,
    labels: np.ndarray,
    scores: np.ndarray,
    decisions: np.ndarray,
    threshold: float,
    test: pd.DataFrame,
    settings,
    importance: dict[str, float] | None = None,
    servable: bool = True,
    note: str = "",
) -> ModelColumn:
    from german_credit_scoring.lifecycle.evaluation import binary_metrics, calibration_points, sliced_metrics
    from german_credit_scoring.lifecycle.fairness import CALIBRATION_METRIC, SUMMARY_METRICS, fairness_report

    cost = settings.evaluation.cost
    overall = binary_metrics(labels, scores, threshold, cost)
    if not np.array_equal(decisions, (scores >= threshold).astype(int)):  # post-processing decided
        from german_credit_scoring.lifecycle.evaluation import _ratio, confusion

        counts = confusion(labels, decisions)
        tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
        n = len(labels)
        overall.update(counts)
        overall["predicted_positive_rate"] = _ratio(tp + fp, n)
        overall["expected_cost"] = _ratio(cost.false_negative * fn + cost.false_positive * fp, n)
        overall["recall"] = _ratio(tp, tp + fn)
        overall["precision"] = _ratio(tp, tp + fp)
        overall["accuracy"] = _ratio(tp + tn, n)
        overall["f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
    frame = pd.DataFrame({"y_true": labels, "score": scores, "decision": decisions})
    group_columns = [c for c in test.columns if c.startswith("group__")]
    for column in [*group_columns, *settings.evaluation.slices]:
        frame[column] = test[column].to_numpy()
    slices = sliced_metrics(frame, [*settings.evaluation.slices, *group_columns], threshold, cost)
    fairness = fairness_report(
        frame, settings.data.protected_names, score="score", settings=settings.fairness,
        calibration_bins=settings.evaluation.calibration_bins,
    )  # fmt: skip
    return ModelColumn(
        name=name,
        role=role,  # type: ignore[arg-type]
        version=version,
        servable=servable,
        note=note,
        overall={k: v for k, v in overall.items() if isinstance(v, int | float) or v is None},
        slices={
            column: {
                value: {k: m.get(k) for k in SLICE_METRICS} | {"n": m["n"]} for value, m in groups.items()
            }
            for column, groups in slices.items()
        },
        fairness={
            attribute: {k: result.get(k) for k in (*SUMMARY_METRICS, CALIBRATION_METRIC)}
            for attribute, result in fairness.items()
        },
        calibration=calibration_points(labels, scores, settings.evaluation.calibration_bins),
        tpr_at_fpr=tpr_at_fpr(labels, scores),
        importance=importance,
    )


def _importance(pipeline, inputs: pd.DataFrame) -> dict[str, float] | None:
    from german_credit_scoring.explain.global_importance import contribution_matrix, importance_of

    try:
        _, values, names = contribution_matrix(pipeline, inputs)
    except Exception as error:
        log.info("no importance: %s", error)
        return None
    return {row.feature: row.mean_abs_contribution for row in importance_of(values, names)}


def _model_inputs(meta: dict[str, Any], features, include: bool, test: pd.DataFrame) -> pd.DataFrame:
    """The inputs a model was trained on (its model.json), typed by today's contract."""
    from german_credit_scoring.contract import FeatureSet
    from german_credit_scoring.data import model_frame

    wanted = meta.get("features") or [f.name for f in features.model_inputs(include)]
    known = {f.name: f for f in features.features}
    missing = [name for name in wanted if name not in known or name not in test.columns]
    if missing:
        raise DataError(f"the model needs inputs {missing} that today's test rows or contract do not have")
    return model_frame(test, FeatureSet(features=[known[name] for name in wanted]), include_sensitive=True)


def compare(
    settings,
    candidate_dir: Path = paths.CANDIDATE_DIR,
    production_dir: Path | None = DEFAULT_PRODUCTION,
    test_path: Path = paths.FEATURES_TEST,
    train_path: Path = paths.FEATURES_TRAIN,
    variants: list[str] | None = None,
    production_note: str | None = None,
) -> Comparison:
    from german_credit_scoring.contract import load_features
    from german_credit_scoring.data import positive_indicator, read_table

    features = load_features(settings.features)
    include = settings.data.use_protected_as_features
    loaded = load_model(candidate_dir)
    if isinstance(loaded, str):
        raise DataError(f"{candidate_dir}: the candidate model is missing; run `dvc repro train` ({loaded})")
    candidate, candidate_meta = loaded
    test = read_table(test_path)
    if settings.data.target not in test.columns:
        raise DataError(f"{test_path}: target column {settings.data.target!r} is missing")
    labels = positive_indicator(test[settings.data.target], settings.data.positive_label)
    columns: list[ModelColumn] = []

    def add(name, role, pipeline, meta, servable=True, note=""):
        inputs = _model_inputs(meta, features, include, test)
        scores = pipeline.predict_proba(inputs)[:, 1]
        threshold = float(meta.get("threshold", settings.decision_threshold))
        columns.append(
            column_of(
                name, role, str(meta.get("version", "unknown")), labels, scores,
                (scores >= threshold).astype(int), threshold, test, settings,
                _importance(pipeline, inputs), servable, note,
            )
        )  # fmt: skip

    add("candidate", "candidate", candidate, candidate_meta)
    if production_dir is not None and production_note is None:
        production = load_model(production_dir)
        if isinstance(production, str):
            production_note = production
        else:
            try:
                add("production", "production", *production)
            except (DataError, ValueError, KeyError) as error:
                production_note = f"production's model cannot score these test rows: {error}"
    elif production_dir is None and production_note is None:
        production_note = "none was given"

    skipped: dict[str, str] = {}
    for method in variants or []:
        from german_credit_scoring.explain.mitigation import variant

        try:
            made = variant(method, candidate, read_table(train_path), test, features, settings)
        except (DataError, ValueError) as error:  # e.g. no protected attributes: said, not fatal
            skipped[method] = str(error)
            continue
        columns.append(
            column_of(
                method, "variant", "not trained in the pipeline", labels, made.scores, made.decisions,
                made.threshold, test, settings, None, made.servable, made.note,
            )
        )  # fmt: skip
    regression: list[dict[str, Any]] = []
    production_column = next((c for c in columns if c.role == "production"), None)
    if production_column is not None and settings.gate.max_regression:
        from german_credit_scoring.lifecycle.gate import regression_checks

        regression = [
            check.to_dict()
            for check in regression_checks(
                columns[0].overall, production_column.overall, settings.gate.max_regression,
                "production scored on these rows", [],
            )
        ]  # fmt: skip
    return Comparison(
        regression=regression,
        rows=len(test),
        test_source=str(test_path),
        production_note=production_note,
        columns=columns,
        skipped_variants=skipped,
    )


# --- rendering ---------------------------------------------------------------------------------------


def change(metric: str, candidate: Any, production: Any) -> str:
    """``+0.012 ✅`` / ``-0.020 ⚠️``: candidate minus production, marked by whether it is better."""
    if not isinstance(candidate, int | float) or not isinstance(production, int | float):
        return "–"
    delta = float(candidate) - float(production)
    if abs(delta) < 5e-4:
        return "±0"
    if metric in {"threshold", "predicted_positive_rate", "proxy_auc"}:
        return f"{delta:+.3f}"  # neither better nor worse in itself
    lower_is_better = metric in LOWER_IS_BETTER or metric.endswith(("_difference", "_error"))
    better = delta < 0 if lower_is_better else delta > 0
    return f"{delta:+.3f} {'✅' if better else '⚠️'}"


def render_markdown(comparison: Comparison) -> str:
    from german_credit_scoring.lifecycle.fairness import CALIBRATION_METRIC, SUMMARY_METRICS
    from german_credit_scoring.markdown import render

    return render(
        "compare.md.j2",
        c=comparison,
        candidate=comparison.column("candidate"),
        production=comparison.column("production"),
        variants=[col for col in comparison.columns if col.role == "variant"],
        headline=HEADLINE,
        fairness_metrics=(*SUMMARY_METRICS, CALIBRATION_METRIC),
        slice_metrics=SLICE_METRICS,
        change=change,
    )


# --- CLI -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops compare",
        description="Score production's model beside the candidate (and mitigated variants) on the same "
        "test rows; write reports/compare.json and reports/compare.md.",
    )
    parser.add_argument(
        "--production",
        type=Path,
        default=DEFAULT_PRODUCTION,
        help="production's model directory (default: %(default)s)",
    )
    parser.add_argument(
        "--production-ref",
        default=None,
        metavar="REF",
        help="restore REF's models/approved from the DVC cache into --production first (e.g. main)",
    )
    parser.add_argument("--candidate", type=Path, default=paths.CANDIDATE_DIR)
    parser.add_argument("--test", type=Path, default=paths.FEATURES_TEST)
    parser.add_argument("--train", type=Path, default=paths.FEATURES_TRAIN)
    parser.add_argument(
        "--variants", nargs="*", default=None, help="mitigation variants (default: fairness.compare_variants)"
    )
    parser.add_argument("--output-dir", type=Path, default=COMPARE_JSON.parent)
    parser.add_argument("--params", type=Path, default=paths.PARAMS)
    return parser


def compare_cli(argv: list[str]) -> int:
    """``mlops compare``: exit 0 with or without a production model, 2 when the candidate cannot be scored."""
    from german_credit_scoring.settings import load_settings
    from german_credit_scoring.stage import configure_logging

    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.params)
        note = None
        if args.production_ref and not (args.production / "model.joblib").is_file():
            reason = restore_from_dvc_cache(args.production_ref, args.production)
            if reason:
                note = reason
        variants = settings.fairness.compare_variants if args.variants is None else args.variants
        result = compare(
            settings, args.candidate, args.production, args.test, args.train, list(variants), note
        )
    except ProjectError as error:
        print(f"mlops compare: {error}", file=sys.stderr)
        return 2
    io.write_json(args.output_dir / COMPARE_JSON.name, result.model_dump(mode="json"))
    io.write_text(args.output_dir / COMPARE_MD.name, render_markdown(result))
    print(f"wrote {args.output_dir / COMPARE_MD.name} ({len(result.columns)} models on {result.rows:,} rows)")
    return 0

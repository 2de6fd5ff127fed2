"""DVC stage `evaluate`: score the held-out split with the candidate; metrics, slices, plots, predictions."""

import joblib
import pandas as pd

from german_credit_scoring import io, paths
from german_credit_scoring.contract import load_features
from german_credit_scoring.data import model_frame, positive_indicator, read_table
from german_credit_scoring.errors import DataError
from german_credit_scoring.explain.global_importance import explain_model, importance_plot
from german_credit_scoring.lifecycle.evaluation import (
    bar,
    binary_metrics,
    calibration_points,
    confusion_rows,
    precision_recall_points,
    roc_points,
    sliced_metrics,
)
from german_credit_scoring.lifecycle.featurize import GROUP_PREFIX
from german_credit_scoring.markdown import render
from german_credit_scoring.settings import load_settings
from german_credit_scoring.stage import entry


def main() -> None:
    settings = load_settings()
    features = load_features(settings.features)
    meta = io.read_json(paths.CANDIDATE_META)
    pipeline = joblib.load(paths.CANDIDATE_MODEL)
    test = read_table(paths.FEATURES_TEST)
    threshold = float(meta["threshold"])
    cost = settings.evaluation.cost

    missing = [c for c in [settings.data.target, *settings.evaluation.slices] if c not in test.columns]
    if missing:
        raise DataError(
            f"{paths.FEATURES_TEST}: columns {missing} are missing (params.yaml data.target and "
            "evaluation.slices); run the features stage again: dvc repro --force features"
        )
    labels = positive_indicator(test[settings.data.target], settings.data.positive_label)
    scores = pipeline.predict_proba(model_frame(test, features, settings.data.use_protected_as_features))[
        :, 1
    ]
    decisions = (scores >= threshold).astype(int)
    group_columns = [c for c in test.columns if c.startswith(GROUP_PREFIX)]
    predictions = pd.DataFrame({"y_true": labels, "score": scores, "decision": decisions})
    for column in [*group_columns, *settings.evaluation.slices]:
        predictions[column] = test[column].to_numpy()

    overall = binary_metrics(labels, scores, threshold, cost)
    slices = sliced_metrics(predictions, [*settings.evaluation.slices, *group_columns], threshold, cost)
    io.write_with(paths.PREDICTIONS_TEST, lambda p: predictions.to_parquet(p, index=False))
    io.write_json(paths.EVALUATE_METRICS, {"overall": overall, "slices": slices})
    io.write_json(paths.PLOTS_DIR / "roc.json", roc_points(labels, scores))
    io.write_json(paths.PLOTS_DIR / "precision_recall.json", precision_recall_points(labels, scores))
    io.write_json(
        paths.PLOTS_DIR / "calibration.json",
        calibration_points(labels, scores, settings.evaluation.calibration_bins),
    )
    io.write_json(
        paths.PLOTS_DIR / "confusion.json",
        confusion_rows(
            labels, decisions, str(meta["positive_label"]), str(meta.get("negative_label", "other"))
        ),
    )
    explained = explain_model(
        pipeline,
        test,
        features,
        settings.data.use_protected_as_features,
        labels,
        scores,
        threshold,
        cost,
        str(meta.get("version", "unknown")),
        settings.evaluation.worst_cases,
        settings.evaluation.worst_case_reasons,
    )
    explained.write(paths.EXPLAIN_RESULT)
    io.write_json(paths.PLOTS_DIR / "importance.json", importance_plot(explained))
    io.write_text(
        paths.EVALUATE_MD,
        render(
            "evaluate.md.j2",
            explained=explained,
            meta=meta,
            overall=overall,
            slices=slices,
            cost=cost,
            bar=bar,
            calibration=calibration_points(labels, scores, settings.evaluation.calibration_bins),
        ),
    )


if __name__ == "__main__":
    entry(main, "evaluate")

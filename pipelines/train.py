"""DVC stage `train`: fit the configured estimator, track the run in MLflow, write the candidate model."""

import joblib

from german_credit_scoring import io, paths, runs
from german_credit_scoring.contract import load_features
from german_credit_scoring.data import read_table
from german_credit_scoring.lifecycle.tracking import log_training_run
from german_credit_scoring.lifecycle.training import (
    data_hashes,
    fit,
    git_state,
    metadata,
    model_version,
    negative_label_of,
    run_params,
    serialise,
    train_metrics,
    training_data,
)
from german_credit_scoring.markdown import render
from german_credit_scoring.settings import load_settings
from german_credit_scoring.stage import entry


def main() -> None:
    settings = load_settings()
    features = load_features(settings.features)
    train = read_table(paths.FEATURES_TRAIN)
    pipeline = fit(joblib.load(paths.TRANSFORMER), train, features, settings)
    blob = serialise(pipeline)
    version = model_version(blob)
    metrics = train_metrics(pipeline, train, features, settings)
    hashes = data_hashes([settings.data.path, paths.FEATURES_TRAIN, paths.TRANSFORMER])
    git = git_state()
    inputs, _ = training_data(train, features, settings)
    run = log_training_run(
        experiment=settings.project.slug,
        pipeline=pipeline,
        params=run_params(settings),
        metrics={f"train_{k}": v for k, v in metrics.items()},
        tags={
            "model_version": version,
            "git_commit": str(git["git_commit"]),
            "git_dirty": str(git["git_dirty"]).lower(),
            **{f"data_hash.{k}": v for k, v in hashes.items()},
        },
        input_example=inputs.head(5),
        artifacts=[paths.FEATURES_MD, paths.VALIDATION_MD],
    )
    meta = metadata(
        settings,
        features,
        version,
        len(blob),
        negative_label_of(train[settings.data.target], settings.data.positive_label),
        hashes,
        metrics,
    )
    runs.record("train", mlflow=run, model_version=version)
    io.write_with(paths.CANDIDATE_MODEL, lambda p: p.write_bytes(blob))
    io.write_json(paths.CANDIDATE_META, meta)
    io.write_json(paths.TRAIN_METRICS, metrics)
    io.write_text(paths.TRAIN_MD, render("train.md.j2", meta=meta, metrics=metrics))


if __name__ == "__main__":
    entry(main, "train")

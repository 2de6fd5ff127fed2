"""Training: fit the estimator on the features stage's fitted transformer; one Pipeline comes out.

The artefact is ``Pipeline([("transform", fitted transformer), ("model", fitted estimator)])``, so the
service and every later stage apply exactly the transformation training used.
"""

from __future__ import annotations

import hashlib
import io as _io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.data import model_frame, positive_indicator
from german_credit_scoring.errors import DataError
from german_credit_scoring.lifecycle.transform import build_estimator
from german_credit_scoring.settings import Settings


def training_data(
    frame: pd.DataFrame, features: FeatureSet, settings: Settings
) -> tuple[pd.DataFrame, np.ndarray]:
    target = settings.data.target
    if target not in frame.columns:
        raise DataError(f"target column {target!r} is missing from the training table")
    labels = positive_indicator(frame[target], settings.data.positive_label)
    if len(np.unique(labels)) < 2:
        raise DataError(
            f"target {target!r} needs both the positive label {settings.data.positive_label!r} and another class"
        )
    return model_frame(frame, features, settings.data.use_protected_as_features), labels


def fit(transformer, frame: pd.DataFrame, features: FeatureSet, settings: Settings) -> Pipeline:
    """Fit the configured estimator on the transformer's output; return the whole serving pipeline.

    With ``fairness.mitigation`` set, the estimator is trained the mitigated way (same Pipeline shape).
    """
    if settings.fairness.mitigation != "none":
        from german_credit_scoring.explain.mitigation import fit_servable

        training_data(frame, features, settings)  # the same checks of the target
        return fit_servable(transformer, frame, features, settings, settings.fairness.mitigation)
    inputs, labels = training_data(frame, features, settings)
    estimator = build_estimator(settings.model.type, settings.model.hyperparameters, settings.model.seed)
    estimator.fit(transformer.transform(inputs), labels)
    return Pipeline([("transform", transformer), ("model", estimator)])


def serialise(pipeline: Pipeline) -> bytes:
    import joblib

    buffer = _io.BytesIO()
    joblib.dump(pipeline, buffer)
    return buffer.getvalue()


def model_version(blob: bytes) -> str:
    """Content address of the artefact: the same data, code and params give the same version."""
    return hashlib.sha256(blob).hexdigest()[:12]


def train_metrics(pipeline: Pipeline, frame: pd.DataFrame, features: FeatureSet, settings: Settings) -> dict:
    from sklearn.metrics import accuracy_score, roc_auc_score

    inputs, labels = training_data(frame, features, settings)
    scores = pipeline.predict_proba(inputs)[:, 1]
    return {
        "rows": len(labels),
        "positive_rate": float(labels.mean()),
        "roc_auc": float(roc_auc_score(labels, scores)),
        "accuracy": float(accuracy_score(labels, scores >= settings.decision_threshold)),
    }


def git_state(cwd: Path | str = ".") -> dict[str, Any]:
    """Commit and dirty flag (MLflow tags), or "unknown" outside a git checkout."""
    from german_credit_scoring import runs

    commit, dirty = runs.git_state(cwd)
    return {"git_commit": commit or "unknown", "git_dirty": dirty}


def file_md5(path: Path | str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_hashes(inputs: list[Path | str], lock_path: Path = Path("dvc.lock")) -> dict[str, str]:
    """md5 of each input file, plus the md5 DVC pinned for the same paths in dvc.lock when present.

    Both, because the file hash says what this run read and the lock entry says what the pipeline
    recorded; a difference means the stage ran outside ``dvc repro``.
    """
    wanted = [Path(p).as_posix() for p in inputs]
    hashes = {name: file_md5(name) for name in wanted if Path(name).is_file()}
    if lock_path.is_file():
        import yaml

        lock = yaml.safe_load(lock_path.read_text(encoding="utf-8")) or {}
        pinned: dict[str, str] = {}
        for stage in (lock.get("stages") or {}).values():
            for entry in [*(stage.get("deps") or []), *(stage.get("outs") or [])]:
                path, md5 = str(entry.get("path", "")), entry.get("md5")
                if path in wanted and md5:
                    pinned.setdefault(path, str(md5))
        hashes.update({f"dvc.lock:{path}": pinned[path] for path in wanted if path in pinned})
    return hashes


def metadata(
    settings: Settings,
    features: FeatureSet,
    version: str,
    size_bytes: int,
    negative_label: str,
    hashes: dict[str, str],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """What the model directory says about itself: a function of the stage's inputs only.

    When, at which commit and in which MLflow run it was trained are run facts (``runs/train.json`` and
    the MLflow run's tags), kept out of this DVC output so that reproducing the stage gives the same bytes.
    """
    include = settings.data.use_protected_as_features
    return {
        "version": version,
        "model_type": settings.model.type,
        "mitigation": settings.fairness.mitigation,
        "hyperparameters": settings.model.hyperparameters,
        "seed": settings.model.seed,
        "threshold": settings.decision_threshold,
        "target": settings.data.target,
        "positive_label": settings.data.positive_label,
        "negative_label": negative_label,
        "classes": [negative_label, settings.data.positive_label],
        "features": [f.name for f in features.model_inputs(include)],
        "sensitive_features": [f.name for f in features.features if f.sensitive],
        "data_hashes": hashes,
        "size_bytes": size_bytes,
        "train_metrics": metrics,
    }


def run_params(settings: Settings) -> dict[str, Any]:
    """What an MLflow run records as params: the chosen model (not the unused one's block) and the data."""
    return {
        "model": {
            "type": settings.model.type,
            "seed": settings.model.seed,
            "threshold": settings.model.threshold,
            "decision_threshold": settings.decision_threshold,
            settings.model.type: settings.model.hyperparameters,
        },
        "data": settings.data.model_dump(mode="json"),
    }


def negative_label_of(labels: pd.Series, positive_label: str) -> str:
    others = sorted({str(v) for v in labels.dropna().unique()} - {str(positive_label)})
    return others[0] if len(others) == 1 else f"not_{positive_label}"

"""Scoring with the approved model artefact, shared by the service, its tests and its benchmark.

The artefact is the fitted scikit-learn Pipeline training produced plus its metadata (``model.json``).
Scoring builds the model frame with the very function evaluation uses (``data.model_frame``) and calls
the pipeline's ``predict_proba``: there is no second implementation of any transformation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.errors import ContractError

MODEL_FILE = "model.joblib"
META_FILE = "model.json"
SERVING_FILE = "serving.json"  # written by `package`: what serving needs beyond model.json
REQUIRED_META = ("version", "threshold", "positive_label", "target", "features")


def read_metadata(directory: Path | str) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise ContractError(f"{path}: model metadata not found")
    meta = json.loads(path.read_text(encoding="utf-8"))
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise ContractError(f"{path}: model metadata lacks {missing}")
    return meta


def negative_label(meta: dict[str, Any], observed_labels: list[str] | None = None) -> str:
    """The label of the other class: from the metadata when training recorded it, else the data's."""
    if meta.get("negative_label") is not None:
        return str(meta["negative_label"])
    for key in ("classes", "labels", "class_labels"):
        labels = meta.get(key)
        if isinstance(labels, list) and len(labels) == 2 and str(meta["positive_label"]) in map(str, labels):
            return next(str(label) for label in labels if str(label) != str(meta["positive_label"]))
    others = sorted({str(v) for v in observed_labels or []} - {str(meta["positive_label"])})
    if len(others) == 1:
        return others[0]
    return f"not_{meta['positive_label']}"


@dataclass
class Scorer:
    """A fitted pipeline with what it takes to turn probabilities into decisions."""

    pipeline: Any
    features: FeatureSet
    include_sensitive: bool
    threshold: float
    positive_label: str
    negative_label: str
    version: str

    def __post_init__(self) -> None:
        self.threshold = float(self.threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ContractError(f"model threshold {self.threshold} is not strictly between 0 and 1")

    @property
    def input_names(self) -> list[str]:
        return [f.name for f in self.features.model_inputs(self.include_sensitive)]

    def check_model_inputs(self, recorded: list[str]) -> None:
        """Refuse to serve a model trained on other inputs than the contract declares."""
        expected = self.input_names
        if list(recorded) != expected:
            missing = [n for n in expected if n not in recorded]
            extra = [n for n in recorded if n not in expected]
            raise ContractError(
                "the model's inputs do not match the feature definitions: "
                f"not in the model {missing}, not in the contract {extra}, model order {list(recorded)}"
            )

    def probabilities(self, records: list[dict[str, Any]]):
        """Probability of the positive class for each record (dicts keyed by feature name)."""
        import pandas as pd

        from german_credit_scoring.data import model_frame

        frame = pd.DataFrame.from_records(records, columns=self.features.names)
        return self.pipeline.predict_proba(model_frame(frame, self.features, self.include_sensitive))[:, 1]

    def score(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        probabilities = self.probabilities(records)
        return [
            {
                "probability": float(p),
                "decision": self.positive_label if p >= self.threshold else self.negative_label,
            }
            for p in probabilities
        ]


def load_scorer(directory: Path | str, features: FeatureSet, include_sensitive: bool) -> Scorer:
    """The scorer of a model directory (``models/approved`` or a BentoML model's path)."""
    import joblib

    directory = Path(directory)
    meta = read_metadata(directory)
    serving_path = directory / SERVING_FILE
    serving = json.loads(serving_path.read_text(encoding="utf-8")) if serving_path.is_file() else {}
    scorer = Scorer(
        pipeline=joblib.load(directory / MODEL_FILE),
        features=features,
        include_sensitive=include_sensitive,
        threshold=meta["threshold"],
        positive_label=str(meta["positive_label"]),
        negative_label=serving.get("negative_label") or negative_label(meta),
        version=str(meta["version"]),
    )
    scorer.check_model_inputs(meta["features"])
    return scorer

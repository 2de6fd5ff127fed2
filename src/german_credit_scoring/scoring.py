"""Scoring with the approved model artefact, shared by the service, its tests and its benchmark.

The artefact is the fitted scikit-learn Pipeline training produced plus its metadata (``model.json``).
Scoring builds the model frame with the very function evaluation uses (``data.model_frame``) and calls
the pipeline's ``predict_proba``: there is no second implementation of any transformation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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

    def frame(self, columns: Mapping[str, Sequence[Any]]):
        """The model frame of column-wise values ``{feature name: values}`` (absent inputs are missing).

        Column-wise because the service reads validated records attribute by attribute: no dict per
        record and no dtype inference per value, which cost more than the model itself on 1,000 rows.
        """
        import pandas as pd

        from german_credit_scoring.data import model_frame

        size = len(next(iter(columns.values()))) if columns else 0
        raw = pd.DataFrame(
            {name: columns[name] if name in columns else [None] * size for name in self.input_names},
            dtype=object,
        )
        return model_frame(raw, self.features, self.include_sensitive)

    def predict_frame(self, frame) -> Any:
        """Probability of the positive class for each row of a model frame (``Scorer.frame``)."""
        return self.pipeline.predict_proba(frame)[:, 1]

    def column_probabilities(self, columns: Mapping[str, Sequence[Any]]):
        return self.predict_frame(self.frame(columns))

    def probabilities(self, records: list[dict[str, Any]]):
        """Probability of the positive class for each record (dicts keyed by feature name)."""
        columns = {name: [record.get(name) for record in records] for name in self.input_names}
        return self.column_probabilities(columns)

    def decisions(self, probabilities) -> list[str]:
        """The decision for each probability: the positive label at or above the threshold."""
        positive, negative, threshold = self.positive_label, self.negative_label, self.threshold
        return [positive if p >= threshold else negative for p in probabilities]

    def score(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        probabilities = self.probabilities(records).tolist()
        return [
            {"probability": p, "decision": d}
            for p, d in zip(probabilities, self.decisions(probabilities), strict=True)
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

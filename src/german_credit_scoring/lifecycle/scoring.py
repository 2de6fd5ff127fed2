"""Scoring with the approved model artefact, shared by the service, its tests and its benchmark.

The artefact is the fitted scikit-learn Pipeline training produced plus its metadata (``model.json``).
Scoring builds the model frame with the very function evaluation uses (``data.model_frame``) and calls
the pipeline's ``predict_proba``.

The fast path (the service's): when the fitted transformer is one ``explain.contributions.FastTransformer``
re-implements, and that numpy version gives scikit-learn's matrix bit for bit on probe records drawn
from the contract (checked at load), column-wise records skip pandas and the ``ColumnTransformer``
(~10 ms of a single-record request); the estimator's own ``decision_function`` then gives the log-odds
and ``expit`` of it the probability, exactly as its ``predict_proba`` computes it. Otherwise the
pipeline is called as above. ``Scorer.fast`` says which. For a gradient-boosting model the explainer's
per-tree tables give the log-odds instead (``TreeContributions.margins``: each tree's leaf value per
cell, added in scikit-learn's order), once they reproduce ``decision_function`` bit for bit on the probe
records and on records at and either side of every threshold (checked at load, ``Scorer.table_margins``);
the explanation then reuses that pass. Reasons on or off, the prediction takes the same path.

Explanations (``Scorer.explain``): exact contributions per input in log-odds and the top-k reasons
per record (``explain.reasons``). A model that cannot be explained exactly, or a record whose
contributions do not reproduce its score, still gets its decision, with the reason it has none.

A fairness mixture (``explain.mitigation.MixtureClassifier``) has no ``decision_function``: its score
is its own ``predict_proba``, on the verified numpy transformer's matrix when there is one
(``Scorer.fast_matrix``; the same matrix as the pipeline's, so the same score), which its explanation
then reuses; what is explained, and checked for additivity, is its weighted mean member log-odds m(x)
(``explain.contributions.MixtureContributions``).
A record whose m(x) leans against the mixture's decision gets no reasons (``UNFAITHFUL`` says why).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from german_credit_scoring.contract import FeatureSet
from german_credit_scoring.errors import ContractError

MODEL_FILE = "model.joblib"
META_FILE = "model.json"
SERVING_FILE = "serving.json"  # written by `package`: what serving needs beyond model.json
REQUIRED_META = ("version", "threshold", "positive_label", "target", "features")
# Contributions plus the base value must reproduce a record's log-odds this closely (relative to
# max(1, |log-odds|)); otherwise the record is served without reasons, saying why.
ADDITIVITY_TOLERANCE = 1e-6
# A fairness mixture's record whose explained log-odds m(x) lean against its decision (the weighted vote)
UNFAITHFUL = (
    "no explanation: the mixture's members disagree with its decision (their weighted mean log-odds "
    "{margin:.3g} lean the other way); no faithful reasons"
)

log = logging.getLogger(__name__)


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

    fast: Any = field(default=None, init=False, repr=False)  # FastTransformer when verified
    # a fairness mixture's verified FastTransformer (no decision_function: scored by its predict_proba)
    fast_matrix: Any = field(default=None, init=False, repr=False)
    explainer: Any = field(default=None, init=False, repr=False)  # PipelineExplainer when possible
    unexplainable: str | None = field(default=None, init=False)  # why the model has no explanations
    _reason_codes: Any = field(default=None, init=False, repr=False)
    # scikit-learn's matrix is column-major for some transformers (one numeric block): the estimator's
    # BLAS product then sums in another order, so the fast path hands it the same layout (same bits)
    _fortran: bool = field(default=False, init=False, repr=False)
    # the explainer's tables give the estimator's log-odds bit for bit (checked at load): one pass over the
    # trees serves both the prediction and its explanation, with reasons on or off alike
    table_margins: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.threshold = float(self.threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ContractError(f"model threshold {self.threshold} is not strictly between 0 and 1")
        self._prepare()

    def _prepare(self) -> None:
        """Set up the fast path and the explainer when the pipeline allows (module docstring)."""
        from german_credit_scoring.explain.contributions import ExplanationUnavailable, PipelineExplainer

        steps = getattr(self.pipeline, "steps", None)
        if not steps or len(steps) != 2:
            self.unexplainable = "the model is not a fitted Pipeline(transform, model)"
            return
        try:
            self.explainer = PipelineExplainer(self.pipeline, self.input_names)
        except ExplanationUnavailable as error:
            self.unexplainable = str(error)
            return
        except Exception as error:  # an unexpected model shape: serve it, without explanations
            log.warning("no explanations for this model: %s", error)
            self.unexplainable = f"the model could not be prepared for explanations: {error}"
            return
        fast = self.explainer.transformer
        probe = probe_columns(self.features, self.input_names)
        try:
            expected = np.asarray(self.pipeline[0].transform(self.frame(probe)), dtype=np.float64)
            same = bool(np.array_equal(expected, fast.transform(probe), equal_nan=True))
        except Exception as error:  # pragma: no cover - a transformer the probe cannot pass through
            log.warning("fast path not verified: %s", error)
            same = False
        if not same:
            log.warning("the numpy transformer differs from scikit-learn's on probe records; not used")
            return
        self._fortran = bool(expected.flags.f_contiguous and not expected.flags.c_contiguous)
        if hasattr(self.pipeline[-1], "decision_function"):  # the score is expit(decision_function)
            self.fast = fast
            self.table_margins = self._verify_margins(expected)
        else:  # a fairness mixture: its own predict_proba, on the matrix the explanation reuses
            self.fast_matrix = fast

    def _verify_margins(self, probe: np.ndarray) -> bool:
        """Whether the explainer's log-odds (``PipelineExplainer.margins``) equal the estimator's
        ``decision_function`` bit for bit on the probe records and on records at, just below and just
        above every threshold of the model (``PipelineExplainer.margin_probe``)."""
        thresholds = self.explainer.margin_probe()
        if thresholds is None:
            return False
        estimator = self.pipeline[-1]
        try:
            for matrix in (probe[~np.isnan(probe).any(axis=1)], thresholds):
                margins, _ = self.explainer.margins(matrix)
                expected = np.asarray(estimator.decision_function(matrix), dtype=np.float64).ravel()
                if margins is None or not np.array_equal(margins, expected):
                    log.warning("the explainer's tables differ from the model's log-odds; not used for them")
                    return False
        except Exception as error:  # pragma: no cover - a model shape the tables cannot take
            log.warning("log-odds from the explainer's tables not verified: %s", error)
            return False
        return True

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

    def model_matrix(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """The estimator's input matrix of column-wise records (the fast path when verified)."""
        fast = self.fast if self.fast is not None else self.fast_matrix
        if fast is not None:
            matrix = fast.transform(columns)
            return np.asfortranarray(matrix) if self._fortran else matrix
        return np.asarray(self.pipeline[0].transform(self.frame(columns)), dtype=np.float64)

    def margins_and_probabilities(self, columns: Mapping[str, Sequence[Any]]) -> tuple[Any, np.ndarray]:
        """``((model matrix, log-odds, prepared) or None, probabilities)``: the triple only on the fast
        path; ``prepared`` is the explainer's own pass over the model (``table_margins``) or ``None``."""
        if self.fast is None:
            if self.fast_matrix is not None:  # a mixture: one transform serves its score and its explanation
                matrix = self.model_matrix(columns)
                probabilities = np.asarray(self.pipeline[-1].predict_proba(matrix), dtype=np.float64)[:, 1]
                return (matrix, None, None), probabilities
            return None, np.asarray(self.predict_frame(self.frame(columns)), dtype=np.float64)
        from scipy.special import expit

        matrix = self.model_matrix(columns)
        margins = prepared = None
        if self.table_margins:  # None for a record with a missing value: then the estimator's own
            margins, prepared = self.explainer.margins(matrix)
        if margins is None:
            margins = np.asarray(self.pipeline[-1].decision_function(matrix), dtype=np.float64).ravel()
        return (matrix, margins, prepared), expit(margins)

    def column_probabilities(self, columns: Mapping[str, Sequence[Any]]):
        return self.margins_and_probabilities(columns)[1]

    def score_columns(
        self, columns: Mapping[str, Sequence[Any]], top_k: int = 0, as_json: bool = False
    ) -> Scores:
        """Probabilities, decisions and (``top_k > 0``) each record's reasons, of column-wise records
        (``as_json``: each record's reasons as JSON text, see ``ReasonCodes.reasons_json``)."""
        model, probabilities = self.margins_and_probabilities(columns)
        as_list = probabilities.tolist()
        decisions = self.decisions(as_list)
        if top_k <= 0:
            return Scores(as_list, decisions, None, None)
        reasons, missing = self.explain(columns, decisions, top_k, model, as_json)
        return Scores(as_list, decisions, reasons, missing)

    def explain(
        self,
        columns: Mapping[str, Sequence[Any]],
        decisions: Sequence[str],
        top_k: int,
        model: tuple[np.ndarray, np.ndarray, Any] | None = None,
        as_json: bool = False,
    ) -> tuple[list[Any], list[str | None]]:
        """Each record's reasons (dicts, or JSON text with ``as_json``) and, where it has none, why.
        Never raises for a record."""
        from german_credit_scoring.explain.reasons import ReasonCodes

        size = len(decisions)

        def none() -> Any:
            return b"[]" if as_json else []

        if self.explainer is None:
            return [none() for _ in range(size)], [f"no explanation: {self.unexplainable}"] * size
        try:
            if model is None:
                model = (self.model_matrix(columns), None, None)
            matrix, margins, prepared = model
            explanation = self.explainer.explain(matrix, margins, prepared)
            residual = np.abs(explanation.residuals())
            ok = np.isfinite(explanation.contributions).all(axis=1) & (
                residual <= ADDITIVITY_TOLERANCE * np.maximum(1.0, np.abs(explanation.margins))
            )
            codes = self._reason_codes
            if codes is None or codes.top_k != top_k:
                codes = self._reason_codes = ReasonCodes(
                    self.features, self.input_names, top_k, compiled=self.explainer.compiled
                )
            towards = np.array([d == self.positive_label for d in decisions], dtype=bool)
            # a mixture's explained m(x) leaning against its decision: no faithful reasons
            against = ok & self.explainer.leans_against(explanation.margins, towards)
            ok &= ~against
            contributions = np.where(ok[:, None], explanation.contributions, 0.0)
            reasons = (codes.reasons_json if as_json else codes.reasons)(contributions, towards, columns)
        except Exception as error:  # the whole batch failed to explain: decisions still go out
            log.warning("explanation failed for a batch of %d: %s", size, error)
            return [none() for _ in range(size)], [f"no explanation: {error}"] * size
        missing: list[str | None] = [None] * size
        for row in np.nonzero(~ok)[0].tolist():
            reasons[row] = none()
            if against[row]:
                missing[row] = UNFAITHFUL.format(margin=float(explanation.margins[row]))
                continue
            missing[row] = (
                "no explanation: the contributions could not be computed exactly for this record "
                f"(they miss its score by {residual[row]:.3g} log-odds or are not finite)"
            )
        return reasons, missing

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


@dataclass
class Scores:
    """What scoring gives per record, in request order; ``reasons`` is ``None`` when reasons are off."""

    probabilities: list[float]
    decisions: list[str]
    reasons: list[Any] | None  # per record: a list of reason dicts, or its JSON text
    unexplained: list[str | None] | None  # why a record has no reasons (None: it has them)


def probe_columns(features: FeatureSet, names: Sequence[str]) -> dict[str, list[Any]]:
    """Records that visit every declared category, both ends of every range and, where allowed, a missing
    value (column-wise): what the fast path must reproduce exactly before it is used."""
    values: dict[str, list[Any]] = {}
    for name in names:
        feature = features.get(name)
        if feature.is_numeric:
            low = feature.min if feature.min is not None else -1.0
            high = feature.max if feature.max is not None else 1.0
            options: list[Any] = [low, high, (low + high) / 2]
            if feature.dtype == "int":
                options = [int(low), int(high), int((low + high) // 2)]
        else:
            options = list(feature.allowed_values or ["__probe_unknown__"])
        if feature.nullable:
            options.append(None)
        values[name] = options
    size = max(len(v) for v in values.values()) if values else 0
    return {name: [options[i % len(options)] for i in range(size)] for name, options in values.items()}


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

"""The scoring service (BentoML 1.4): the approved pipeline behind a typed HTTP API.

Run from the project root: ``BENTOML_HOME=.bentoml bentoml serve serving.service:ScoringService``
(after ``dvc repro package`` imported the model), or serve the built bento / container image.

Endpoints
- ``POST /predict``        ``{"record": {...}}``    -> decision, probability, model version, request id
- ``POST /predict_batch``  ``{"records": [...]}``   -> one decision and probability per record, in order
- ``GET /livez``, ``GET /readyz``, ``GET /metrics`` (Prometheus), ``GET /docs.json`` (OpenAPI):
  built into BentoML.

Input contract: generated from ``features/features.yaml`` (german_credit_scoring.serving_contract).
BentoML validates the body before our code runs and answers 400 with one ``detail`` item per problem,
each with its location (``["record", "<field>"]`` or ``["records", <index>, "<field>"]``).

Batches are atomic: if any record is invalid, the whole request is rejected with every problem of
every record listed, and nothing is scored or logged; the client fixes the listed records and resends.
Good records are never lost (nothing was half-processed) and never mixed with another client's bad
ones: validation runs per request, before any scoring.

Model: the BentoML model ``<project slug>:latest`` (or ``$SCORING_MODEL_TAG``) is referenced at class
level, so ``bentoml build`` packs exactly that model into the bento.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import bentoml
from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "src" / "german_credit_scoring").is_dir():  # pragma: no cover - layout guard
    raise RuntimeError(f"{ROOT}: the library sources (src/german_credit_scoring) are missing")
try:  # installed in the project's venv; inside a bento the sources travel under src/
    import german_credit_scoring  # noqa: F401
except ImportError:  # pragma: no cover - exercised in the container image
    sys.path.insert(0, str(ROOT / "src"))

from german_credit_scoring.contract import load_features  # noqa: E402
from german_credit_scoring.packaging import MODEL_TAG_ENV  # noqa: E402
from german_credit_scoring.prediction_log import PredictionLog, make_rows, utc_now  # noqa: E402
from german_credit_scoring.scoring import load_scorer  # noqa: E402
from german_credit_scoring.serving_contract import as_feature_dict, batch_type, build_record_model  # noqa: E402
from german_credit_scoring.settings import load_settings  # noqa: E402

log = logging.getLogger("german_credit_scoring.serving")

SETTINGS = load_settings(ROOT / "params.yaml")
FEATURES = load_features(ROOT / SETTINGS.features)
INCLUDE_SENSITIVE = SETTINGS.data.use_protected_as_features
MAX_BATCH = SETTINGS.serving.max_batch_size
MODEL_TAG = os.environ.get(MODEL_TAG_ENV) or f"{SETTINGS.project.slug}:latest"
SERVICE_NAME = re.sub(r"[^a-z0-9_-]+", "_", SETTINGS.project.slug.lower())

Record = build_record_model(FEATURES, INCLUDE_SENSITIVE, name="Record")
Records = batch_type(Record, MAX_BATCH)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_COUNTERS: dict[str, Any] = {}


class Prediction(BaseModel):
    request_id: str
    model_version: str
    decision: str = Field(description="the class label the threshold gives")
    probability: float = Field(ge=0, le=1, description="probability of the positive class")


class ScoredRecord(BaseModel):
    decision: str
    probability: float = Field(ge=0, le=1)


class BatchPrediction(BaseModel):
    request_id: str
    model_version: str
    predictions: list[ScoredRecord]


def _counter(name: str, documentation: str):
    """Prometheus counters, created once per process after BentoML set up multiprocess metrics."""
    if name not in _COUNTERS:
        import prometheus_client

        _COUNTERS[name] = prometheus_client.Counter(name, documentation)
    return _COUNTERS[name]


def _request_id(ctx: bentoml.Context) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token (traces join up), else a fresh UUID."""
    given = ctx.request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


@bentoml.service(
    name=SERVICE_NAME,
    workers=int(os.environ.get("SCORING_WORKERS", "1")),
    traffic={"timeout": 30, "max_concurrency": 64},
    resources={"cpu": "1", "memory": "512Mi"},
)
class ScoringService:
    model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        self.scorer = load_scorer(self.model.path, FEATURES, INCLUDE_SENSITIVE)
        self.model_version = self.scorer.version
        self.log_failures = _counter(
            "prediction_log_failures",
            "Prediction log rows that could not be written (predictions were served)",
        )
        self.scored = _counter("predictions_scored", "Records scored by the model")
        directory = os.environ.get("PREDICTION_LOG") or SETTINGS.serving.prediction_log
        fmt = os.environ.get("PREDICTION_LOG_FORMAT") or SETTINGS.serving.prediction_log_format
        self.prediction_log = PredictionLog(directory, fmt, on_error=lambda _: self.log_failures.inc())
        log.info(
            "serving model %s version %s; prediction log %s (%s)",
            self.model.tag,
            self.model_version,
            directory,
            fmt,
        )

    def _answer(
        self, ctx: bentoml.Context, records: list[dict[str, Any]]
    ) -> tuple[str, list[dict[str, Any]]]:
        request_id = _request_id(ctx)
        timestamp = utc_now()
        outputs = self.scorer.score(records)
        self.scored.inc(len(outputs))
        self.prediction_log.append(make_rows(request_id, self.model_version, records, outputs, timestamp))
        ctx.response.headers["X-Request-ID"] = request_id
        ctx.response.headers["X-Model-Version"] = self.model_version
        return request_id, outputs

    @bentoml.api
    def predict(self, record: Record, ctx: bentoml.Context) -> Prediction:  # type: ignore[valid-type]
        """Score one applicant."""
        request_id, outputs = self._answer(ctx, [as_feature_dict(record)])
        return Prediction(request_id=request_id, model_version=self.model_version, **outputs[0])

    @bentoml.api
    def predict_batch(self, records: Records, ctx: bentoml.Context) -> BatchPrediction:  # type: ignore[valid-type]
        """Score up to ``serving.max_batch_size`` applicants; answers are in request order."""
        request_id, outputs = self._answer(ctx, [as_feature_dict(r) for r in records])
        return BatchPrediction(
            request_id=request_id,
            model_version=self.model_version,
            predictions=[ScoredRecord(**o) for o in outputs],
        )

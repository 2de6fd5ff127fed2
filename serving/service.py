"""The scoring service (BentoML 1.4): the approved pipeline behind a typed HTTP API.

Run from the project root: ``BENTOML_HOME=.bentoml bentoml serve serving.service:ScoringService``
(after ``dvc repro package`` imported the model), or serve the built bento / container image.

Endpoints
- ``POST /predict``        ``{"record": {...}}``    -> decision, probability, reasons, model version, request id
- ``POST /predict_batch``  ``{"records": [...]}``   -> one decision, probability and reasons per record, in order
- ``POST /counterfactual`` ``{"record": {...}}``    -> decision, probability and counterfactual hints: the
  closest changes of one input within the contract that turn the decision (german_credit_scoring.explain.
  counterfactual); a what-if, so not written to the prediction log (``/predict`` gives the decision of record)
- ``GET /livez``, ``GET /readyz``, ``GET /metrics`` (Prometheus), ``GET /docs.json`` (OpenAPI):
  built into BentoML.

Input contract: generated from ``features/features.yaml`` (german_credit_scoring.lifecycle.serving_contract).
BentoML validates the body before our code runs and answers 400 with one ``detail`` item per problem,
each with its location (``["record", "<field>"]`` or ``["records", <index>, "<field>"]``).

Batches are atomic: if any record is invalid, the whole request is rejected with every problem of
every record listed, and nothing is scored or logged; the client fixes the listed records and resends.
Good records are never lost (nothing was half-processed) and never mixed with another client's bad
ones: validation runs per request, before any scoring.

Model: the BentoML model ``<project slug>:latest`` (or ``$SCORING_MODEL_TAG``) is referenced at class
level, so ``bentoml build`` packs exactly that model into the bento.

Reasons: every answer carries the record's top ``serving.reasons_top_k`` reasons (``$SCORING_REASONS_TOP_K``
overrides; 0 turns them off): feature, value, signed contribution to the log-odds, phrase
(german_credit_scoring.explain). A record that cannot be explained still gets its decision, with
``reasons_unavailable`` saying why; explaining never fails a request.

Speed: the hot path never builds a dict per record and never touches pandas: validated records go
column by column through the verified numpy copy of the fitted transformer (``Scorer.fast``), the
estimator's ``decision_function`` gives the log-odds, and the same log-odds are explained.
Answers are assembled as JSON text from typed parts rather than validated and serialised again through
pydantic, which cost more than scoring a batch: each probability and reason is encoded once, and the
answer and the prediction log line join the same fragments (one object array per request, no bytes
built per record). Each record's JSON for the prediction log comes from pydantic's serialiser; startup
objects are frozen out of the garbage collector.

Adaptive batching is an option, not the default: ``bentoml serve serving.service:BatchingScoringService``
sends each /predict record to a second process (``BatchedModel``, a batchable BentoML API) that merges
concurrent requests into one model call (``SCORING_ADAPTIVE_MAX_BATCH``, ``SCORING_ADAPTIVE_MAX_LATENCY_MS``).
On 2 cores it doubles single-record throughput at concurrency 8 but adds ~1 ms at concurrency 1, a
process and an internal HTTP hop (README "Benchmarks"). To ship it, point ``serving/bentofile.yaml``'s
``service`` at it.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from pydantic import BaseModel, Field
from starlette.responses import Response

ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "src" / "german_credit_scoring").is_dir():  # pragma: no cover - layout guard
    raise RuntimeError(f"{ROOT}: the library sources (src/german_credit_scoring) are missing")
try:  # installed in the project's venv; inside a bento the sources travel under src/
    import german_credit_scoring  # noqa: F401
except ImportError:  # pragma: no cover - exercised in the container image
    sys.path.insert(0, str(ROOT / "src"))

from german_credit_scoring.contract import load_features  # noqa: E402
from german_credit_scoring.explain.counterfactual import Counterfactuals, RecordHints  # noqa: E402
from german_credit_scoring.governance.lineage import require_verified  # noqa: E402
from german_credit_scoring.lifecycle.packaging import MODEL_TAG_ENV  # noqa: E402
from german_credit_scoring.lifecycle.scoring import Scores, load_scorer  # noqa: E402
from german_credit_scoring.lifecycle.serving_contract import (  # noqa: E402
    as_columns,
    as_json,
    batch_type,
    build_record_model,
    field_attributes,
)
from german_credit_scoring.monitoring.prediction_log import PredictionLog, Redactor, utc_now  # noqa: E402
from german_credit_scoring.settings import load_settings  # noqa: E402

log = logging.getLogger("german_credit_scoring.serving")

SETTINGS = load_settings(ROOT / "params.yaml")
FEATURES = load_features(ROOT / SETTINGS.features)
INCLUDE_SENSITIVE = SETTINGS.data.use_protected_as_features
MAX_BATCH = SETTINGS.serving.max_batch_size
REASONS_TOP_K = int(os.environ.get("SCORING_REASONS_TOP_K") or SETTINGS.serving.reasons_top_k)
HINTS_TOP_K = int(os.environ.get("SCORING_HINTS_TOP_K") or SETTINGS.serving.hints_top_k)
MODEL_TAG = os.environ.get(MODEL_TAG_ENV) or f"{SETTINGS.project.slug}:latest"
SERVICE_NAME = re.sub(r"[^a-z0-9_-]+", "_", SETTINGS.project.slug.lower())

Record = build_record_model(FEATURES, INCLUDE_SENSITIVE, name="Record")
Records = batch_type(Record, MAX_BATCH)
ATTRIBUTES = field_attributes(Record)
# Threads of OpenMP (the gradient-boosting predictor) and BLAS per worker: the worker's CPU share
# (``resources.cpu``). More threads than the cgroup's quota spin against each other and the request's
# own numpy work: on 2 loaded cores a 1,000-record tree prediction took 190 ms with 2 OpenMP threads,
# 26 ms with one.
THREADS = int(os.environ.get("SCORING_THREADS", "1"))
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # pools loaded from here on
    os.environ.setdefault(_pool, str(THREADS))
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_COUNTERS: dict[str, Any] = {}


class Reason(BaseModel):
    feature: str = Field(description="the input feature")
    value: str | int | float | None = Field(description="the record's value of it")
    contribution: float = Field(description="its signed contribution to the log-odds of the positive class")
    phrase: str = Field(description="what the feature means, from the feature definitions")


_REASONS = Field(default_factory=list, description="the strongest contributions towards the decision")
_UNAVAILABLE = Field(default=None, description="why the record has no reasons (the decision stands)")


class Prediction(BaseModel):
    request_id: str
    model_version: str
    decision: str = Field(description="the class label the threshold gives")
    probability: float = Field(ge=0, le=1, description="probability of the positive class")
    reasons: list[Reason] = _REASONS
    reasons_unavailable: str | None = _UNAVAILABLE


class ScoredRecord(BaseModel):
    decision: str
    probability: float = Field(ge=0, le=1)
    reasons: list[Reason] = _REASONS
    reasons_unavailable: str | None = _UNAVAILABLE


class BatchPrediction(BaseModel):
    request_id: str
    model_version: str
    predictions: list[ScoredRecord]


class Hint(BaseModel):
    feature: str = Field(description="the input to change (never immutable, sensitive or identifying)")
    value: str | int | float | None = Field(description="the record's value of it")
    suggested: str | int | float = Field(description="the value within the contract that turns the decision")
    probability: float = Field(ge=0, le=1, description="probability of the positive class with that value")
    decision: str = Field(description="the decision with that value")
    effort: float = Field(ge=0, description="share of the input's range moved (1 for a category)")
    phrase: str = Field(description="what the feature means, from the feature definitions")


class Counterfactual(BaseModel):
    request_id: str
    model_version: str
    decision: str
    probability: float = Field(ge=0, le=1)
    hints: list[Hint] = Field(
        default_factory=list, description="closest one-input changes, least effort first"
    )
    hints_unavailable: str | None = Field(default=None, description="why the record has no hints")


def _counter(name: str, documentation: str):
    """Prometheus counters, created once per process after BentoML set up multiprocess metrics."""
    if name not in _COUNTERS:
        import prometheus_client

        _COUNTERS[name] = prometheus_client.Counter(name, documentation)
    return _COUNTERS[name]


def _limit_threads():
    """Cap OpenMP and BLAS thread pools at ``SCORING_THREADS`` for this process (see ``THREADS``)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=THREADS)


def _request_id(ctx: bentoml.Context) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token (traces join up), else a fresh UUID."""
    given = ctx.request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


class _Scoring:
    """Both endpoints and the per-request work (ids, headers, counters, prediction log)."""

    model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        require_verified(self.model.path)  # refuses changed bytes; SCORING_ALLOW_UNVERIFIED=true overrides
        self.scorer = load_scorer(self.model.path, FEATURES, INCLUDE_SENSITIVE)
        self._threads = _limit_threads()  # after loading: threadpoolctl caps the pools loaded by now
        self.model_version = self.scorer.version
        self.hinter = Counterfactuals(self.scorer, HINTS_TOP_K, SETTINGS.serving.hints_for)
        self._version_json = json.dumps(self.model_version).encode()
        self._label_json = {
            label: json.dumps(label).encode()
            for label in (self.scorer.positive_label, self.scorer.negative_label)
        }
        self.log_failures = _counter(
            "prediction_log_failures",
            "Prediction log rows that could not be written (predictions were served)",
        )
        self.scored = _counter("predictions_scored", "Records scored by the model")
        directory = os.environ.get("PREDICTION_LOG") or SETTINGS.serving.prediction_log
        fmt = os.environ.get("PREDICTION_LOG_FORMAT") or SETTINGS.serving.prediction_log_format
        # identifying contract fields are hashed (keyed) or dropped before they are written
        redactor = Redactor.from_settings(FEATURES, SETTINGS.monitoring.store)
        self.prediction_log = PredictionLog(
            directory, fmt, on_error=lambda _: self.log_failures.inc(), redactor=redactor
        )
        # What is loaded by now (BentoML, scikit-learn, pandas, the model: ~200k objects) lives as long as
        # the process; freezing it keeps the collector's full passes from scanning it, which otherwise
        # paused a request for 50-90 ms every few 1,000-record batches.
        gc.freeze()
        log.info(
            "serving model %s version %s; prediction log %s (%s)",
            self.model.tag,
            self.model_version,
            directory,
            fmt,
        )

    def _answer(self, ctx: bentoml.Context, records: list[Any]) -> tuple[str, bytes]:
        """Score (and explain) validated records in this process and finish the request."""
        columns = as_columns(records, ATTRIBUTES, self.scorer.input_names)
        return self._finish(ctx, records, self.scorer.score_columns(columns, REASONS_TOP_K, as_json=True))

    def _finish(self, ctx: bentoml.Context, records: list[Any], scores: Scores) -> tuple[str, bytes]:
        """Count, log and set the headers: the per-request part of every endpoint. Returns the records'
        answers as JSON text, comma-separated in request order (decision, probability and, when reasons
        are on, ``reasons`` and ``reasons_unavailable``); the prediction log gets the same fragments.
        Every fragment goes into one object array, joined once: no per-record bytes to build."""
        request_id = _request_id(ctx)
        size = len(scores.decisions)
        labels = self._label_json
        decisions = [labels[d] for d in scores.decisions]
        probabilities = json.dumps(scores.probabilities).encode()[1:-1].split(b", ")  # repr of each
        members: list[tuple[str, list[bytes]]] = []
        if scores.reasons is not None and scores.unexplained is not None:
            missing = [b"null" if m is None else json.dumps(m).encode() for m in scores.unexplained]
            members = [("reasons", scores.reasons), ("reasons_unavailable", missing)]
        parts = np.empty((size, 5 + 2 * len(members)), dtype=object)
        parts[:, 0] = b'{"decision":'
        parts[:, 1] = decisions
        parts[:, 2] = b',"probability":'
        parts[:, 3] = probabilities
        for j, (key, values) in enumerate(members):
            parts[:, 4 + 2 * j] = b',"' + key.encode() + b'":'
            parts[:, 5 + 2 * j] = values
        parts[:, -1] = b"},"
        parts[-1, -1] = b"}"
        answers = b"".join(parts.ravel().tolist())
        self.scored.inc(size)
        self.prediction_log.append_request(
            request_id,
            self.model_version,
            utc_now(),
            as_json(records),
            scores.probabilities,
            scores.decisions,
            members=members,
        )
        ctx.response.headers["X-Request-ID"] = request_id
        ctx.response.headers["X-Model-Version"] = self.model_version
        return request_id, answers

    def _head(self, request_id: str) -> bytes:
        return b'{"request_id":' + json.dumps(request_id).encode() + b',"model_version":' + self._version_json

    def _prediction(self, request_id: str, answers: bytes) -> Response:
        """The ``Prediction`` as JSON (assembled, not validated again: every part is typed already)."""
        return Response(self._head(request_id) + b"," + answers[1:], media_type="application/json")

    @bentoml.api
    def predict(self, record: Record, ctx: bentoml.Context) -> Prediction:  # type: ignore[valid-type]
        """Score one applicant."""
        return self._prediction(*self._answer(ctx, [record]))  # type: ignore[return-value]

    @bentoml.api
    def predict_batch(self, records: Records, ctx: bentoml.Context) -> BatchPrediction:  # type: ignore[valid-type]
        """Score up to ``serving.max_batch_size`` applicants; answers are in request order."""
        request_id, answers = self._answer(ctx, records)
        body = self._head(request_id) + b',"predictions":[' + answers + b"]}"
        return Response(body, media_type="application/json")  # type: ignore[return-value]

    @bentoml.api
    def counterfactual(self, record: Record, ctx: bentoml.Context) -> Counterfactual:  # type: ignore[valid-type]
        """What one change of an input, within the contract, would turn this applicant's decision."""
        columns = as_columns([record], ATTRIBUTES, self.scorer.input_names)
        scores = self.scorer.score_columns(columns)
        found = self.hinter.hints(columns, scores.probabilities, scores.decisions)[0]
        if found is None:  # a decision hints are not given for (serving.hints_for)
            found = RecordHints([], self.hinter.out_of_scope())
        request_id = _request_id(ctx)
        ctx.response.headers["X-Request-ID"] = request_id
        ctx.response.headers["X-Model-Version"] = self.model_version
        return Counterfactual(
            request_id=request_id,
            model_version=self.model_version,
            decision=scores.decisions[0],
            probability=scores.probabilities[0],
            hints=[Hint(**hint) for hint in found.as_dicts()],
            hints_unavailable=found.unavailable,
        )


_SERVICE_CONFIG: dict[str, Any] = {
    "workers": int(os.environ.get("SCORING_WORKERS", "1")),
    "traffic": {"timeout": 30, "max_concurrency": 64},
    "resources": {"cpu": "1", "memory": "512Mi"},
}


@bentoml.service(name=SERVICE_NAME, **_SERVICE_CONFIG)
class ScoringService(_Scoring):
    """The default: every request is scored in the API process, no hop to another process."""


# Adaptive batching (option): serve ``serving.service:BatchingScoringService`` instead. /predict then
# hands each validated record to a second process (``BatchedModel``) whose batchable API merges the
# records of concurrent requests into one model call; ids, headers and the prediction log stay per
# request in the API process. See README "Benchmarks" for when it pays off.
ADAPTIVE_MAX_BATCH = int(os.environ.get("SCORING_ADAPTIVE_MAX_BATCH", "64"))
ADAPTIVE_MAX_LATENCY_MS = int(os.environ.get("SCORING_ADAPTIVE_MAX_LATENCY_MS", "1000"))


@bentoml.service(
    name=f"{SERVICE_NAME}_model",
    workers=1,
    traffic={"timeout": 30, "max_concurrency": 256},
    resources={"cpu": "1", "memory": "512Mi"},
)
class BatchedModel:
    """The model alone; rows of concurrent requests arrive merged into one list."""

    model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        require_verified(self.model.path)  # refuses changed bytes; SCORING_ALLOW_UNVERIFIED=true overrides
        self.scorer = load_scorer(self.model.path, FEATURES, INCLUDE_SENSITIVE)
        self._threads = _limit_threads()  # after loading: threadpoolctl caps the pools loaded by now
        gc.freeze()

    @bentoml.api(batchable=True, max_batch_size=ADAPTIVE_MAX_BATCH, max_latency_ms=ADAPTIVE_MAX_LATENCY_MS)
    async def probabilities(self, rows: list[list[Any]]) -> list[float]:
        """Probability of the positive class per row (model-input values in ``Scorer.input_names`` order)."""
        columns = dict(zip(self.scorer.input_names, (list(c) for c in zip(*rows, strict=True)), strict=True))
        return self.scorer.column_probabilities(columns).tolist()


@bentoml.service(name=SERVICE_NAME, **_SERVICE_CONFIG)
class BatchingScoringService(_Scoring):
    """Like ``ScoringService``, but single-record requests are batched across clients (option)."""

    batched = bentoml.depends(BatchedModel)

    @bentoml.api
    async def predict(self, record: Record, ctx: bentoml.Context) -> Prediction:  # type: ignore[valid-type]
        """Score one applicant (batched with concurrent requests)."""
        import aiohttp

        row = [getattr(record, ATTRIBUTES[name]) for name in self.scorer.input_names]
        try:
            probabilities = await self.batched.probabilities([row])
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionError):
            # BentoML 1.4's client can reuse a pooled connection the model process already closed
            # (bentoml/BentoML#4971); scoring is pure, so one retry on a fresh connection is safe.
            log.warning("model process connection dropped; retrying once")
            probabilities = await self.batched.probabilities([row])
        probabilities = [float(p) for p in probabilities]
        decisions = self.scorer.decisions(probabilities)
        scores = Scores(probabilities, decisions, None, None)
        if REASONS_TOP_K > 0:
            columns = as_columns([record], ATTRIBUTES, self.scorer.input_names)
            reasons, missing = self.scorer.explain(columns, decisions, REASONS_TOP_K, as_json=True)
            scores = Scores(probabilities, decisions, reasons, missing)
        return self._prediction(*self._finish(ctx, [record], scores))

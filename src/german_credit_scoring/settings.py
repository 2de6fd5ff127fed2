"""Typed, frozen settings loaded from ``params.yaml``.

Every knob a team turns lives in ``params.yaml``; this module turns it into validated objects so that
a typo is a clear error naming the key, not a ``KeyError`` deep inside a stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from german_credit_scoring.errors import SettingsError

DEFAULT_PARAMS = Path("params.yaml")


class Frozen(BaseModel):
    """Immutable and strict: unknown keys are typos, not silently ignored options."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ProjectSettings(Frozen):
    name: str
    slug: str
    risk_tier: Literal["low", "medium", "high"] = "high"


class ProtectedAttribute(Frozen):
    """A protected attribute; numeric ones are banded (``bins`` are the inner cut points)."""

    name: str
    bins: list[float] | None = None
    labels: list[str] | None = None

    @model_validator(mode="after")
    def _labels_match_bins(self) -> ProtectedAttribute:
        if self.bins is not None:
            if sorted(self.bins) != list(self.bins):
                raise ValueError(f"protected attribute {self.name!r}: bins must be increasing")
            if self.labels is not None and len(self.labels) != len(self.bins) + 1:
                raise ValueError(
                    f"protected attribute {self.name!r}: {len(self.bins)} bins need "
                    f"{len(self.bins) + 1} labels, got {len(self.labels)}"
                )
        elif self.labels is not None:
            raise ValueError(f"protected attribute {self.name!r}: labels given without bins")
        return self


class DataSettings(Frozen):
    path: Path
    format: Literal["auto", "csv", "parquet"] = "auto"
    target: str
    positive_label: str
    entity_key: str | None = None
    protected_attributes: list[ProtectedAttribute] = Field(default_factory=list)
    use_protected_as_features: bool = False
    min_rows: Annotated[int, Field(ge=1)] = 50
    # Newer labelled rows added by `mlops dataset append`: DVC-tracked Parquet parts named by their
    # content hash, read after ``path``. This list is the dataset version's pointer.
    appended: list[Path] = Field(default_factory=list)

    @model_validator(mode="after")
    def _target_not_protected(self) -> DataSettings:
        names = [p.name for p in self.protected_attributes]
        if self.target in names:
            raise ValueError(f"target column {self.target!r} cannot also be a protected attribute")
        if len(set(names)) != len(names):
            raise ValueError(f"protected attributes are listed twice: {names}")
        return self

    @property
    def protected_names(self) -> list[str]:
        return [p.name for p in self.protected_attributes]


class SplitSettings(Frozen):
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.25
    seed: int = 42
    stratify: bool = True
    # random: a seeded (stratified) shuffle; time: the newest rows by time_column are the test set
    # (out-of-time validation)
    method: Literal["random", "time"] = "random"
    time_column: str | None = None

    @model_validator(mode="after")
    def _time_column_for_time_split(self) -> SplitSettings:
        if self.method == "time" and not self.time_column:
            raise ValueError("split.method 'time' needs split.time_column (the column ordering rows in time)")
        return self


class ValidationSettings(Frozen):
    suite: Path = Path("features/expectations.json")
    # Tolerances used when (re)generating the suite from data.
    null_rate_margin: Annotated[float, Field(ge=0, le=1)] = 0.05
    range_margin: Annotated[float, Field(ge=0)] = 0.0
    label_balance_tolerance: Annotated[float, Field(ge=0, le=1)] = 0.15
    row_count_min: Annotated[int, Field(ge=0)] = 50
    # Who evaluates the suite: Great Expectations (the reference) or the vectorised pandas engine
    # (same suite and verdicts, about 40x faster on millions of rows). "auto": GX up to gx_max_rows.
    engine: Literal["auto", "gx", "pandas"] = "auto"
    gx_max_rows: Annotated[int, Field(ge=0)] = 250_000


class LogisticRegressionParams(Frozen):
    C: Annotated[float, Field(gt=0)] = 1.0
    max_iter: Annotated[int, Field(ge=1)] = 1000
    class_weight: Literal["balanced"] | None = None


class HistGradientBoostingParams(Frozen):
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.05
    max_iter: Annotated[int, Field(ge=1)] = 200
    max_leaf_nodes: Annotated[int, Field(ge=2)] = 15
    min_samples_leaf: Annotated[int, Field(ge=1)] = 20
    l2_regularization: Annotated[float, Field(ge=0)] = 0.0
    class_weight: Literal["balanced"] | None = None


class ModelSettings(Frozen):
    type: Literal["logistic_regression", "hist_gradient_boosting"] = "logistic_regression"
    seed: int = 42
    logistic_regression: LogisticRegressionParams = LogisticRegressionParams()
    hist_gradient_boosting: HistGradientBoostingParams = HistGradientBoostingParams()
    # Probability of the positive class above which the decision is "positive".
    # ``null`` derives the cost-optimal threshold from the cost matrix: fp / (fp + fn).
    threshold: Annotated[float, Field(gt=0, lt=1)] | None = None

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return getattr(self, self.type).model_dump()


class CostMatrix(Frozen):
    """Cost of each error; the positive class is ``data.positive_label``."""

    false_negative: Annotated[float, Field(ge=0)] = 5.0
    false_positive: Annotated[float, Field(ge=0)] = 1.0


class EvaluationSettings(Frozen):
    cost: CostMatrix = CostMatrix()
    slices: list[str] = Field(default_factory=list)
    calibration_bins: Annotated[int, Field(ge=2, le=50)] = 10
    # Explanations in review (reports/explain.json): the costliest test errors and their top reasons.
    worst_cases: Annotated[int, Field(ge=0, le=50)] = 5
    worst_case_reasons: Annotated[int, Field(ge=1, le=20)] = 3


class GateSettings(Frozen):
    """One policy: every number a model must meet before it can be merged."""

    min_metrics: dict[str, float] = Field(default_factory=dict)
    max_metrics: dict[str, float] = Field(default_factory=dict)
    max_fairness: dict[str, float] = Field(default_factory=dict)
    min_fairness: dict[str, float] = Field(default_factory=dict)
    max_regression: dict[str, float] = Field(default_factory=dict)
    max_latency_p95_ms: Annotated[float, Field(gt=0)] | None = None
    max_model_size_mb: Annotated[float, Field(gt=0)] | None = None
    # Git refs tried in order for the production model's metrics (main is production).
    baseline_refs: list[str] = Field(default_factory=lambda: ["origin/main", "main"])
    # Which value of a fairness figure max_fairness/min_fairness judge: the point estimate (estimate),
    # the end of its confidence interval most favourable to the model (benefit_of_doubt: a small group
    # fails the gate only when the evidence is clear) or the least favourable (burden_of_proof).
    fairness_interval: Literal["estimate", "benefit_of_doubt", "burden_of_proof"] = "estimate"


class DriftSettings(Frozen):
    current: str = "logs/predictions"
    min_rows: Annotated[int, Field(ge=1)] = 200
    psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    ks_threshold: Annotated[float, Field(gt=0, le=1)] = 0.1
    js_threshold: Annotated[float, Field(gt=0, le=1)] = 0.15
    prediction_psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    performance_drop_threshold: Annotated[float, Field(ge=0)] = 0.05
    # An effect above its threshold is drift only if also significant (p < alpha): no alarm on noise.
    alpha: Annotated[float, Field(gt=0, le=1)] = 0.01
    # p-values of all features' tests are corrected together: alpha bounds the whole check's false alarms.
    correction: Literal["holm", "bonferroni", "none"] = "holm"
    # A feature's share of missing values moving by more than this (absolute) is drift of its own.
    missing_rate_threshold: Annotated[float, Field(gt=0, le=1)] = 0.1
    # Rows a window normally holds (None: no volume check); a relative change above the threshold is drift.
    expected_rows: Annotated[int, Field(ge=1)] | None = None
    volume_change_threshold: Annotated[float, Field(gt=0)] = 0.5
    per_feature: dict[str, dict[str, float]] = Field(default_factory=dict)
    bins: Annotated[int, Field(ge=2, le=100)] = 10


class ServingSettings(Frozen):
    max_batch_size: Annotated[int, Field(ge=1)] = 1000
    prediction_log: str = "logs/predictions"
    prediction_log_format: Literal["jsonl", "parquet"] = "jsonl"
    # Reasons per scored record (the top-k contributions towards its decision); 0 turns them off.
    reasons_top_k: Annotated[int, Field(ge=0, le=50)] = 4
    # Counterfactual hints (``/counterfactual``, ``mlops score --hints``): at most this many one-input
    # changes within the contract that turn a decision; 0 turns them off. Given for records decided as
    # ``hints_for`` (``positive``: the positive label, the class the model scores; ``negative``; ``any``).
    hints_top_k: Annotated[int, Field(ge=0, le=50)] = 3
    hints_for: Literal["positive", "negative", "any"] = "positive"
    image_registry: str = "ghcr.io"


class LogStoreSettings(Frozen):
    """Where shipped prediction logs and outcomes live, and how long."""

    # a local folder (the default) or an fsspec URL: s3://bucket/prefix, gs://..., az://... (extras)
    url: str = "logs/store"
    retention_days: Annotated[int, Field(ge=1)] = 90
    # contract features marked identifying: hashed with a keyed hash (salt from salt_env) or dropped
    identifying: Literal["hash", "drop"] = "hash"
    salt_env: str = "PREDICTION_LOG_SALT"


class WindowSettings(Frozen):
    """Which logged days the drift check reads: the last ``days`` or every day since the last check."""

    mode: Literal["days", "since_last"] = "days"
    days: Annotated[int, Field(ge=1)] = 7


class LabelSettings(Frozen):
    """Outcomes (``mlops labels``) and production performance."""

    # a prediction's outcome is known only after this many days (a default needs time to happen)
    maturity_days: Annotated[int, Field(ge=0)] = 0
    # an outcome arriving later than this after its prediction is counted as late (still used)
    late_after_days: Annotated[int, Field(ge=0)] = 365
    # two different labels for one prediction: keep the latest file's, or use neither
    conflict: Literal["latest", "drop"] = "drop"
    window_days: Annotated[int, Field(ge=1)] = 30
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95
    bootstrap: Annotated[int, Field(ge=50)] = 400
    seed: int = 0


class TriggerSettings(Frozen):
    """When a retraining pull request is opened; each trigger can be switched off with null/false."""

    feature_drift: bool = True
    prediction_drift: bool = True
    performance_metric: Literal["roc_auc", "recall", "expected_cost"] = "roc_auc"
    # fires when the whole confidence interval of the window's metric is worse than test by this much
    max_performance_drop: Annotated[float, Field(ge=0)] | None = 0.05
    # fires when the lower bound of the production demographic parity difference exceeds this
    max_fairness_gap: Annotated[float, Field(ge=0, le=1)] | None = 0.30
    min_new_labelled_rows: Annotated[int, Field(ge=1)] | None = 500
    max_model_age_days: Annotated[int, Field(ge=1)] | None = 180


class MonitoringSettings(Frozen):
    store: LogStoreSettings = LogStoreSettings()
    window: WindowSettings = WindowSettings()
    labels: LabelSettings = LabelSettings()
    triggers: TriggerSettings = TriggerSettings()


class ProxySettings(Frozen):
    """Proxy analysis: how well the model's inputs predict each protected attribute (cross-validated)."""

    folds: Annotated[int, Field(ge=2, le=20)] = 5
    max_rows: Annotated[int, Field(ge=50)] = 20_000  # a seeded sample above this (the AUC is stable)
    top_features: Annotated[int, Field(ge=1)] = 5


class FairnessSettings(Frozen):
    """Fairness beyond parity (intervals, calibration per group, proxies) and mitigation."""

    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95
    bootstrap: Annotated[int, Field(ge=100)] = 1000
    seed: int = 0
    calibration_min_rows: Annotated[int, Field(ge=1)] = 10  # a group's bin below this is not judged
    proxy: ProxySettings = ProxySettings()
    # Applied to the candidate in training (it must stay servable): none | reweighing |
    # exponentiated_gradient. correlation_remover and threshold_optimizer need the protected
    # attribute at prediction time and are offered for comparison only (compare_variants).
    mitigation: Literal["none", "reweighing", "exponentiated_gradient"] = "none"
    constraint: Literal["demographic_parity", "equalized_odds"] = "demographic_parity"
    # Variants `mlops compare` trains beside the candidate on the same rows, for review.
    compare_variants: list[
        Literal["reweighing", "correlation_remover", "exponentiated_gradient", "threshold_optimizer"]
    ] = Field(default_factory=list)


class Settings(Frozen):
    project: ProjectSettings
    data: DataSettings
    split: SplitSettings = SplitSettings()
    features: Path = Path("features/features.yaml")
    validation: ValidationSettings = ValidationSettings()
    model: ModelSettings = ModelSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    gate: GateSettings = GateSettings()
    drift: DriftSettings = DriftSettings()
    serving: ServingSettings = ServingSettings()
    fairness: FairnessSettings = FairnessSettings()
    monitoring: MonitoringSettings = MonitoringSettings()

    @field_validator("features")
    @classmethod
    def _yaml_features(cls, value: Path) -> Path:
        if value.suffix not in {".yaml", ".yml"}:
            raise ValueError(f"features must point to a YAML file, got {value}")
        return value

    @property
    def decision_threshold(self) -> float:
        if self.model.threshold is not None:
            return self.model.threshold
        cost = self.evaluation.cost
        total = cost.false_positive + cost.false_negative
        return 0.5 if total == 0 else cost.false_positive / total


def _format_errors(error: ValidationError, source: Path) -> str:
    lines = [f"{source}: invalid settings"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  - {where}: {item['msg']}")
    return "\n".join(lines)


def parse_settings(raw: dict[str, Any], source: Path = DEFAULT_PARAMS) -> Settings:
    """Validate an already-parsed ``params.yaml`` mapping."""
    if not isinstance(raw, dict):
        raise SettingsError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise SettingsError(_format_errors(error, source)) from None


def load_settings(path: Path | str = DEFAULT_PARAMS) -> Settings:
    """Read and validate ``params.yaml``; every error names the offending key."""
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"{path}: settings file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML: {error}") from None
    return parse_settings(raw or {}, path)

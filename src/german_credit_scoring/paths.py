"""Where every stage reads and writes; ``dvc.yaml`` declares the same paths (a test keeps them in step)."""

from pathlib import Path

PARAMS = Path("params.yaml")

# ingest
TRAIN = Path("data/prepared/train.parquet")
TEST = Path("data/prepared/test.parquet")
REFERENCE = Path("data/reference/reference.parquet")
INGEST_SUMMARY = Path("reports/ingest.json")

# validate
VALIDATION_RESULT = Path("reports/validation.json")
VALIDATION_MD = Path("reports/validation.md")

# features
FEATURES_TRAIN = Path("data/features/train.parquet")
FEATURES_TEST = Path("data/features/test.parquet")
TRANSFORMER = Path("models/transformer.joblib")
FEATURES_MD = Path("reports/features.md")

# train
CANDIDATE_DIR = Path("models/candidate")
CANDIDATE_MODEL = CANDIDATE_DIR / "model.joblib"
CANDIDATE_META = CANDIDATE_DIR / "model.json"
TRAIN_METRICS = Path("metrics/train.json")
TRAIN_MD = Path("reports/train.md")

# evaluate
EVALUATE_METRICS = Path("metrics/evaluate.json")
PREDICTIONS_TEST = Path("data/predictions/test.parquet")
PLOTS_DIR = Path("plots")
EVALUATE_MD = Path("reports/evaluate.md")
EXPLAIN_RESULT = Path("reports/explain.json")  # global importance and worst cases (ExplainReport)

# fairness
FAIRNESS_METRICS = Path("metrics/fairness.json")
FAIRNESS_MD = Path("reports/fairness.md")

# gate: the approved model is only replaced when every check passes
GATE_RESULT = Path("metrics/gate.json")
GATE_MD = Path("reports/gate.md")
APPROVED_DIR = Path("models/approved")
APPROVED_MODEL = APPROVED_DIR / "model.joblib"
APPROVED_META = APPROVED_DIR / "model.json"

# package: the bento built from the approved model
BENTO_RECORD = Path("models/bento.json")

# drift: current data (drift.current in params.yaml) against the reference snapshot
DRIFT_RESULT = Path("reports/drift.json")
DRIFT_MD = Path("reports/drift.md")

# report
PR_COMMENT = Path("reports/pr_comment.md")
EXAMPLE_REQUEST = Path("models/example_request.json")

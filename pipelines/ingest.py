"""DVC stage `ingest`: raw data -> typed train/test splits and the drift reference snapshot."""

from german_credit_scoring import io, paths
from german_credit_scoring.contract import load_features
from german_credit_scoring.lifecycle.ingest import ingest
from german_credit_scoring.settings import load_settings
from german_credit_scoring.stage import entry


def main() -> None:
    settings = load_settings()
    result = ingest(settings, load_features(settings.features))
    io.write_with(paths.TRAIN, lambda p: result.train.to_parquet(p, index=False))
    io.write_with(paths.TEST, lambda p: result.test.to_parquet(p, index=False))
    io.write_with(paths.REFERENCE, lambda p: result.train.to_parquet(p, index=False))
    io.write_json(paths.INGEST_SUMMARY, result.summary)


if __name__ == "__main__":
    entry(main, "ingest")

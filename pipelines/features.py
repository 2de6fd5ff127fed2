"""DVC stage `features`: fit the contract's transformer on train and write the feature tables."""

import joblib

from german_credit_scoring import io, paths
from german_credit_scoring.contract import load_features
from german_credit_scoring.data import read_table
from german_credit_scoring.lifecycle.featurize import feature_table, fit_transformer, render_markdown
from german_credit_scoring.settings import load_settings
from german_credit_scoring.stage import entry


def main() -> None:
    settings = load_settings()
    features = load_features(settings.features)
    train = feature_table(read_table(paths.TRAIN), features, settings, str(paths.TRAIN))
    test = feature_table(read_table(paths.TEST), features, settings, str(paths.TEST))
    transformer = fit_transformer(train, features, settings.data.use_protected_as_features)
    io.write_with(paths.TRANSFORMER, lambda p: joblib.dump(transformer, p))
    io.write_with(paths.FEATURES_TRAIN, lambda p: train.to_parquet(p, index=False))
    io.write_with(paths.FEATURES_TEST, lambda p: test.to_parquet(p, index=False))
    io.write_text(paths.FEATURES_MD, render_markdown(features, settings, train, test, transformer))


if __name__ == "__main__":
    entry(main, "features")

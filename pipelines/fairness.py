"""DVC stage `fairness`: group fairness of the candidate's test decisions, per protected attribute.

Parity with intervals, calibration per group (from the test scores) and a proxy analysis of the
model's inputs on the training split.
"""

from german_credit_scoring import io, paths
from german_credit_scoring.contract import load_features
from german_credit_scoring.data import read_table
from german_credit_scoring.explain.proxy import proxy_analysis
from german_credit_scoring.lifecycle.fairness import (
    GROUP_PREFIX,
    attach_proxy,
    fairness_report,
    render_markdown,
)
from german_credit_scoring.settings import load_settings
from german_credit_scoring.stage import entry


def main() -> None:
    settings = load_settings()
    predictions = read_table(paths.PREDICTIONS_TEST)
    names = settings.data.protected_names
    result = fairness_report(
        predictions,
        names,
        source=str(paths.PREDICTIONS_TEST),
        score="score",
        settings=settings.fairness,
        calibration_bins=settings.evaluation.calibration_bins,
    )
    if names:
        features = load_features(settings.features)
        train = read_table(paths.FEATURES_TRAIN)
        for name in names:
            proxy = proxy_analysis(
                train,
                features,
                train[GROUP_PREFIX + name],
                settings.fairness.proxy,
                settings.fairness.confidence,
                settings.fairness.seed,
            )
            attach_proxy(result[name], proxy)
    io.write_json(paths.FAIRNESS_METRICS, result)
    io.write_text(paths.FAIRNESS_MD, render_markdown(result, len(predictions)))


if __name__ == "__main__":
    entry(main, "fairness")

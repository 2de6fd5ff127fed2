"""DVC stage `drift`: the production window (data/current/, from `mlops drift-window`) vs the reference
of the model version that served it -> reports/drift.{json,md}.

Exits 1 when drift is found (after writing both reports), 0 for no drift or too little current data,
2 for bad input. Without a window (a fresh clone) the verdict is insufficient_data.
"""

from german_credit_scoring import paths
from german_credit_scoring.contract import load_features
from german_credit_scoring.monitoring.window import run_check
from german_credit_scoring.settings import load_settings
from german_credit_scoring.stage import CheckFailed, entry


def main() -> None:
    settings = load_settings()
    result = run_check(
        settings, load_features(settings.features), json_path=paths.DRIFT_RESULT, markdown_path=paths.DRIFT_MD
    )
    if result["verdict"] == "drift":
        raise CheckFailed(result["message"])


if __name__ == "__main__":
    entry(main, "drift")

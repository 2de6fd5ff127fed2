"""DVC stage `fairness`: group fairness of the candidate's test decisions, per protected attribute."""

from german_credit_scoring import io, paths
from german_credit_scoring.data import read_table
from german_credit_scoring.fairness import fairness_report, render_markdown
from german_credit_scoring.settings import load_settings
from german_credit_scoring.stage import entry


def main() -> None:
    settings = load_settings()
    predictions = read_table(paths.PREDICTIONS_TEST)
    result = fairness_report(predictions, settings.data.protected_names, source=str(paths.PREDICTIONS_TEST))
    io.write_json(paths.FAIRNESS_METRICS, result)
    io.write_text(paths.FAIRNESS_MD, render_markdown(result, len(predictions)))


if __name__ == "__main__":
    entry(main, "fairness")

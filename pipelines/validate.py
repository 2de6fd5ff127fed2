"""DVC stage `validate`: the prepared data against the Great Expectations suite.

Writes reports/validation.json and reports/validation.md whatever the verdict, then fails (exit 1)
when a critical expectation failed, so no model is trained on data that breaks the contract.
"""

from german_credit_scoring import io, paths
from german_credit_scoring.data import read_table
from german_credit_scoring.lifecycle.validation import render_markdown, validate_prepared
from german_credit_scoring.settings import load_settings
from german_credit_scoring.stage import CheckFailed, entry


def main() -> None:
    settings = load_settings()
    frames = [read_table(paths.TRAIN), read_table(paths.TEST)]
    report = validate_prepared(
        frames,
        settings.validation.suite,
        str(settings.data.path),
        settings.validation.engine,
        settings.validation.gx_max_rows,
    )
    io.write_json(paths.VALIDATION_RESULT, report.to_dict())
    io.write_text(paths.VALIDATION_MD, render_markdown(report, settings.validation.suite))
    if not report.success:
        failures = "\n".join(f"  - {check.message}" for check in report.failed_critical)
        raise CheckFailed(f"{len(report.failed_critical)} critical data checks failed:\n{failures}")


if __name__ == "__main__":
    entry(main, "validate")

"""DVC stage `package`: the approved model -> BentoML model store -> bento, recorded in models/bento.json."""

import logging

from german_credit_scoring import io, packaging, paths
from german_credit_scoring.stage import entry

log = logging.getLogger("german_credit_scoring.package")


def main() -> None:
    packaging.use_project_bentoml_home()  # before bentoml is imported: the store lives in .bentoml/
    from german_credit_scoring.settings import load_settings

    settings = load_settings()
    record = packaging.package(settings)
    io.write_json(paths.BENTO_RECORD, record)
    log.info("built bento %s with model %s", record["bento"], record["model"])


if __name__ == "__main__":
    entry(main, "package")

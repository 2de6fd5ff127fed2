"""DVC stage `package`: the approved model -> BentoML model store -> bento, recorded in models/bento.json."""

import logging

from german_credit_scoring import io, paths
from german_credit_scoring.lifecycle import packaging
from german_credit_scoring.stage import entry

log = logging.getLogger("german_credit_scoring.package")


def example_request(settings) -> dict:
    """A real held-out row in the service's request shape, for `curl` and smoke tests."""
    from german_credit_scoring.contract import load_features
    from german_credit_scoring.data import model_frame, read_table

    features = load_features(settings.features)
    inputs = features.model_inputs(settings.data.use_protected_as_features)
    if paths.TEST.is_file():
        row = model_frame(read_table(paths.TEST).head(1), features, settings.data.use_protected_as_features)
        record = {k: (None if v != v else v) for k, v in row.iloc[0].to_dict().items()}
    else:  # packaging a model without the pipeline's data: a record the contract accepts
        record = {
            f.name: (f.allowed_values or [None])[0]
            if not f.is_numeric
            else (f.min if f.min is not None else 0)
            for f in inputs
        }
    for feature in inputs:
        if feature.dtype == "int" and record[feature.name] is not None:
            record[feature.name] = int(record[feature.name])
    return {"record": record}


def main() -> None:
    packaging.use_project_bentoml_home()  # before bentoml is imported: the store lives in .bentoml/
    from german_credit_scoring.settings import load_settings

    settings = load_settings()
    record = packaging.package(settings)
    io.write_json(paths.BENTO_RECORD, record)
    io.write_json(paths.EXAMPLE_REQUEST, example_request(settings))
    log.info("built bento %s with model %s", record["bento"], record["model"])


if __name__ == "__main__":
    entry(main, "package")

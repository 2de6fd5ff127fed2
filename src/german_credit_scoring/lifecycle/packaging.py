"""Package the approved model as a BentoML model and a bento (the deployable unit).

``BENTOML_HOME`` defaults to ``.bentoml/`` inside the project (git-ignored), so a run never reads or
writes the user's global store. The bento is built offline: ``lock_packages: false`` in
``serving/bentofile.yaml`` (BentoML would otherwise resolve and lock the requirements with uv).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from german_credit_scoring.errors import ProjectError
from german_credit_scoring.lifecycle.scoring import (
    META_FILE,
    MODEL_FILE,
    SERVING_FILE,
    negative_label,
    read_metadata,
)

log = logging.getLogger(__name__)

BENTOML_HOME = Path(".bentoml")
BENTOFILE = Path("serving/bentofile.yaml")
MODEL_TAG_ENV = "SCORING_MODEL_TAG"  # lets the service serve another stored model than <slug>:latest


def use_project_bentoml_home(root: Path | str = ".") -> Path:
    """Point BentoML at the project's own store unless the caller chose one (set before importing bentoml)."""
    home = Path(os.environ.get("BENTOML_HOME") or Path(root).resolve() / BENTOML_HOME)
    os.environ["BENTOML_HOME"] = str(home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    home.mkdir(parents=True, exist_ok=True)
    return home


def tag_version(version: str) -> str:
    """A BentoML tag version (letters, digits, ``_ - .``; starts with a letter or digit)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(version)).strip("-._")
    return cleaned[:63].lower() or "unversioned"


def bento_labels(meta: dict[str, Any]) -> dict[str, str]:
    """Labels carried by the model and the bento: what was trained, on which data.

    The commit is not among them: the bento record is a DVC output and must not change with the commit a
    run happens at. The image built from the bento carries the commit (`mlops handover labels`).
    """
    hashes = meta.get("data_hashes") or {}
    return {
        "model_version": str(meta["version"]),
        "data_hashes": json.dumps(hashes, sort_keys=True, separators=(",", ":")),
        "target": str(meta["target"]),
        "positive_label": str(meta["positive_label"]),
    }


def import_model(
    model_dir: Path | str,
    name: str,
    features_path: Path | str,
    observed_labels: list[str] | None = None,
):
    """Copy the model directory into the BentoML store as ``name:<model version>``; returns the stored model.

    Re-importing the same version replaces it, so a re-run of the stage is idempotent.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    model_dir = Path(model_dir)
    meta = read_metadata(model_dir)
    if not (model_dir / MODEL_FILE).is_file():
        raise ProjectError(f"{model_dir / MODEL_FILE}: model file not found")
    tag = f"{name}:{tag_version(meta['version'])}"
    try:
        bentoml.models.delete(tag)
        log.info("replacing stored model %s", tag)
    except NotFound:
        pass
    labels = bento_labels(meta)
    serving = {"negative_label": negative_label(meta, observed_labels), "source": str(model_dir)}
    # BentoML metadata takes basic types only (no None): model.json travels as the file itself.
    metadata = {
        "model_version": str(meta["version"]),
        "model_type": str(meta.get("model_type", "")),
        **serving,
    }
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
        shutil.copy2(model_dir / MODEL_FILE, model.path_of(MODEL_FILE))
        shutil.copy2(model_dir / META_FILE, model.path_of(META_FILE))
        shutil.copy2(features_path, model.path_of("features.yaml"))
        Path(model.path_of(SERVING_FILE)).write_text(json.dumps(serving, indent=2) + "\n", encoding="utf-8")
        # the digests the service checks before it loads the model, and the release's signatures if any
        from german_credit_scoring.governance.lineage import package_lineage

        package_lineage(model_dir, Path(model.path_of("")))
    return bentoml.models.get(tag)


def build_bento(
    bentofile: Path | str, labels: dict[str, str], version: str | None = None, build_ctx: str = "."
):
    """``bentoml build`` through the Python API, with the model's labels added to the bentofile's."""
    import bentoml

    return bentoml.bentos.build_bentofile(str(bentofile), build_ctx=build_ctx, labels=labels, version=version)


def bento_record(bento, model) -> dict[str, Any]:
    """The stage's small output: which bento, which model, and the labels they carry."""
    return {
        "bento": str(bento.tag),
        "model": str(model.tag),
        "labels": dict(bento.info.labels),
        "bento_path": os.path.relpath(bento.path),
        "bentoml_home": os.path.relpath(os.environ.get("BENTOML_HOME", BENTOML_HOME)),
    }


def model_source() -> tuple[Path, str]:
    """The approved model, or the candidate when no model was ever approved (labelled as such)."""
    from german_credit_scoring import paths

    if paths.APPROVED_MODEL.is_file():
        return paths.APPROVED_DIR, "approved"
    if paths.CANDIDATE_MODEL.is_file():
        log.warning(
            "no approved model in %s: packaging the candidate, labelled approval=candidate",
            paths.APPROVED_DIR,
        )
        return paths.CANDIDATE_DIR, "candidate"
    raise ProjectError(
        f"no model to package: neither {paths.APPROVED_MODEL} nor {paths.CANDIDATE_MODEL} exists"
    )


def observed_labels(settings) -> list[str]:
    """The target's labels in the training split, to name the negative class when model.json does not."""
    from german_credit_scoring import paths

    if not paths.TRAIN.is_file():
        return []
    import pandas as pd

    frame = pd.read_parquet(paths.TRAIN, columns=[settings.data.target])
    return sorted({str(v) for v in frame[settings.data.target].dropna().unique()})


def package(settings, bentofile: Path | str = BENTOFILE) -> dict[str, Any]:
    """Import the model into the store and build the bento that serves exactly that model."""
    source, approval = model_source()
    model = import_model(source, settings.project.slug, settings.features, observed_labels(settings))
    os.environ[MODEL_TAG_ENV] = str(model.tag)  # the service references this model at class level
    labels = {**model.info.labels, "approval": approval}
    # the bento's version is the model's: the same approved model always gives the same bento tag
    bento = build_bento(bentofile, labels, version=tag_version(str(read_metadata(source)["version"])))
    return bento_record(bento, model)

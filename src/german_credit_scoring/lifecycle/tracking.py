"""MLflow tracking and registry: runs, the logged model, and aliases (``challenger``/``champion``).

The default store is an embedded SQLite file in the project (``mlflow.db``, git-ignored), so nothing has
to be started; ``MLFLOW_TRACKING_URI`` points at a real tracking server instead. ``import mlflow`` costs
seconds, so it happens only inside these functions.
"""

from __future__ import annotations

import argparse
import logging
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from german_credit_scoring import runs
from german_credit_scoring.errors import ProjectError

log = logging.getLogger(__name__)

DEFAULT_STORE = "sqlite:///mlflow.db"
# What loading the logged model needs: the pipeline is stored in skops format (safe to load).
SERVING_PACKAGES = ("scikit-learn", "pandas", "numpy", "scipy", "joblib", "skops")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE


def pip_requirements() -> list[str]:
    """Exact versions of what unpickling the pipeline needs (MLflow's inference of them is slow)."""
    pins = []
    for name in SERVING_PACKAGES:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:  # pragma: no cover - all are dependencies of the project
            continue
    return pins


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return out
    return {prefix: value}


def log_training_run(
    *,
    experiment: str,
    pipeline,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    input_example,
    artifacts: list[Path] = (),
) -> dict[str, str]:
    """One MLflow run: params, metrics, tags, the model with signature, example and pinned requirements."""
    quiet_mlflow()
    import mlflow
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=tags.get("model_version")) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in flatten("", params).items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float)})
        mlflow.set_tags(tags)
        signature = infer_signature(input_example, pipeline.predict_proba(input_example)[:, 1])
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements(),
            serialization_format="skops",
            skops_trusted_types=own_types(pipeline),
        )
        for path in artifacts:
            if Path(path).is_file():
                mlflow.log_artifact(str(path))
        return {
            "tracking_uri": redact(tracking_uri()),
            "experiment": experiment,
            "experiment_id": run.info.experiment_id,
            "run_id": run.info.run_id,
            "model_uri": info.model_uri,
            "run_url": run_url(tracking_uri(), run.info.experiment_id, run.info.run_id),
        }


def run_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    """A link a reviewer can open, when the store is a tracking server (an embedded store has none)."""
    if not uri.startswith(("http://", "https://")):
        return None
    scheme, rest = uri.split("://", 1)
    host = rest.split("@", 1)[-1]  # never a credential in a link
    return f"{scheme}://{host.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def quiet_mlflow() -> None:
    """No telemetry calls from CI or a laptop: the project decides what leaves the machine."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # The logged model's environment is the pinned list above, not the whole project's uv.lock.
    os.environ.setdefault("MLFLOW_UV_AUTO_DETECT", "false")


def own_types(pipeline) -> list[str]:
    """The types skops must be told to trust: exactly those of the pipeline this run just built."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))


def redact(uri: str) -> str:
    """Never write credentials embedded in a tracking URI into metadata or reports."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


def register(model_uri: str, name: str, aliases: list[str], tags: dict[str, str]) -> str:
    """Register a logged model version and point the aliases at it; returns the registry version."""
    quiet_mlflow()
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri())
    client = MlflowClient()
    registered = existing_version(client, name, model_uri)
    if registered is None:
        registered = mlflow.register_model(model_uri, name, tags=tags)
    else:  # idempotent: promoting (--alias champion) or re-running moves aliases, no duplicate version
        log.info("%s version %s already holds %s", name, registered.version, model_uri)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, registered.version)
    return str(registered.version)


def existing_version(client, name: str, model_uri: str):
    """The registry version already made from this logged model, if any."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for candidate in versions:
        if model_uri in {candidate.source, f"models:/{getattr(candidate, 'model_id', None)}"}:
            return candidate
    return None


def logged_model_uri(model_version: str, experiment: str) -> str:
    """The MLflow model logged when this model version was trained.

    From this checkout's run record (``runs/train.json``) when it trained the model, else found in the
    tracking store by the run's ``model_version`` tag (main registers what a pull request trained).
    """
    from german_credit_scoring import runs

    record = runs.read("train")
    if record and record.facts.get("model_version") == model_version:
        uri = (record.facts.get("mlflow") or {}).get("model_uri")
        if uri:
            return str(uri)
    quiet_mlflow()
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    found = mlflow.search_logged_models(
        experiment_ids=[
            e.experiment_id for e in mlflow.search_experiments(filter_string=f"name = '{experiment}'")
        ]
        or ["0"],
        output_format="list",
    )
    for logged in found:
        run_id = getattr(logged, "source_run_id", None)
        if run_id and mlflow.get_run(run_id).data.tags.get("model_version") == model_version:
            return f"models:/{logged.model_id}"
    raise ProjectError(
        f"no MLflow model logged for model version {model_version} in experiment {experiment!r} "
        f"at {redact(tracking_uri())} (was it trained against this tracking store?)"
    )


def register_cli(argv: list[str]) -> int:
    """`mlops register`: the approved model into the registry under the project slug, alias challenger."""
    from german_credit_scoring import io, paths
    from german_credit_scoring.settings import load_settings

    parser = argparse.ArgumentParser(prog="mlops register", description=register_cli.__doc__)
    parser.add_argument("--model-dir", type=Path, default=paths.APPROVED_DIR)
    parser.add_argument("--alias", action="append", help="alias to set (default: challenger); repeatable")
    parser.add_argument("--name", help="registered model name (default: project slug)")
    parser.add_argument(
        "--require-server", action="store_true", help="fail when MLFLOW_TRACKING_URI is not set"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        if args.require_server:
            print("mlops register: MLFLOW_TRACKING_URI is not set; no tracking server to register in")
            return 2
        print(
            f"mlops register: no tracking server configured; registering in the local store {DEFAULT_STORE}"
        )
    meta_path = args.model_dir / "model.json"
    try:
        if not meta_path.is_file():
            raise ProjectError(f"{meta_path}: no model metadata (run the pipeline through the gate first)")
        meta = io.read_json(meta_path)
        settings = load_settings()
        model_uri = logged_model_uri(str(meta["version"]), settings.project.slug)
        name = args.name or settings.project.slug
        aliases = args.alias or ["challenger"]
        commit = os.environ.get("GITHUB_SHA") or (runs.git_state()[0] or "unknown")
        registry_version = register(
            model_uri, name, aliases, {"model_version": str(meta["version"]), "git_commit": commit}
        )
    except ProjectError as error:
        print(f"mlops register: {error}")
        return 2
    except Exception as error:  # MLflow's own errors: say which model and store
        print(f"mlops register: registering in {redact(tracking_uri())} failed: {error}")
        return 1
    print(f"registered {name} version {registry_version} (model {meta['version']}) with aliases {aliases}")
    return 0

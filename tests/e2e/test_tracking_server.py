"""With MLFLOW_TRACKING_URI set, the train stage logs to a real MLflow tracking server (over HTTP on
loopback) instead of the embedded SQLite file, and `mlops register` sets the challenger alias there."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from german_credit_scoring import cli
from tests.e2e.helpers import dvc, project_env, run

CLI = cli.__name__  # the package's command line, by module name (`python -m`)

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = open(work / "server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{work / 'server.db'}",
            "--artifacts-destination", str(work / "artifacts"),
        ],
        stdout=log, stderr=subprocess.STDOUT, cwd=work,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(work / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_pipeline_logs_to_the_server_and_registers_the_challenger(
    server, tmp_path, settings, clone_reproduced
):
    from mlflow import MlflowClient

    # the session's shared run (an approved model under a policy every model meets), its embedded
    # store removed: training runs again against the server, and the stages after it with it
    project = clone_reproduced(tmp_path)
    (project / "mlflow.db").unlink()
    env = project_env(project, MLFLOW_TRACKING_URI=server)
    result = run(project, sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "train", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    result = run(project, sys.executable, "-m", "dvc", "repro", "gate", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not (project / "mlflow.db").exists()  # nothing went to the embedded store

    meta = json.loads((project / "models/approved/model.json").read_text())
    run_record = json.loads((project / "runs/train.json").read_text())["facts"]["mlflow"]
    assert run_record["tracking_uri"] == server
    client = MlflowClient(tracking_uri=server)
    logged = client.get_run(run_record["run_id"])
    assert logged.data.tags["model_version"] == meta["version"]
    assert "train_roc_auc" in logged.data.metrics

    registered = run(project, sys.executable, "-m", CLI, "register", env=env)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    challenger = client.get_model_version_by_alias(settings.project.slug, "challenger")
    assert challenger.tags["model_version"] == meta["version"]

    # main registers what the pull request trained: without this checkout's run record, the logged
    # model is found in the tracking store by its model_version tag
    (project / "runs/train.json").unlink()
    again = run(project, sys.executable, "-m", CLI, "register", "--alias", "champion", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    champion = client.get_model_version_by_alias(settings.project.slug, "champion")
    assert champion.version == challenger.version


def test_without_a_server_runs_go_to_the_embedded_store(tmp_path, clone_reproduced):
    project = clone_reproduced(tmp_path)
    (project / "mlflow.db").unlink()
    result = dvc(project, "repro", "--force", "--single-item", "train")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (project / "mlflow.db").is_file()

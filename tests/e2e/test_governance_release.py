"""A real pipeline run through `package`: its model card, lineage manifest, signatures and the stored
model the service verifies, and what a changed byte does to each."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from german_credit_scoring.governance import lineage
from tests.e2e.helpers import project_env, run
from tests.unit.test_lineage import key_pair

pytestmark = pytest.mark.e2e


def mlops(project: Path, *args: str):
    return run(project, sys.executable, "-m", "german_credit_scoring.cli", *args, env=project_env(project))


@pytest.fixture(scope="module")
def released(tmp_path_factory, clone_reproduced):
    """The session's shared run through `package` (see conftest.py), with its lineage and signatures."""
    project = clone_reproduced(tmp_path_factory.mktemp("release"))
    made = mlops(project, "lineage")
    assert made.returncode == 0, made.stdout + made.stderr
    private, public = key_pair(project)
    signed = mlops(project, "sign", "--private-key", str(private))
    assert signed.returncode == 0, signed.stdout + signed.stderr
    return project, public


def test_model_card_is_rendered_from_the_runs_outputs(released, settings):
    project, _ = released
    card = (project / "reports/model_card.md").read_text()
    meta = json.loads((project / "models/approved/model.json").read_text())
    ingest = json.loads((project / "reports/ingest.json").read_text())
    evaluation = json.loads((project / "metrics/evaluate.json").read_text())
    assert f"model `{meta['version']}`" in card and f"Risk tier **{settings.project.risk_tier}**" in card
    assert f"{ingest['rows']:,} (train {ingest['train_rows']:,}" in card
    assert f"| roc_auc | {evaluation['overall']['roc_auc']:.4f} |" in card
    for attribute in settings.data.protected_names:
        assert f"| `{attribute}` |" in card
    assert all(digest in card for digest in meta["data_hashes"].values())
    gate_md = (project / "reports/gate.md").read_text()
    assert "<details><summary>Model card</summary>" in gate_md and meta["version"] in gate_md


def test_manifest_pins_the_run(released):
    project, public = released
    manifest = json.loads((project / "models/lineage.json").read_text())
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    train_deps = {d["path"]: d["md5"] for d in lock["stages"]["train"]["deps"]}
    assert manifest["dvc_lock"]["train"] == {
        **train_deps,
        **{o["path"]: o["md5"] for o in lock["stages"]["train"]["outs"]},
    }
    assert manifest["model_digest"] == lineage.sha256_file(project / "models/approved/model.joblib")
    assert manifest["params"] == yaml.safe_load((project / "params.yaml").read_text())
    assert manifest["bento"] == json.loads((project / "models/bento.json").read_text())["bento"]
    record = json.loads((project / "runs/train.json").read_text())
    assert manifest["mlflow_run_id"] == record["facts"]["mlflow"]["run_id"]
    assert mlops(project, "verify", "--public-key", str(public)).returncode == 0


def test_a_changed_byte_in_the_model_or_the_manifest_is_caught(released, tmp_path):
    project, public = released
    model = project / "models/approved/model.joblib"
    original = model.read_bytes()
    try:
        model.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
        failed = mlops(project, "verify", "--public-key", str(public))
        assert (
            failed.returncode == 1
            and "models/approved/model.joblib: bytes changed (same size" in failed.stderr
        )
    finally:
        model.write_bytes(original)
    manifest = project / "models/lineage.json"
    text = manifest.read_text()
    try:
        manifest.write_text(text.replace('"schema": 1', '"schema": 2'))
        failed = mlops(project, "verify", "--public-key", str(public))
        assert failed.returncode == 1 and "lineage.json.sig does not verify" in failed.stderr
    finally:
        manifest.write_text(text)


def test_the_stored_model_verifies_and_is_refused_once_changed(released):
    project, _ = released
    record = json.loads((project / "models/bento.json").read_text())
    name, version = record["model"].split(":")
    stored = project / ".bentoml/models" / name / version
    assert lineage.require_verified(stored, environ={}) == []
    model = stored / "model.joblib"
    original = model.read_bytes()
    try:
        model.write_bytes(original + b"\0")
        with pytest.raises(lineage.VerificationError, match="model.joblib: bytes changed"):
            lineage.require_verified(stored, environ={})
    finally:
        model.write_bytes(original)
    bento = project / record["bento_path"]
    assert (bento / "src/reports/model_card.md").read_text() == (
        project / "reports/model_card.md"
    ).read_text()


def _serve(project: Path, tag: str, log: Path, **extra: str):
    import os
    import signal
    import socket
    import subprocess
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = project_env(project, SCORING_MODEL_TAG=tag, PREDICTION_LOG=str(log.parent / "predictions"), **extra)
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "bentoml"), "serve", "serving.service:ScoringService",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    ready = False
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready or "refusing to serve" in log.read_text():
                break
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    return ready, log.read_text()


def test_bentoml_serve_refuses_a_changed_model_unless_explicitly_allowed(released, tmp_path):
    project, _ = released
    record = json.loads((project / "models/bento.json").read_text())
    name, version = record["model"].split(":")
    model = project / ".bentoml/models" / name / version / "model.json"
    original = model.read_bytes()
    try:
        model.write_bytes(original.replace(b"{", b"{ ", 1))  # one byte more, same meaning
        ready, log = _serve(project, record["model"], tmp_path / "refused.log")
        assert not ready and "refusing to serve a model that does not verify" in log and "model.json" in log
        ready, log = _serve(
            project, record["model"], tmp_path / "allowed.log", SCORING_ALLOW_UNVERIFIED="true"
        )
        assert ready and "serving a model that does not verify" in log
    finally:
        model.write_bytes(original)

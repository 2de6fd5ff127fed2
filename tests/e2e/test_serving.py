"""The real service over HTTP: `bentoml serve` on loopback with a model trained here, then packaging."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import joblib
import pytest

from german_credit_scoring import data
from german_credit_scoring.contract import load_features
from german_credit_scoring.lifecycle import transform
from german_credit_scoring.lifecycle.ingest import ingest
from german_credit_scoring.monitoring.prediction_log import read_prediction_log

from .helpers import ROOT, VENV_BIN, copy_project

pytestmark = pytest.mark.e2e


def train_model(settings, features, out: Path) -> tuple[object, object]:
    """A model directory like the gate's models/approved; returns (pipeline, test split)."""
    split = ingest(settings, features)
    include = settings.data.use_protected_as_features
    frame = data.model_frame(split.train, features, include)
    labels = data.positive_indicator(split.train[settings.data.target], settings.data.positive_label)
    pipeline = transform.build_pipeline(
        features, settings.model.type, settings.model.hyperparameters, settings.model.seed, include
    ).fit(frame, labels)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, out / "model.joblib")
    meta = {
        "version": "e2e-1",
        "threshold": settings.decision_threshold,
        "positive_label": settings.data.positive_label,
        "target": settings.data.target,
        "features": list(frame.columns),
        "git_commit": "0" * 40,
        "data_hashes": {
            str(settings.data.path): hashlib.md5((ROOT / settings.data.path).read_bytes()).hexdigest()
        },
    }
    (out / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    return pipeline, split.test


def observed_labels(frame, settings) -> list[str]:
    """The target's values in the project's own data (the negative label is the one not scored)."""
    return sorted({str(v) for v in frame[settings.data.target].dropna().unique()})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def json_records(frame, columns) -> list[dict]:
    return json.loads(frame[columns].to_json(orient="records"))


@pytest.fixture(scope="module")
def served(tmp_path_factory, settings):
    features = load_features(ROOT / settings.features)
    work = tmp_path_factory.mktemp("serving")
    home, log_dir = work / "bentoml", work / "predictions"
    env = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "PREDICTION_LOG": str(log_dir),
    }
    pipeline, test = train_model(settings, features, work / "model")
    imported = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-c",
            "import json, sys; from german_credit_scoring.lifecycle.packaging import import_model; "
            "print(import_model(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])).tag)",
            str(work / "model"),
            settings.project.slug,
            str(ROOT / settings.features),
            json.dumps(observed_labels(test, settings)),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    env["SCORING_MODEL_TAG"] = imported.stdout.strip().splitlines()[-1]
    port = free_port()
    server_log = open(work / "server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            str(VENV_BIN / "bentoml"),
            "serve",
            # SERVING_E2E_SERVICE=serving.service:BatchingScoringService runs the suite on the option
            os.environ.get("SERVING_E2E_SERVICE", "serving.service:ScoringService"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"bentoml serve exited early:\n{(work / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"service not ready in 90 s:\n{(work / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=30) as client:
            yield {
                "client": client,
                "pipeline": pipeline,
                "test": test,
                "features": features,
                "log_dir": log_dir,
                "columns": features.names,
            }
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        server_log.close()


def _located(body) -> set[tuple]:
    """(record index or None, field) for every problem in BentoML's validation answer."""
    found = set()
    for item in body["detail"]:
        loc = item["loc"]
        index = next((p for p in loc if isinstance(p, int)), None)
        found.add((index, loc[-1]))
    return found


def test_built_in_probes_and_metrics(served):
    client = served["client"]
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "prediction_log_failures_total" in metrics.text


def test_training_and_serving_give_identical_probabilities(served, settings):
    # given test rows scored the evaluation way: the pipeline on data.model_frame
    test, features = served["test"], served["features"]
    rows = test.head(50)
    expected = served["pipeline"].predict_proba(
        data.model_frame(rows, features, settings.data.use_protected_as_features)
    )[:, 1]
    # when the same rows go through the running service, one by one and as a batch
    records = json_records(rows, served["columns"])
    batch = served["client"].post("/predict_batch", json={"records": records})
    assert batch.status_code == 200, batch.text
    from_batch = [p["probability"] for p in batch.json()["predictions"]]
    singles = [
        served["client"].post("/predict", json={"record": r}).json()["probability"] for r in records[:10]
    ]
    # then the probabilities are the same numbers
    assert from_batch == pytest.approx(list(expected), abs=1e-12, rel=0)
    assert singles == pytest.approx(list(expected[:10]), abs=1e-12, rel=0)


def test_single_prediction_answer(served, settings):
    record = json_records(served["test"].head(1), served["columns"])[0]
    response = served["client"].post(
        "/predict", json={"record": record}, headers={"X-Request-ID": "trace-42"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["request_id"] == "trace-42" == response.headers["x-request-id"]
    assert body["model_version"] == "e2e-1"
    assert 0 <= body["probability"] <= 1
    positive = str(settings.data.positive_label)
    negative = next(label for label in observed_labels(served["test"], settings) if label != positive)
    expected = positive if body["probability"] >= settings.decision_threshold else negative
    assert body["decision"] == expected


def test_answers_carry_reasons_towards_the_decision(served, settings):
    from german_credit_scoring.explain.contributions import contributions
    from german_credit_scoring.explain.reasons import phrase

    # given test rows and their exact contributions computed in-process from the same pipeline
    features, rows = served["features"], served["test"].head(8)
    frame = data.model_frame(rows, features, settings.data.use_protected_as_features)
    _, expected = contributions(served["pipeline"], frame)
    names = list(frame.columns)
    records = json_records(rows, served["columns"])
    # when they are scored as a batch and one by one
    batch = served["client"].post("/predict_batch", json={"records": records}).json()["predictions"]
    singles = [served["client"].post("/predict", json={"record": r}).json() for r in records[:3]]
    # then every answer names its top reasons: towards its decision, never a sensitive feature
    sensitive = {f.name for f in features.features if f.sensitive}
    positive = str(settings.data.positive_label)
    for row, answer in enumerate(batch):
        assert answer["reasons_unavailable"] is None
        sign = 1 if answer["decision"] == positive else -1
        # the reasons are the k inputs pushing hardest towards the decision, and only those: a record
        # every input of which pushes against its decision (decided by the base rate) has none
        towards = sorted(
            (-sign * expected[row, j], name)
            for j, name in enumerate(names)
            if name not in sensitive and sign * expected[row, j] > 0
        )
        top = [name for _, name in towards[: settings.serving.reasons_top_k]]
        assert [r["feature"] for r in answer["reasons"]] == top
        for reason in answer["reasons"]:
            assert reason["feature"] not in sensitive
            assert sign * reason["contribution"] > 0
            assert reason["contribution"] == pytest.approx(
                expected[row, names.index(reason["feature"])], abs=1e-9
            )
            assert reason["value"] == records[row][reason["feature"]]
            assert reason["phrase"] == phrase(features.get(reason["feature"]))
    for single, answer in zip(singles, batch, strict=False):
        assert [r["feature"] for r in single["reasons"]] == [r["feature"] for r in answer["reasons"]]
        assert [r["contribution"] for r in single["reasons"]] == pytest.approx(
            [r["contribution"] for r in answer["reasons"]], abs=1e-12
        )


def test_bad_single_record_names_every_field(served, settings):
    features = served["features"]
    record = json_records(served["test"].head(1), served["columns"])[0]
    numeric = next(f for f in features.model_inputs() if f.is_numeric and f.max is not None)
    # a category out of its allowed values, when the contract has categories (numeric-only data has none)
    category = next((f for f in features.model_inputs() if f.allowed_values), None)
    named = {numeric.name} | ({category.name} if category else set())
    missing = next(  # a required input (a nullable one may rightly be left out)
        f for f in features.model_inputs() if f.name not in named and not f.nullable
    )
    bad = {**record, numeric.name: numeric.max + 1000, "not_a_feature": 1}
    if category is not None:
        bad[category.name] = "no-such-value"
    del bad[missing.name]
    response = served["client"].post("/predict", json={"record": bad})
    assert response.status_code == 400
    assert _located(response.json()) == {(None, name) for name in (*named, missing.name, "not_a_feature")}
    wrong_type = served["client"].post("/predict", json={"record": {**record, numeric.name: "ten"}})
    assert wrong_type.status_code == 400 and _located(wrong_type.json()) == {(None, numeric.name)}


def test_bad_batches_are_refused_with_record_indexes(served, settings):
    client, features = served["client"], served["features"]
    records = json_records(served["test"].head(4), served["columns"])
    # record 2 breaks the contract: a category out of its values, or a numeric input as text
    category = next((f for f in features.model_inputs() if f.allowed_values), None)
    broken = category or next(f for f in features.model_inputs() if f.is_numeric)
    records[2] = {**records[2], broken.name: "no-such-value"}
    response = client.post("/predict_batch", json={"records": records})
    assert response.status_code == 400
    assert _located(response.json()) == {(2, broken.name)}
    assert client.post("/predict_batch", json={"records": []}).status_code == 400
    too_many = [records[0]] * (settings.serving.max_batch_size + 1)
    oversized = client.post("/predict_batch", json={"records": too_many})
    assert oversized.status_code == 400 and "at most" in oversized.text


def test_a_bad_request_does_not_poison_concurrent_good_ones(served):
    import concurrent.futures

    client = served["client"]
    good = json_records(served["test"].head(20), served["columns"])
    bad = [*good[:5], {"nonsense": True}]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [
            pool.submit(client.post, "/predict_batch", json={"records": good if i % 2 else bad})
            for i in range(16)
        ]
        statuses = [f.result().status_code for f in futures]
    assert statuses == [400 if i % 2 == 0 else 200 for i in range(16)]
    assert client.get("/readyz").status_code == 200


def test_every_answer_is_in_the_prediction_log(served):
    client = served["client"]
    records = json_records(served["test"].head(3), served["columns"])
    answer = client.post(
        "/predict_batch", json={"records": records}, headers={"X-Request-ID": "log-check"}
    ).json()
    logged = read_prediction_log(served["log_dir"])
    mine = logged[logged["request_id"] == "log-check"]
    assert len(mine) == 3
    assert list(mine["probability"]) == [p["probability"] for p in answer["predictions"]]
    assert set(mine["model_version"]) == {"e2e-1"}
    first_line = json.loads(next(served["log_dir"].rglob("*.jsonl")).read_text().splitlines()[0])
    assert set(first_line) == {"request_id", "timestamp", "model_version", "inputs", "outputs"}
    # each logged record carries the reasons it was answered with
    lines = [
        json.loads(line)
        for path in served["log_dir"].rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    logged_reasons = [line["outputs"]["reasons"] for line in lines if line["request_id"] == "log-check"]
    assert logged_reasons == [p["reasons"] for p in answer["predictions"]]


def test_counterfactual_hints_turn_the_decision_over_http(served, settings):
    from german_credit_scoring.explain.counterfactual import changeable

    if settings.serving.hints_top_k == 0:
        pytest.skip("serving.hints_top_k is 0: hints are off in this project")
    client, features = served["client"], served["features"]
    # given the 12 test records nearest the threshold (both decisions): the ones one change can turn
    test = served["test"]
    frame = data.model_frame(test, features, settings.data.use_protected_as_features)
    distance = abs(served["pipeline"].predict_proba(frame)[:, 1] - settings.decision_threshold)
    records = json_records(test.iloc[sorted(distance.argsort(kind="stable")[:12])], served["columns"])
    # when each record asks what would turn its decision
    answers = [
        client.post("/counterfactual", json={"record": r}, headers={"X-Request-ID": f"what-if-{i}"})
        for i, r in enumerate(records)
    ]
    assert [a.status_code for a in answers] == [200] * len(records)
    bodies = [a.json() for a in answers]
    positive = str(settings.data.positive_label)
    wanted = {"positive": lambda d: d == positive, "negative": lambda d: d != positive, "any": lambda d: True}
    hinted = 0
    for record, body in zip(records, bodies, strict=True):
        # then its decision is /predict's, and a record of a decision hints are not for says so
        predicted = client.post("/predict", json={"record": record}).json()
        assert (body["decision"], body["probability"]) == (predicted["decision"], predicted["probability"])
        if not wanted[settings.serving.hints_for](body["decision"]):
            assert body["hints"] == [] and "serving.hints_for" in body["hints_unavailable"]
            continue
        assert (body["hints_unavailable"] is None) == bool(body["hints"])
        assert len(body["hints"]) <= settings.serving.hints_top_k
        for hint in body["hints"]:
            assert changeable(features.get(hint["feature"])) is None
            assert hint["value"] == record[hint["feature"]]
            # the changed record passes the service's contract and gets the hint's answer, another decision
            changed = client.post("/predict", json={"record": {**record, hint["feature"]: hint["suggested"]}})
            assert changed.status_code == 200, changed.text
            answer = changed.json()
            assert (answer["decision"], answer["probability"]) == (hint["decision"], hint["probability"])
            assert answer["decision"] != body["decision"]
            hinted += 1
    # a what-if is not a decision: nothing of it reaches the prediction log
    logged = read_prediction_log(served["log_dir"])
    assert not logged["request_id"].astype(str).str.startswith("what-if-").any()
    if not any(wanted[settings.serving.hints_for](b["decision"]) for b in bodies):
        pytest.skip("none of the 12 records nearest the threshold has a decision hints are given for")
    assert hinted, "no record with a hinted decision got a hint"


def test_drift_check_reads_the_service_log_as_current_data(served, settings, features):
    from german_credit_scoring.monitoring.drift import PROBABILITY, read_current

    # given the log the running service wrote, when the drift checker reads it as its current data
    current, files = read_current(served["log_dir"], settings.data.target)
    # then every scored row is there with its model inputs and the served probability
    assert files and len(current) >= 3
    assert {f.name for f in features.model_inputs()} <= set(current.columns)
    assert current[PROBABILITY].between(0, 1).all()


def project_with_approved_model(tmp_path, settings) -> tuple[Path, dict[str, str]]:
    """A project copy whose models/approved holds a freshly trained model, and a clean environment."""
    project = copy_project(tmp_path / "project", exclude_prefixes=(".bentoml", "models/", "logs/"))
    features = load_features(project / settings.features)
    cwd = os.getcwd()
    try:
        os.chdir(project)
        train_model(settings, features, project / "models" / "approved")
    finally:
        os.chdir(cwd)
    env = {k: v for k, v in os.environ.items() if k not in {"BENTOML_HOME", "SCORING_MODEL_TAG"}}
    return project, env


def test_package_stage_builds_a_labelled_bento_offline(tmp_path, settings):
    project, env = project_with_approved_model(tmp_path, settings)
    result = subprocess.run(
        [str(VENV_BIN / "python"), "pipelines/package.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((project / "models" / "bento.json").read_text())
    assert record["model"] == f"{settings.project.slug}:e2e-1"
    assert record["labels"]["model_version"] == "e2e-1"
    assert record["bento"] == f"{settings.project.slug}:e2e-1"  # the bento's version is the model's
    assert "git_commit" not in record["labels"]  # the image, not the DVC output, carries the commit
    assert settings.data.path.name in record["labels"]["data_hashes"]
    bento_dir = project / record["bento_path"]
    assert (bento_dir / "bento.yaml").is_file() and (bento_dir / "env" / "docker" / "Dockerfile").is_file()
    assert (project / ".bentoml").is_dir()  # the store stays inside the project


@pytest.mark.slow
def test_container_image_builds_with_podman(tmp_path, settings):
    if shutil.which("podman") is None or shutil.which("debootstrap") is None:
        pytest.skip("podman and debootstrap are not installed (apt-get install -y podman debootstrap)")
    project, env = project_with_approved_model(tmp_path, settings)
    subprocess.run([str(VENV_BIN / "python"), "pipelines/package.py"], cwd=project, env=env, check=True)
    image = "localhost/scoring-test:pytest"
    env.update(PYTHON=str(VENV_BIN / "python"), IMAGE=image, WORK=str(tmp_path / "work"))
    result = subprocess.run(
        ["bash", "serving/build_image.sh"], cwd=project, env=env, capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    inspect = subprocess.run(["podman", "image", "exists", image])
    assert inspect.returncode == 0
    subprocess.run(["podman", "rmi", "-f", image], capture_output=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_model_without_an_exact_explainer_is_served_with_decisions(tmp_path, settings, features):
    """Bad input for explanations: every record still gets its decision and the reason it has no reasons."""
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    # given an approved-model directory whose estimator has no exact explainer
    split = ingest(settings, features)
    include = settings.data.use_protected_as_features
    frame = data.model_frame(split.train, features, include)
    labels = data.positive_indicator(split.train[settings.data.target], settings.data.positive_label)
    pipeline = Pipeline(
        [
            ("transform", transform.build_transformer(features, include)),
            ("model", DecisionTreeClassifier(max_depth=4, random_state=0)),
        ]
    ).fit(frame, labels)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    joblib.dump(pipeline, model_dir / "model.joblib")
    meta = {
        "version": "e2e-tree",
        "threshold": settings.decision_threshold,
        "positive_label": settings.data.positive_label,
        "target": settings.data.target,
        "features": list(frame.columns),
        "classes": observed_labels(split.test, settings),
    }
    (model_dir / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    env = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "PREDICTION_LOG": str(tmp_path / "predictions"),
    }
    code = "import sys; from german_credit_scoring.lifecycle.packaging import import_model; "
    code += "print(import_model(sys.argv[1], sys.argv[2], sys.argv[3]).tag)"
    args = [
        str(VENV_BIN / "python"),
        "-c",
        code,
        str(model_dir),
        settings.project.slug,
        str(ROOT / settings.features),
    ]
    imported = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    env["SCORING_MODEL_TAG"] = imported.stdout.strip().splitlines()[-1]
    port = free_port()
    with open(tmp_path / "server.log", "w") as server_log:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "bentoml"),
                "serve",
                "serving.service:ScoringService",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(0.3)
            records = json_records(split.test.head(5), features.names)
            # when the records are scored, one and as a batch
            single = httpx.post(f"{base}/predict", json={"record": records[0]}, timeout=30)
            batch = httpx.post(f"{base}/predict_batch", json={"records": records}, timeout=30)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    # then each answer is a 200 with the model's decision, no reasons and why
    assert single.status_code == 200 and batch.status_code == 200, single.text + batch.text
    expected = pipeline.predict_proba(data.model_frame(split.test.head(5), features, include))[:, 1]
    answers = batch.json()["predictions"]
    assert [a["probability"] for a in answers] == pytest.approx(list(expected), abs=1e-12)
    for answer in [single.json(), *answers]:
        assert answer["reasons"] == []
        assert "DecisionTreeClassifier" in answer["reasons_unavailable"]

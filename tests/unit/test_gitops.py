"""The hand-over's pure parts: DVC-compatible hashes, the reproducibility verdict, take-lock, the release."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from german_credit_scoring.gitops import handover, lock, takelock
from tests.unit.test_github import OWNER_REPO


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_hashes_are_the_ones_dvc_writes(tmp_path):
    """DVC itself is the oracle: `dvc add` a file and a directory and compare with its .dvc files."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    write(tmp_path / "model" / "model.joblib", b"\x00\x01weights" * 100)
    write(tmp_path / "model" / "model.json", '{"version": "1"}\n')
    write(tmp_path / "model" / "sub" / "x.txt", "nested\n")
    write(tmp_path / "data.csv", "a,b\n1,2\n")
    for target in ("model", "data.csv"):
        subprocess.run([sys.executable, "-m", "dvc", "add", "-q", target], cwd=tmp_path, check=True)
    for target in ("model", "data.csv"):
        recorded = yaml.safe_load((tmp_path / f"{target}.dvc").read_text())["outs"][0]["md5"]
        assert lock.dvc_md5(tmp_path / target) == recorded


LOCK = {
    "schema": "2.0",
    "stages": {
        "train": {
            "cmd": "python pipelines/train.py",
            "deps": [{"path": "data/features/train.parquet", "md5": "aaa"}],
            "params": {"params.yaml": {"model": {"type": "logistic_regression"}}},
            "outs": [
                {"path": "models/candidate", "md5": "bbb.dir"},
                {"path": "metrics/train.json", "md5": "ccc"},
            ],
        },
        "gate": {
            "cmd": "python pipelines/gate.py",
            "deps": [{"path": "models/candidate", "md5": "bbb.dir"}],
            "outs": [{"path": "models/approved", "md5": "ddd.dir"}],
        },
    },
}


def changed(edits: dict) -> dict:
    data = json.loads(json.dumps(LOCK["stages"]))
    for (stage, key), value in edits.items():
        data[stage][key] = value
    return data


def test_identical_locks_pass():
    result = lock.compare(LOCK["stages"], LOCK["stages"])
    assert result.passed and result.stages == ["train", "gate"]
    assert "is what CI reproduced" in result.message()


def test_differences_name_the_stage_and_what_differs_and_say_what_to_run():
    reproduced = changed(
        {
            ("train", "outs"): [
                {"path": "models/candidate", "md5": "bbb.dir"},
                {"path": "metrics/train.json", "md5": "xxx"},
            ],
            ("gate", "params"): {"params.yaml": {"gate": {"max_latency_p95_ms": 80}}},
        }
    )
    result = lock.compare(reproduced, LOCK["stages"])
    assert not result.passed
    by_stage = {d.stage: d.what for d in result.differences}
    assert by_stage == {"train": ["out metrics/train.json"], "gate": ["params params.yaml"]}
    message = result.message()
    assert (
        "train: out metrics/train.json" in message and "mlops take-lock" in message and "dvc repro" in message
    )


def test_a_stage_missing_from_the_committed_lock_is_a_difference():
    result = lock.compare(LOCK["stages"], {"train": LOCK["stages"]["train"]})
    assert [(d.stage, d.what) for d in result.differences] == [
        ("gate", ["missing in the committed dvc.lock"])
    ]


def test_lock_check_cli_against_the_committed_lock(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    write(tmp_path / "dvc.lock", yaml.safe_dump(LOCK))
    subprocess.run(["git", "add", "dvc.lock"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "lock"], check=True)
    assert lock.check_cli(["--output", "verdict.json"]) == 0
    assert json.loads((tmp_path / "verdict.json").read_text())["differences"] == []
    ci = json.loads(json.dumps(LOCK))
    ci["stages"]["gate"]["outs"][0]["md5"] = "eee.dir"
    write(tmp_path / "dvc.lock", yaml.safe_dump(ci))
    assert lock.check_cli([]) == 1
    assert "gate: out models/approved" in capsys.readouterr().out
    write(tmp_path / "dvc.lock", "stages: [not, a, mapping]\n")
    assert lock.check_cli([]) == 2


def test_take_lock_round_trip_collects_what_ci_reproduced_and_applies_it(tmp_path, monkeypatch):
    ci = tmp_path / "ci"
    monkeypatch.chdir(write(ci / "metrics" / "train.json", '{"roc_auc": 0.81}\n').parents[1])
    subprocess.run(["git", "init", "-q"], check=True)
    stages = json.loads(json.dumps(LOCK))
    stages["stages"]["train"]["outs"][1]["md5"] = lock.file_md5(Path("metrics/train.json"))
    write(Path("dvc.lock"), yaml.safe_dump(stages))
    subprocess.run(["git", "add", "dvc.lock", "metrics/train.json"], check=True)
    assert takelock.collect(tmp_path / "reproduced") == ["dvc.lock", "metrics/train.json"]

    contributor = tmp_path / "contributor"
    write(contributor / "metrics" / "train.json", '{"roc_auc": 0.8100000000000001}\n')  # last-bit difference
    written = takelock.apply(tmp_path / "reproduced", contributor)
    assert written == ["dvc.lock", "metrics/train.json"]
    assert (contributor / "metrics" / "train.json").read_text() == '{"roc_auc": 0.81}\n'
    assert (contributor / "dvc.lock").read_text() == Path("dvc.lock").read_text()

    # a file that does not match the lock it came with is refused, and nothing is written
    write(tmp_path / "reproduced" / "metrics" / "train.json", "tampered\n")
    (contributor / "dvc.lock").unlink()
    with pytest.raises(takelock.TakeLockError, match="does not match"):
        takelock.apply(tmp_path / "reproduced", contributor)
    assert not (contributor / "dvc.lock").exists()


def make_release(tmp_path: Path) -> tuple[Path, Path]:
    """A release folder and the dvc.lock that pins its model, as `pack` writes them."""
    model = b"reviewed model bytes"
    meta = '{"version": "abc123"}\n'
    approved = tmp_path / "approved"
    write(approved / "model.joblib", model)
    write(approved / "model.json", meta)
    release_dir = tmp_path / "release"
    stored = release_dir / handover.STORE / "models" / "credit" / "abc123"
    write(stored / "model.joblib", model)
    write(stored / "model.json", meta)
    write(release_dir / "model.json", meta)
    outs = {"models/approved": lock.dvc_md5(approved), "metrics/evaluate.json": "m1"}
    record = handover.Release(
        project="credit",
        bento="credit:abc123",
        model="credit:abc123",
        model_version="abc123",
        model_sha256=handover.sha256(stored / "model.joblib"),
        approved_md5=outs["models/approved"],
        lock_sha256="f" * 64,
        lock_outs=outs,
        pull_request=7,
        head_sha="h" * 40,
        run_id="101",
    )
    write(release_dir / handover.RELEASE_FILE, record.model_dump_json())
    lock_file = write(
        tmp_path / "dvc.lock",
        yaml.safe_dump(
            {
                "stages": {
                    "gate": {"outs": [{"path": "models/approved", "md5": outs["models/approved"]}]},
                    "evaluate": {"outs": [{"path": "metrics/evaluate.json", "md5": "m1"}]},
                }
            }
        ),
    )
    return release_dir, lock_file


def test_verify_accepts_the_release_the_lock_pins(tmp_path):
    release_dir, lock_file = make_release(tmp_path)
    assert handover.verify(release_dir, lock_file).model_version == "abc123"


def test_verify_catches_a_changed_byte_in_the_model(tmp_path):
    release_dir, lock_file = make_release(tmp_path)
    model = release_dir / handover.STORE / "models" / "credit" / "abc123" / "model.joblib"
    model.write_bytes(model.read_bytes()[:-1] + b"X")
    with pytest.raises(handover.HandoverError, match="hashes to"):
        handover.verify(release_dir, lock_file)


def test_verify_refuses_a_lock_that_pins_other_outputs_than_the_reviewed_run(tmp_path):
    release_dir, lock_file = make_release(tmp_path)
    data = yaml.safe_load(lock_file.read_text())
    data["stages"]["evaluate"]["outs"][0]["md5"] = "m2"
    lock_file.write_text(yaml.safe_dump(data))
    with pytest.raises(handover.HandoverError, match="metrics/evaluate.json"):
        handover.verify(release_dir, lock_file)


def test_labels_carry_the_oci_standard_and_the_lineage(tmp_path):
    release_dir, _ = make_release(tmp_path)
    labels = handover.oci_labels(handover.read(release_dir), "c" * 40, f"https://github.com/{OWNER_REPO}")
    assert labels["org.opencontainers.image.source"] == f"https://github.com/{OWNER_REPO}"
    assert labels["org.opencontainers.image.revision"] == "c" * 40
    assert labels["io.github.mlops.model.digest"].startswith("sha256:")
    assert labels["io.github.mlops.pull-request"] == "7"
    assert json.loads(labels["io.github.mlops.dvc-lock.outs"])["models/approved"].endswith(".dir")


def test_a_missing_release_is_a_clear_error(tmp_path):
    with pytest.raises(handover.HandoverError, match="no release record"):
        handover.verify(tmp_path, tmp_path / "dvc.lock")
    shutil.rmtree(tmp_path)


def test_production_model_comes_from_the_release_main_shipped(tmp_path):
    """The comparison's production model: what the newest successful main.yml run shipped."""
    from german_credit_scoring.gitops.github import GitHub
    from tests.act.harness import ActGitHub, serve

    release_dir, _ = make_release(tmp_path)
    store = tmp_path / "store"
    fake = ActGitHub(store)
    server = serve(fake)
    try:
        client = GitHub(repository=OWNER_REPO, token="t", api_url=fake.base_url)
        # nothing shipped yet: said, not failed
        reason = handover.production_model(client, tmp_path / "production")
        assert reason and "has shipped a release yet" in reason
        shutil.copytree(release_dir, store / "runs" / "202" / handover.SHIPPED)
        fake.add_run(202, "main.yml", "m" * 40)
        assert handover.production_model(client, tmp_path / "production") is None
    finally:
        server.shutdown()
    stored = release_dir / handover.STORE / "models" / "credit" / "abc123" / "model.joblib"
    assert (tmp_path / "production" / "model.joblib").read_bytes() == stored.read_bytes()
    assert (tmp_path / "production" / "model.json").is_file()


def test_fetch_finds_the_release_of_the_pull_request_merged_into_the_commit(tmp_path):
    """main's side of the hand-over against the stand-in API: commit -> merged PR -> its run -> release."""
    from german_credit_scoring.gitops.github import GitHub
    from tests.act.harness import ActGitHub, serve

    release_dir, lock_file = make_release(tmp_path)
    store = tmp_path / "store"
    shutil.copytree(release_dir, store / "runs" / "101" / handover.ARTIFACT)
    fake = ActGitHub(store)
    server = serve(fake)
    try:
        client = GitHub(repository=OWNER_REPO, token="t", api_url=fake.base_url)
        fake.merged["a" * 40] = {"number": 7, "merged_at": "x", "head": {"sha": "c" * 40}}
        # the pull request's checks have not passed (no successful run): main refuses to ship
        fake.add_run(101, "pr.yml", "c" * 40, conclusion="failure")
        with pytest.raises(handover.HandoverError, match="no successful pr.yml run"):
            handover.fetch(client, "a" * 40, tmp_path / "fetched")
        fake.runs[0]["conclusion"] = "success"
        release = handover.fetch(client, "a" * 40, tmp_path / "fetched")
    finally:
        server.shutdown()
    assert release.pull_request == 7
    assert handover.verify(tmp_path / "fetched", lock_file).model_sha256 == release.model_sha256

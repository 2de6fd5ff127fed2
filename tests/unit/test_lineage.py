"""Lineage manifest, model-signing signatures and the checks that catch a changed byte."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from german_credit_scoring.governance import lineage
from german_credit_scoring.governance.lineage import VerificationError

ROOT = Path(__file__).resolve().parents[2]


def key_pair(folder: Path, name: str = "signing") -> tuple[Path, Path]:
    """An offline elliptic-curve key pair (what a team keeps in a secret store; Sigstore in Actions)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture
def release(tmp_path, monkeypatch):
    """A project folder with an approved model, params, dvc.lock, a lineage manifest and a key pair."""
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "models/approved"
    model.mkdir(parents=True)
    (model / "model.joblib").write_bytes(bytes(range(256)) * 40)
    (model / "model.json").write_text(json.dumps({"version": "20260101-abc"}))
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: python pipelines/train.py\n    deps:\n"
        "    - path: data/features/train.parquet\n      md5: 0123456789abcdef0123456789abcdef\n"
        "    outs:\n    - path: models/candidate\n      md5: fedcba9876543210fedcba9876543210.dir\n"
    )
    subprocess.run(["git", "init", "-q", "-b", "main"], check=True)
    manifest = lineage.build_manifest(image_digest=None, mlflow_run_id="run-123")
    path = tmp_path / "models/lineage.json"
    path.write_text(json.dumps(manifest, indent=2))
    private, public = key_pair(tmp_path)
    return tmp_path, path, private, public


def test_manifest_pins_commit_inputs_params_run_and_every_file(release):
    _, path, _, _ = release
    manifest = json.loads(path.read_text())
    assert manifest["model_version"] == "20260101-abc" and manifest["mlflow_run_id"] == "run-123"
    assert manifest["dvc_lock"]["train"]["data/features/train.parquet"] == "0123456789abcdef0123456789abcdef"
    assert manifest["params"]["project"]["risk_tier"] in {"low", "medium", "high"}
    assert manifest["model_digest"] == lineage.sha256_file(Path("models/approved/model.joblib"))
    assert set(manifest["files"]) == {"model.joblib", "model.json"}
    assert manifest["bento"].endswith(":20260101-abc")


def test_signed_release_verifies_and_a_changed_byte_is_named(release):
    root, path, private, public = release
    assert lineage.sign_cli(["--private-key", str(private)]) == 0
    assert (root / "models/approved.sig").is_file() and (root / "models/lineage.json.sig").is_file()
    assert lineage.verify(path, public_key=public) == []

    # one byte of the model changes, same size
    blob = bytearray((root / "models/approved/model.joblib").read_bytes())
    blob[1000] ^= 0x01
    (root / "models/approved/model.joblib").write_bytes(bytes(blob))
    problems = lineage.verify(path, public_key=public)
    assert any("models/approved/model.joblib: bytes changed (same size" in p for p in problems)
    assert any("approved.sig does not verify" in p and "model.joblib" in p for p in problems)


def test_a_tampered_manifest_or_an_added_file_or_another_key_is_caught(release):
    root, path, private, public = release
    lineage.sign_cli(["--private-key", str(private)])
    manifest = json.loads(path.read_text())
    manifest["commit"] = "0" * 40
    path.write_text(json.dumps(manifest, indent=2))
    assert any("lineage.json.sig does not verify" in p for p in lineage.verify(path, public_key=public))

    lineage.sign_cli(["--private-key", str(private)])  # re-signed, then a file is slipped in
    (root / "models/approved/extra.pkl").write_bytes(b"x")
    problems = lineage.verify(path, public_key=public)
    assert any("extra.pkl: not in the manifest" in p for p in problems)
    (root / "models/approved/extra.pkl").unlink()

    _, other = key_pair(root, "other")
    assert lineage.verify(path, public_key=public) == []
    assert len(lineage.verify(path, public_key=other)) == 2  # neither signature is the other key's


def test_verify_cli_exit_codes(release, capsys):
    root, _, private, public = release
    assert lineage.verify_cli([]) == 2  # no key and no identity: says what to give
    assert lineage.verify_cli(["--digests-only"]) == 0
    lineage.sign_cli(["--private-key", str(private)])
    assert lineage.verify_cli(["--public-key", str(public)]) == 0
    (root / "models/approved/model.json").write_text("{}")
    assert lineage.verify_cli(["--public-key", str(public)]) == 1
    assert "FAIL models/approved/model.json: bytes changed" in capsys.readouterr().err


def stored_model(root: Path, with_release: bool) -> Path:
    """What packaging puts in the BentoML store: the copied files plus the lineage it adds."""
    stored = root / "store/model"
    stored.mkdir(parents=True)
    for name in ("model.joblib", "model.json"):
        shutil.copy2(root / "models/approved" / name, stored / name)
    (stored / "features.yaml").write_text("features: []\n")
    lineage.package_lineage(
        Path("models/approved"), stored, Path("models/lineage.json") if with_release else Path("none")
    )
    return stored


def test_service_refuses_a_changed_model_unless_explicitly_allowed(release, caplog):
    root, _, _, _ = release
    stored = stored_model(root, with_release=False)
    assert lineage.require_verified(stored, environ={}) == []
    (stored / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(
        VerificationError, match=r"model\.joblib: bytes changed.*SCORING_ALLOW_UNVERIFIED=true"
    ):
        lineage.require_verified(stored, environ={})
    with pytest.raises(VerificationError):
        lineage.require_verified(stored, environ={"SCORING_ALLOW_UNVERIFIED": "no"})
    waived = lineage.require_verified(stored, environ={"SCORING_ALLOW_UNVERIFIED": "true"})
    assert waived and "serving a model that does not verify" in caplog.text
    (stored / "lineage.json").unlink()
    with pytest.raises(VerificationError, match="no manifest packaged"):
        lineage.require_verified(stored, environ={})


def test_service_checks_the_signature_when_a_key_is_configured(release):
    root, _, private, public = release
    lineage.sign_cli(["--private-key", str(private)])
    stored = stored_model(root, with_release=True)
    assert sorted(p.name for p in (stored / "signature").iterdir()) == [
        "approved.sig",
        "lineage.json",
        "lineage.json.sig",
    ]
    assert lineage.require_verified(stored, environ={"SCORING_SIGNING_PUBLIC_KEY": str(public)}) == []
    _, other = key_pair(root, "other")
    with pytest.raises(VerificationError, match="does not verify"):
        lineage.require_verified(stored, environ={"SCORING_SIGNING_PUBLIC_KEY": str(other)})
    unsigned = root / "unsigned"
    shutil.copytree(stored, unsigned)
    shutil.rmtree(unsigned / "signature")
    with pytest.raises(VerificationError, match="signature not found"):
        lineage.require_verified(unsigned, environ={"SCORING_SIGNING_PUBLIC_KEY": str(public)})

"""GitOps deployment: Argo CD and Flux sync serving/k8s from main; its kustomization pins production's image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from german_credit_scoring.governance import deploy
from german_credit_scoring.governance.production import Entry, Production, load_production

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "serving/k8s"
IMAGE = "ghcr.io/acme/credit@sha256:" + "ab" * 32


def production(image: str | None = IMAGE) -> Production:
    entry = Entry(
        model_version="v3", model_digest="sha256:" + "c" * 64, image=image, risk_tier="high", gate_passed=True
    )
    return Production(current=entry)


def test_committed_kustomization_deploys_what_production_yaml_says(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert deploy.kustomization_cli(["--check"]) == 0, capsys.readouterr().err
    text = (K8S / "kustomization.yaml").read_text()
    assert yaml.safe_load(text)["resources"] == deploy.manifests(K8S)
    assert ("images" in yaml.safe_load(text)) is bool(
        load_production(ROOT / "governance/production.yaml").current
    )


def test_argo_cd_application_syncs_the_kustomized_folder_from_main():
    (app,) = yaml.safe_load_all((K8S / "deploy/argocd/application.yaml").read_text())
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    source, destination = app["spec"]["source"], app["spec"]["destination"]
    assert source["targetRevision"] == "main" and source["repoURL"].endswith(".git")
    assert (ROOT / source["path"] / "kustomization.yaml").is_file()
    assert destination["namespace"] and (destination.get("server") or destination.get("name"))
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert app["spec"]["project"] and app["metadata"]["name"]


def test_flux_follows_main_and_applies_the_same_folder():
    docs = {d["kind"]: d for d in yaml.safe_load_all((K8S / "deploy/flux/sync.yaml").read_text())}
    repo, kustomization = docs["GitRepository"], docs["Kustomization"]
    assert repo["apiVersion"] == "source.toolkit.fluxcd.io/v1" and repo["spec"]["ref"] == {"branch": "main"}
    assert kustomization["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1" and kustomization["spec"]["prune"]
    assert kustomization["spec"]["sourceRef"] == {"kind": "GitRepository", "name": repo["metadata"]["name"]}
    assert (ROOT / kustomization["spec"]["path"] / "kustomization.yaml").is_file()
    argo = yaml.safe_load((K8S / "deploy/argocd/application.yaml").read_text())
    assert repo["spec"]["url"] == argo["spec"]["source"]["repoURL"]
    assert kustomization["spec"]["path"].strip("./") == argo["spec"]["source"]["path"]


def test_a_promoted_image_is_deployed_by_digest_and_the_rendered_manifests_validate(tmp_path):
    text = deploy.render_kustomization(production(), K8S)
    docs = deploy.render(K8S, text)
    images = [c["image"] for d in docs for c in deploy._containers(d)]
    assert images and all(i == IMAGE for i in images)  # every container of the project's image
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    validator = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(validator), "--strict", str(rendered)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", ["ghcr.io/acme/credit:latest", "ghcr.io/acme/credit:v3"])
def test_production_image_must_be_pinned_by_digest(image):
    with pytest.raises(ValueError, match="pinned by digest"):
        deploy.render_kustomization(production(image), K8S)


def test_image_names_ignore_tags_digests_and_registry_ports():
    assert deploy.image_name("ghcr.io/o/n:latest") == "ghcr.io/o/n"
    assert deploy.image_name("localhost:5000/o/n@sha256:" + "a" * 64) == "localhost:5000/o/n"
    assert deploy.image_name("n") == "n"

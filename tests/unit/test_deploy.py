"""GitOps deployment: Argo CD and Flux sync serving/k8s from main; its kustomization pins production's image."""

from __future__ import annotations

import re
import shutil
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


# --- the service verifies the model's signature: the manifests configure it -----------------------------

from german_credit_scoring.governance import lineage  # noqa: E402
from tests.unit.test_lineage import key_pair, release, stored_model  # noqa: E402, F401  (release: fixture)


def scoring_pod(docs: list[dict]) -> tuple[dict, dict, dict[str, dict]]:
    """(the scoring container, its pod spec, ConfigMap name -> data) from rendered manifests."""
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "scoring"]
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    return container, pod, configmaps


def pod_environment(container: dict, configmaps: dict[str, dict]) -> dict[str, str]:
    """The environment Kubernetes gives the container: values, ConfigMap keys (a missing one only if optional)."""
    env = {}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = (var.get("valueFrom") or {}).get("configMapKeyRef")
        if ref is None:
            continue
        data = configmaps.get(ref["name"])
        if data is None or ref["key"] not in data:
            assert ref.get("optional"), (
                f"{var['name']}: {ref['name']}.{ref['key']} is missing: the pod would not start"
            )
            continue
        env[var["name"]] = data[ref["key"]]
    return env


def mounted(pod: dict, container: dict, configmaps: dict[str, dict], root: Path) -> dict[str, Path]:
    """Write each ConfigMap volume's keys as files under ``root``; mount path -> that folder."""
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        source = volumes[mount["name"]].get("configMap")
        if source:
            folder = root / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            for key, text in configmaps.get(source["name"], {}).items():
                (folder / key).write_text(text)
            mounts[mount["mountPath"]] = folder
    return mounts


def test_the_manifests_make_the_service_require_the_models_signature(release):  # noqa: F811
    root, _, private, public = release
    docs = deploy.render(K8S, (K8S / "kustomization.yaml").read_text())
    container, pod, configmaps = scoring_pod(docs)
    env = pod_environment(container, configmaps)

    # keyless by default: the identity main.yml signs with in Actions, GitHub's OIDC issuer
    assert re.fullmatch(r"https://github\.com/[^/]+/[^/]+/\.github/workflows/main\.yml@refs/heads/main",
                        env["SCORING_SIGNING_IDENTITY"])  # fmt: skip
    assert env["SCORING_SIGNING_ISSUER"] == "https://token.actions.githubusercontent.com"
    assert env.get("SCORING_ALLOW_UNVERIFIED", "false").lower() not in {"1", "true", "yes"}
    # with that environment the service refuses a model without signatures (before any network call)
    lineage.sign_cli(["--private-key", str(private)])
    stored = stored_model(root, with_release=True)
    unsigned = root / "unsigned"
    shutil.copytree(stored, unsigned)
    shutil.rmtree(unsigned / "signature")
    with pytest.raises(lineage.VerificationError, match="signature not found"):
        lineage.require_verified(unsigned, environ=env)

    # an offline key, configured as model-signing.yaml says: the mounted key verifies the signed model
    configmaps["model-signing"] = {**configmaps["model-signing"], "public-key.pem": public.read_text(),
                                   "public-key-path": "/etc/model-signing/public-key.pem"}  # fmt: skip
    env = pod_environment(container, configmaps)
    (mount_path, folder), *_ = [
        (m, f) for m, f in mounted(pod, container, configmaps, root / "pod").items()
        if env["SCORING_SIGNING_PUBLIC_KEY"].startswith(m + "/")
    ]  # fmt: skip
    env["SCORING_SIGNING_PUBLIC_KEY"] = str(folder / env["SCORING_SIGNING_PUBLIC_KEY"][len(mount_path) + 1 :])
    assert lineage.require_verified(stored, environ=env) == []
    _, other = key_pair(root, "other")
    (folder / "public-key.pem").write_text(other.read_text())
    with pytest.raises(lineage.VerificationError, match="does not verify"):
        lineage.require_verified(stored, environ=env)

"""What the cluster runs follows ``governance/production.yaml``: the kustomization's image override.

Argo CD (``serving/k8s/deploy/argocd/application.yaml``) and Flux (``serving/k8s/deploy/flux/``) sync
``serving/k8s`` from main; ``serving/k8s/kustomization.yaml`` lists the manifests and, once a model is
in production, pins the image by digest. It is generated from production.yaml (never edited by hand):
``mlops promote``/``rollback`` change both files in one pull request and ``mlops promotion-check``
fails when they disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from german_credit_scoring.governance.production import Production

K8S_DIR = Path("serving/k8s")
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"
HEADER = (
    "# Generated from governance/production.yaml by mlops promote / rollback: do not edit by hand.\n"
    "# Argo CD and Flux build this folder with kustomize; the image override pins production's image.\n"
)
DIGEST = re.compile(r"^(?P<name>[^@\s]+?)(?::[\w.-]+)?@(?P<digest>sha256:[0-9a-f]{64})$")


def manifests(folder: Path = K8S_DIR) -> list[str]:
    """The Kubernetes manifests kustomize applies: every top-level YAML but the kustomization."""
    return sorted(p.name for p in folder.glob("*.yaml") if p.name != KUSTOMIZATION.name)


def image_name(image: str) -> str:
    """``registry/name:tag@sha256:...`` -> ``registry/name`` (a registry port is not a tag)."""
    base = image.split("@", 1)[0]
    head, _, last = base.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def _containers(doc: dict) -> list[dict]:
    pod = ((doc or {}).get("spec") or {}).get("template", {}).get("spec", {})
    return [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]


def container_images(folder: Path = K8S_DIR) -> list[str]:
    """The image names (without tag or digest) the manifests' containers use."""
    names = set()
    for name in manifests(folder):
        for doc in yaml.safe_load_all((folder / name).read_text(encoding="utf-8")):
            names |= {image_name(str(c.get("image", ""))) for c in _containers(doc) if c.get("image")}
    return sorted(names)


def render_kustomization(production: Production, folder: Path = K8S_DIR) -> str:
    body: dict = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": manifests(folder),
    }
    image = production.current.image if production.current else None
    if image:
        match = DIGEST.match(image)
        if not match:
            raise ValueError(
                f"production image {image!r} must be pinned by digest: registry/name@sha256:<64 hex>"
            )
        body["images"] = [
            {"name": name, "newName": match["name"], "digest": match["digest"]}
            for name in container_images(folder)
        ]
    return HEADER + yaml.safe_dump(body, sort_keys=False)


def render(folder: Path, kustomization_text: str) -> list[dict]:
    """A minimal offline ``kustomize build``: the listed resources with the image override applied."""
    spec = yaml.safe_load(kustomization_text)
    overrides = {i["name"]: f"{i['newName']}@{i['digest']}" for i in spec.get("images") or []}
    docs = []
    for name in spec["resources"]:
        for doc in yaml.safe_load_all((folder / name).read_text(encoding="utf-8")):
            if not doc:
                continue
            for container in _containers(doc):
                override = overrides.get(image_name(str(container.get("image", ""))))
                if override:
                    container["image"] = override
            docs.append(doc)
    return docs


def kustomization_cli(argv: list[str]) -> int:
    """``mlops kustomization --write | --check``: serving/k8s/kustomization.yaml from production.yaml."""
    import argparse
    import sys

    from german_credit_scoring.governance.production import load_production
    from german_credit_scoring.io import write_text

    parser = argparse.ArgumentParser(prog="mlops kustomization", description=kustomization_cli.__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    expected = render_kustomization(load_production())
    if args.write:
        write_text(KUSTOMIZATION, expected)
        print(f"wrote {KUSTOMIZATION}")
        return 0
    actual = KUSTOMIZATION.read_text(encoding="utf-8") if KUSTOMIZATION.is_file() else ""
    if actual != expected:
        print(f"mlops kustomization: {KUSTOMIZATION} is out of step with governance/production.yaml or the "
              "manifests in serving/k8s; run `uv run mlops kustomization --write`", file=sys.stderr)  # fmt: skip
        return 1
    print(f"{KUSTOMIZATION} is in step with governance/production.yaml")
    return 0

"""The Kubernetes manifests keep the prediction log and ship it: the sidecar reads what the service writes."""

from __future__ import annotations

import re

import yaml

from german_credit_scoring.cli import COMMANDS


def test_the_ship_logs_sidecar_ships_the_folder_the_service_logs_to(root, settings):
    deployment = yaml.safe_load((root / "serving/k8s/deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    scoring = next(c for c in pod["containers"] if c["name"] == "scoring")
    sidecar = next(c for c in pod.get("initContainers", []) if c["name"] == "ship-logs")
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar: stops after the service
    assert sidecar["image"] == scoring["image"]
    log_dir = next(e["value"] for e in scoring["env"] if e["name"] == "PREDICTION_LOG")
    script = sidecar["args"][0]
    command = re.search(r"german_credit_scoring\.cli ([a-z-]+)", script).group(1)
    assert command == "ship-logs" and command in COMMANDS
    assert f"--source {log_dir}" in script and "--include-open" in script
    assert "trap" in script  # a last ship when the pod stops

    def mounted(container):
        return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}

    shared = set(mounted(scoring)) & set(mounted(sidecar))
    assert shared and all(log_dir.startswith(mounted(scoring)[v]) for v in shared)
    assert all(mounted(scoring)[v] == mounted(sidecar)[v] for v in shared)
    volume = next(v for v in pod["volumes"] if v["name"] in shared)
    assert volume["emptyDir"]["sizeLimit"]  # the bound on what a node failure can lose
    salt = next(e for e in scoring["env"] if e["name"] == settings.monitoring.store.salt_env)
    assert salt["valueFrom"]["secretKeyRef"]["name"]

"""dvc.yaml, params.yaml and paths.py describe the same pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from german_credit_scoring import paths


@pytest.fixture(scope="module")
def stages(root):
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


@pytest.fixture(scope="module")
def params(root):
    return yaml.safe_load((root / "params.yaml").read_text())


def _names(entries) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def test_each_stage_runs_its_own_script_and_depends_on_it(stages, root):
    for name, stage in stages.items():
        script = stage["cmd"].split()[-1]
        assert script.startswith("pipelines/"), name
        assert (root / script).is_file(), f"stage {name}: {script} does not exist"
        assert script in stage["deps"], f"stage {name}: its own code {script} is not a dependency"


def test_every_dependency_exists_or_is_produced(stages, root, params):
    produced = {
        out
        for stage in stages.values()
        for key in ("outs", "metrics", "plots")
        for out in _names(stage.get(key))
    }
    for name, stage in stages.items():
        for dep in stage["deps"]:
            dep = dep.replace("${data.path}", params["data"]["path"])
            assert (root / dep).exists() or dep in produced, f"stage {name}: dependency {dep} is nowhere"


def test_declared_params_exist(stages, params):
    for name, stage in stages.items():
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, (
                    f"stage {name}: params key {key} not in params.yaml"
                )
                node = node[part]


def test_paths_module_and_dvc_yaml_agree(stages):
    declared = {
        out
        for stage in stages.values()
        for key in ("outs", "metrics", "plots")
        for out in _names(stage.get(key))
    }
    constants = {
        str(value)
        for name, value in vars(paths).items()
        if name.isupper()
        and isinstance(value, Path)
        and value.suffix
        and name not in {"PARAMS", "PR_COMMENT"}
    }
    undeclared = {
        c for c in constants if c not in declared and not any(c.startswith(d + "/") for d in declared)
    }
    assert undeclared == set()


def test_the_committed_lock_pins_the_committed_code(root):
    """Every file in git that a stage depends on is the file dvc.lock pinned: code changed without
    reproducing is caught here, before the pull request's reproducible check says it."""
    import hashlib
    import subprocess

    from german_credit_scoring.gitops import lock

    if not (root / "dvc.lock").is_file():
        pytest.skip("no dvc.lock yet: the pipeline has not run")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = set(listed.stdout.decode().split("\0"))
    pinned = lock.load((root / "dvc.lock").read_text(encoding="utf-8"))
    code = {dep["path"] for stage in pinned.values() for dep in stage.get("deps", []) or []}
    if any(path.endswith(".py") and not (root / path).exists() for path in code):
        pytest.skip("dvc.lock pins code this checkout does not have (renamed before its first run)")
    stale = [
        f"{name}: {dep['path']}"
        for name, stage in pinned.items()
        for dep in stage.get("deps", []) or []
        if dep["path"] in tracked
        and (root / dep["path"]).is_file()
        and hashlib.md5((root / dep["path"]).read_bytes()).hexdigest() != dep.get("md5")
    ]
    assert not stale, (
        "dvc.lock pins other versions of these dependencies; run `uv run dvc repro` (or take CI's with "
        f"`uv run mlops take-lock`) and commit dvc.lock: {stale}"
    )

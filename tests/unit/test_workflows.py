"""The GitHub Actions workflows: secure (zizmor), valid (JSON schema) and in step with dvc.yaml and the CLI.

The workflows are thin: they call `dvc repro <stage>` and `mlops <command>`. These tests make sure every
name they use exists, that each DVC stage has its check, and that the security rules hold.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from german_credit_scoring.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
ACTIONS_DIR = ROOT / ".github" / "actions"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
ACTIONS = sorted(ACTIONS_DIR.glob("*/action.yml"))
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40}\s+#\s*v\d+(\.\d+)*\s*$")
# Lifecycle stages that run on a schedule rather than in the pull-request pipeline.
SCHEDULED_STAGES = {"drift"}


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # PyYAML reads the bare key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def triggers(workflow: dict) -> dict:
    on = workflow["on"]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _paths(entries) -> list[str]:
    out = []
    for entry in entries or []:
        out.extend(entry if isinstance(entry, dict) else [entry])
    return [str(p) for p in out]


def dvc_dependencies() -> dict[str, set[str]]:
    """stage -> the stages whose outputs it reads (directly)."""
    stages = dvc_stages()
    outs = {name: _paths(spec.get("outs")) + _paths(spec.get("metrics")) for name, spec in stages.items()}
    graph: dict[str, set[str]] = {}
    for name, spec in stages.items():
        deps = _paths(spec.get("deps"))
        graph[name] = {
            other
            for other, produced in outs.items()
            if other != name
            and any(dep == out or dep.startswith(out.rstrip("/") + "/") for dep in deps for out in produced)
        }
    return graph


def all_steps() -> list[tuple[Path, dict]]:
    found = []
    for path in WORKFLOWS:
        for job in load(path)["jobs"].values():
            found.extend((path, step) for step in job.get("steps", []))
    for path in ACTIONS:
        found.extend((path, step) for step in load(path)["runs"].get("steps", []))
    return found


def run_scripts() -> list[tuple[Path, str]]:
    return [(path, step["run"]) for path, step in all_steps() if "run" in step]


def test_there_are_workflows():
    names = {p.stem for p in WORKFLOWS}
    assert {"pr", "main", "drift"} <= names


# --------------------------------------------------------------------------- external checkers


def venv_tool(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def test_zizmor_finds_nothing():
    result = subprocess.run(
        [venv_tool("zizmor"), "--offline", "--no-progress", str(ROOT / ".github")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def check_jsonschema(schema: str, paths: list[Path]) -> subprocess.CompletedProcess:
    """One call for every file (each call loads the schema again: about 2 s a call)."""
    return subprocess.run(
        [venv_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflows_match_githubs_schema(tmp_path):
    # given every workflow, and beside them one with a misspelt key
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    # when GitHub's schema checks them in one call
    result = check_jsonschema("vendor.github-workflows", [*WORKFLOWS, broken])
    output = result.stdout + result.stderr
    # then only the broken one is named (so the check is real and no workflow of ours fails it)
    assert result.returncode == 1, output
    named = {line.strip().split("::", 1)[0] for line in output.splitlines() if "::$" in line}
    assert named == {str(broken)}, output


def test_composite_actions_match_githubs_schema():
    result = check_jsonschema("vendor.github-actions", ACTIONS)
    assert ACTIONS and result.returncode == 0, result.stdout + result.stderr


def test_actionlint_when_installed():
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (optional)")
    result = subprocess.run([actionlint, *map(str, WORKFLOWS)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- in step with dvc.yaml and the CLI


def test_every_dvc_stage_has_its_workflow_which_runs_it():
    for stage in dvc_stages():
        path = WORKFLOWS_DIR / f"{stage}.yml"
        assert path.is_file(), f"DVC stage {stage!r} has no workflow {path.relative_to(ROOT)}"
        on = triggers(load(path))
        assert "workflow_call" in on and "workflow_dispatch" in on, (
            f"{path.name}: needs workflow_call + dispatch"
        )
        scripts = " ".join(
            step.get("run", "") for job in load(path)["jobs"].values() for step in job["steps"]
        )
        assert re.search(
            rf"\b(dvc repro (--force (--single-item )?)?{stage}|mlops (run-stage )?{stage})\b", scripts
        ), f"{path.name} never runs {stage}"


def test_every_workflow_can_be_run_by_hand():
    for path in WORKFLOWS:
        assert "workflow_dispatch" in triggers(load(path)), f"{path.name} lacks workflow_dispatch"


def test_every_mlops_command_a_workflow_runs_exists():
    used = {
        (path.name, m)
        for path, script in run_scripts()
        for m in re.findall(r"\bmlops ([a-z][a-z-]*)", script)
    }
    assert used, "no workflow runs an mlops command"
    unknown = sorted(f"{name}: mlops {cmd}" for name, cmd in used if cmd not in COMMANDS)
    assert not unknown, f"unknown mlops commands: {unknown}"


def test_every_dvc_repro_and_report_stage_exists():
    stages = set(dvc_stages())
    from german_credit_scoring.gitops.reporting import STAGE_ORDER

    named, sections = [], []
    for path, script in run_scripts():
        named += [
            (path.name, s)
            for s in re.findall(r"\b(?:dvc repro|mlops run-stage) (?:-\S+ )*([A-Za-z0-9_-]+)", script)
        ]
        sections += [
            (path.name, s) for s in re.findall(r"\bmlops report\b[^\n]*?--stage ([A-Za-z0-9_-]+)", script)
        ]
    assert named and sections
    unknown = sorted(f"{name}: {stage}" for name, stage in named if stage not in stages)
    unknown += sorted(
        f"{name}: report {s}" for name, s in sections if s not in stages and s not in STAGE_ORDER
    )
    assert not unknown, f"workflows name stages missing from dvc.yaml: {unknown}"


def pr_stage_jobs() -> dict[str, dict]:
    jobs = load(WORKFLOWS_DIR / "pr.yml")["jobs"]
    stages = set(dvc_stages())
    return {name: job for name, job in jobs.items() if name in stages}


def test_pull_request_pipeline_calls_every_stage_in_dependency_order():
    jobs = pr_stage_jobs()
    assert set(jobs) == set(dvc_stages()) - SCHEDULED_STAGES

    def ancestors(name: str) -> set[str]:
        needs = jobs[name].get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        return set(needs).union(*(ancestors(n) for n in needs)) if needs else set()

    for stage, upstream in dvc_dependencies().items():
        if stage not in jobs:
            continue
        missing = {u for u in upstream if u in jobs} - ancestors(stage)
        assert not missing, f"pr.yml: {stage} runs without waiting for {sorted(missing)}"
        assert jobs[stage]["uses"] == f"./.github/workflows/{stage}.yml"
        needs = jobs[stage].get("needs")
        if needs:
            # the outputs handed over are those of the job it waits for
            assert jobs[stage]["with"]["upstream"] == needs


def test_each_stage_with_a_report_posts_its_own_comment_and_hands_on_its_outputs():
    stages = dvc_stages()
    for stage in pr_stage_jobs():
        workflow = load(WORKFLOWS_DIR / f"{stage}.yml")
        steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
        runs = " ".join(s.get("run", "") for s in steps)
        writes_markdown = any(
            re.fullmatch(r"reports/[^/]+\.md", p) for p in _paths(stages[stage].get("outs"))
        )
        # a stage that writes a Markdown report comments it; one without (ingest, package) has nothing to say
        assert (f"mlops report --stage {stage} " in runs) == writes_markdown, stage
        assert (f"mlops comment --marker {stage} " in runs) == writes_markdown, stage
        permissions = next(iter(workflow["jobs"].values()))["permissions"]
        assert (permissions.get("pull-requests") == "write") == writes_markdown, stage
        uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
        handover = [u for u in uploads if u["with"]["name"] == f"pipeline-{stage}"]
        assert len(handover) == 1, stage
        # exactly what later stages need: the outputs so far, CI's lock and the run records; no raw data
        listed = handover[0]["with"]["path"].split()
        assert listed == [*handed_over(stage), "dvc.lock", "runs/"], stage
        assert handover[0]["with"].get("overwrite") is True  # "Re-run failed jobs" uploads again
        # the stage runs or is restored from the run-cache, never "didn't change, skipping" on the
        # committed lock's word (mlops run-stage, tested in test_stagerun), and a failing stage (gate,
        # fairness, validation) fails the job: the repro step is not softened
        repro = next(s for s in steps if f"mlops run-stage {stage}" in s.get("run", ""))
        assert "--single-item" in repro["run"] and repro["env"]["UPSTREAM"] == "${{ inputs.upstream }}"
        assert "continue-on-error" not in repro and "||" not in repro["run"]


def handed_over(stage: str) -> list[str]:
    """Outputs, metrics and plots of the pull-request stages up to ``stage``, in pipeline order."""
    order = [name for name in dvc_stages() if name in pr_stage_jobs()]
    paths: list[str] = []
    for name in order[: order.index(stage) + 1]:
        spec = dvc_stages()[name]
        for key in ("outs", "metrics", "plots"):
            paths += [p for p in _paths(spec.get(key)) if p not in paths]
    return paths


def test_drift_runs_on_a_schedule_and_opens_the_retraining_pr():
    workflow = load(WORKFLOWS_DIR / "drift.yml")
    assert "schedule" in triggers(workflow)
    runs = " ".join(s.get("run", "") for s in workflow["jobs"]["drift"]["steps"])
    assert "mlops drift" in runs and "mlops retrain-pr" in runs
    assert "--dispatch-workflow pr.yml" in runs and (WORKFLOWS_DIR / "pr.yml").is_file()


def test_main_ships_the_reviewed_release_and_never_retrains():
    workflow = load(WORKFLOWS_DIR / "main.yml")
    assert triggers(workflow)["push"]["branches"] == ["main"]
    runs = " ".join(s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"])
    assert "dvc repro" not in runs  # main never trains
    assert "mlops handover fetch" in runs and "mlops handover verify" in runs
    assert "bentoml containerize" in runs and "mlops handover labels" in runs and "mlops register" in runs
    assert ":latest" not in runs
    # the release main fetches is the artifact the package job of the pull request uploads
    package = load(WORKFLOWS_DIR / "package.yml")
    steps = [s for job in package["jobs"].values() for s in job["steps"]]
    names = [s["with"]["name"] for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    from german_credit_scoring.gitops.handover import ARTIFACT

    assert ARTIFACT in names
    assert "mlops handover pack" in " ".join(s.get("run", "") for s in steps)


def test_actionlint_finds_nothing():
    result = subprocess.run(
        [venv_tool("actionlint"), "-no-color"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- security rules


def test_least_privilege_permissions():
    for path in WORKFLOWS:
        workflow = load(path)
        assert workflow.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}}"
        for name, job in workflow["jobs"].items():
            assert "permissions" in job, f"{path.name}:{name} declares no permissions"
            if "uses" not in job:
                assert "timeout-minutes" in job, f"{path.name}:{name} has no timeout"
    writers = [
        (path.name, name)
        for path in WORKFLOWS
        for name, job in load(path)["jobs"].items()
        if (job.get("permissions") or {}).get("packages") == "write"
    ]
    assert writers == [("main.yml", "image")]


def test_no_dangerous_triggers_and_concurrency_is_set():
    for path in WORKFLOWS:
        workflow = load(path)
        on = triggers(workflow)
        assert "pull_request_target" not in on and "workflow_run" not in on, path.name
        if "workflow_call" not in on:  # called workflows inherit the caller's group
            assert "concurrency" in workflow, f"{path.name} has no concurrency group"


def test_no_expressions_inside_run_scripts():
    offenders = [
        f"{path.name}: {script.splitlines()[0]}" for path, script in run_scripts() if "${{" in script
    ]
    assert not offenders, f"pass values through env:, not ${{{{ }}}} in run: {offenders}"


def test_third_party_actions_are_pinned_to_commits_with_a_version_comment():
    for path, step in all_steps():
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to a full commit SHA"
    for path in [*WORKFLOWS, *ACTIONS]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.search(r"uses:\s*[^$.\s][^@\s]*@", line):
                assert VERSION_COMMENT.search(line), f"{path.name}: no version comment on: {line.strip()}"


def test_checkouts_do_not_keep_credentials():
    for path, step in all_steps():
        if step.get("uses", "").startswith("actions/checkout@"):
            assert (step.get("with") or {}).get("persist-credentials") is False, path.name


def test_setup_installs_the_locked_environment():
    setup = load(ACTIONS_DIR / "setup" / "action.yml")
    runs = [s.get("run", "") for s in setup["runs"]["steps"]]
    assert "uv sync --locked" in runs

"""Generate projects with the real `cookiecutter` and `cruft` command lines and run what they hold."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import VENV_BIN, bake_env, cookiecutter, git, make_template_repo, scaffold

pytestmark = pytest.mark.e2e

SAMPLE_ONLY_COLUMNS = {"credit_risk", "sex", "age", "checking_status", "purpose", "housing", "credit_amount"}
CHURN = {
    "project_name": "Churn Risk",
    "description": "Predicts which subscribers leave next month.",
    "author": "Retention Analytics",
    "github_owner": "globex",
    "owners_model_risk": "@globex/risk-review",
    "owners_data": "@globex/subscriber-data",
    "owners_platform": "@globex/ml-platform",
    "data_path": "churn.csv",
    "target": "churned",
    "positive_label": "yes",
    "protected_attributes": "gender, age_years",
    "risk_tier": "medium",
    "container_registry": "registry.example.com",
    "python_version": "3.12",
}


def generated_files(project: Path) -> set[str]:
    return {
        p.relative_to(project).as_posix()
        for p in project.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(project).parts
    }


def expected_files(template: Path, renames: dict[str, str] | None = None) -> set[str]:
    files = set()
    for name in scaffold.project_files(template):
        for old, new in (renames or {}).items():
            name = name.replace(old, new)
        files.add(name)
    return files


def leftover_jinja(project: Path) -> list[str]:
    """Files with a cookiecutter variable or tag (rendered or not, none belongs in a project)."""
    found = []
    for path in project.rglob("*"):
        if not path.is_file() or ".git" in path.parts or not scaffold.is_text(path):
            continue
        if re.search(
            r"\{\{-?\s*cookiecutter\b|\{%-?\s*(if|for|raw)\b.*cookiecutter", path.read_text(encoding="utf-8")
        ):
            found.append(path.relative_to(project).as_posix())
    return found


def jinja_counts_changed(project: Path, template: Path, renames: dict[str, str]) -> list[str]:
    """Files whose '{{' / '{%' count differs from the template's: something was rendered or injected."""
    changed = []
    for name in scaffold.project_files(template):
        out = name
        for old, new in renames.items():
            out = out.replace(old, new)
        source, target = template / name, project / out
        if (
            not target.is_file() or not scaffold.is_text(source) or name == "README.md"
        ):  # the README's template passages are dropped
            continue
        count = lambda text: (text.count("{{"), text.count("{%"))
        if count(source.read_text(encoding="utf-8")) != count(target.read_text(encoding="utf-8")):
            changed.append(out)
    return changed


@pytest.fixture(scope="module")
def churn_bake(template_repo, churn_csv, tmp_path_factory):
    work = tmp_path_factory.mktemp("bake-churn")
    shutil.copy(churn_csv, work / "churn.csv")
    started = time.perf_counter()
    result = cookiecutter(template_repo, work, **CHURN)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"cookiecutter with other data took {elapsed:.2f}s")
    return work / "churn-risk", elapsed


def test_default_bake_reproduces_the_template_project(template_repo, tmp_path):
    # when the template is baked with every default
    started = time.perf_counter()
    result = cookiecutter(template_repo, tmp_path)
    elapsed = time.perf_counter() - started
    # then it takes seconds and the project is the template's tree, byte for byte, minus the machinery
    assert result.returncode == 0, result.stderr[-3000:]
    assert elapsed < 30
    project = tmp_path / "german-credit-scoring"
    assert generated_files(project) == expected_files(template_repo)
    differing = [
        name
        for name in scaffold.project_files(template_repo)
        if (project / name).read_bytes() != (template_repo / name).read_bytes()
    ]
    # except the README, which loses its passages about the template
    assert differing == ["README.md"]
    readme = (project / "README.md").read_text()
    assert "Make your own" not in readme and "cookiecutter" not in readme.lower()
    assert re.search(r"the test command: \d+ test functions on every core \(", readme)
    assert "data-set" not in readme and "template's bakes" not in readme  # the template's own timing
    assert not any(p.is_symlink() for p in project.rglob("*"))
    assert leftover_jinja(project) == [] and not (project / scaffold.PLACEHOLDER).exists()
    assert not (project / "hooks").exists() and not (project / "tests/template").exists()
    assert not list(project.rglob("*scaffold*"))
    # and it is a git repository with one clean commit
    assert git(project, "status", "--porcelain") == ""
    assert len(git(project, "log", "--oneline").splitlines()) == 1


def test_churn_bake_has_exactly_the_expected_files(churn_bake, template_repo):
    project, elapsed = churn_bake
    expected = expected_files(
        template_repo,
        {"src/german_credit_scoring/": "src/churn_risk/", "data/raw/german_credit.csv": "data/raw/churn.csv"},
    )
    # the sample's pipeline results (dvc.lock, metrics, plots, reports) describe the sample's model
    sample_results = set(scaffold.sample_results(template_repo))
    assert sample_results & set(scaffold.project_files(template_repo)), "the template commits results"
    assert generated_files(project) == expected - sample_results
    assert leftover_jinja(project) == []
    renames = {"src/german_credit_scoring/": "src/churn_risk/"}
    assert jinja_counts_changed(project, template_repo, renames) == []
    assert not any(scaffold.is_machinery(f) for f in generated_files(project))
    assert elapsed < 30


def test_churn_bake_applies_names_everywhere(churn_bake):
    project, _ = churn_bake
    every_text = {
        p.relative_to(project).as_posix(): p.read_text(encoding="utf-8")
        for p in project.rglob("*")
        if p.is_file()
        and ".git" not in p.relative_to(project).parts
        and scaffold.is_text(p)
        and not p.relative_to(project).as_posix().startswith("data/")
    }
    leftovers = {name for name, text in every_text.items() if re.search(r"german[_-]credit[_-]scoring", text)}
    assert leftovers == set()
    assert not any("@acme/" in text for text in every_text.values())
    pyproject = (project / "pyproject.toml").read_text()
    assert (
        'name = "churn-risk"' in pyproject
        and CHURN["description"] in pyproject
        and CHURN["author"] in pyproject
    )
    assert 'packages = ["src/churn_risk"]' in pyproject and 'mlops = "churn_risk.cli:main"' in pyproject
    codeowners = (project / ".github/CODEOWNERS").read_text()
    assert {"@globex/risk-review", "@globex/subscriber-data", "@globex/ml-platform"} <= set(
        codeowners.split()
    )
    owners = yaml.safe_load((project / "governance/owners.yaml").read_text())
    assert owners["teams"] == {
        "model_risk": "@globex/risk-review",
        "data": "@globex/subscriber-data",
        "platform": "@globex/ml-platform",
    }
    workflows = "".join(every_text[n] for n in every_text if n.startswith(".github/"))
    versions = re.findall(r"python-version:\s*[\"']?([0-9.]+)", workflows)
    assert versions and set(versions) == {"3.12"}
    # the image registry is read from params.yaml (serving.image_registry), not written into workflows
    assert "ghcr.io" not in workflows and "serving.image_registry" in every_text[".github/workflows/main.yml"]
    assert "image: registry.example.com/" in every_text["serving/k8s/deployment.yaml"]
    # the package imports from the generated tree
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import churn_risk.cli, churn_risk.settings as s; print(s.load_settings().data.target)",
        ],
        cwd=project,
        env={"PYTHONPATH": str(project / "src"), "PATH": str(VENV_BIN)},
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "churned"


def test_churn_bake_aims_at_the_new_data_without_sample_settings(churn_bake):
    project, _ = churn_bake
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["project"] == {"name": "Churn Risk", "slug": "churn-risk", "risk_tier": "medium"}
    assert params["data"]["path"] == "data/raw/churn.csv" and params["data"]["format"] == "csv"
    assert params["data"]["target"] == "churned" and params["data"]["positive_label"] == "yes"
    protected = params["data"]["protected_attributes"]
    assert [p["name"] for p in protected] == ["gender", "age_years"]
    assert "bins" not in protected[0] and len(protected[1]["bins"]) == 1  # numeric: banded at the median
    assert params["serving"]["image_registry"] == "registry.example.com"
    assert params["evaluation"]["slices"] == []
    assert not (project / "data/raw/german_credit.csv").exists()
    # no setting or contract entry names a column the new data does not have
    columns = set((project / "data/raw/churn.csv").read_text().splitlines()[0].split(","))
    contract = yaml.safe_load((project / "features/features.yaml").read_text())["features"]
    assert {f["name"] for f in contract} == columns - {"churned"}
    assert {f["name"] for f in contract if f["sensitive"]} == {"gender", "age_years"}
    suite = (project / "features/expectations.json").read_text()
    assert not any(f'"{c}"' in suite for c in SAMPLE_ONLY_COLUMNS)
    params_text = (project / "params.yaml").read_text()
    assert not [c for c in SAMPLE_ONLY_COLUMNS if re.search(rf"\b{c}\b", params_text)]


def test_churn_readme_describes_the_new_data_not_the_sample(churn_bake, template_repo):
    project, _ = churn_bake
    readme = (project / "README.md").read_text(encoding="utf-8")
    template_readme = (template_repo / "README.md").read_text(encoding="utf-8")
    blocks = scaffold.SAMPLE_BLOCK.findall(template_readme)
    assert blocks, "the template README marks its sample-specific passages"
    assert len(scaffold.SAMPLE_BLOCK.findall(readme)) == len(blocks)  # markers stay: retarget again
    assert "German Credit" not in readme and "5:1" not in readme and "duration_months" not in readme
    assert "(and the template that makes more)" not in readme
    about = "`data/raw/churn.csv`: it predicts `churned`, scores the label `yes`"
    assert about in readme and "`gender`, `age_years`" in readme
    assert readme.startswith("# Churn Risk — a GitOps MLOps project")
    assert "<!-- template:" not in readme and "Make your own" not in readme
    # everything outside the marked passages is the template's text
    count = re.compile(r"\d+ test functions")

    def outside(text: str) -> str:
        text = scaffold.SAMPLE_BLOCK.sub("", text).replace("German Credit Scoring", "Churn Risk")
        return count.sub("N tests", text)

    expected = scaffold.TEMPLATE_BLOCK.sub(
        lambda m: (
            "N tests"
            if m["key"] == "tests"
            else ("" if m.start() == 0 or m.string[m.start() - 1] == "\n" else m["nl"])
        ),
        template_readme,
    )
    assert outside(readme) == outside(expected).replace("german_credit_scoring", "churn_risk")


def test_churn_params_start_with_gate_limits_that_hold_for_any_data(churn_bake):
    project, _ = churn_bake
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["evaluation"]["cost"] == {"false_negative": 5, "false_positive": 1}  # policy: review
    assert params["gate"]["min_metrics"] == {"roc_auc": 0.6}
    assert params["gate"]["max_metrics"] == {}
    assert params["gate"]["max_fairness"] and params["gate"]["max_regression"]  # policy, kept


def test_relative_data_path_resolves_against_the_output_dir(template_repo, churn_csv, tmp_path):
    # given a data file next to where cookiecutter runs, and an explicit output folder elsewhere
    (tmp_path / "in").mkdir()
    shutil.copy(churn_csv, tmp_path / "in" / "churn.csv")
    answers = {**CHURN, "project_name": "Churn Out"}
    result = cookiecutter(template_repo, tmp_path / "in", "-o", str(tmp_path / "out"), **answers)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out/churn-out/data/raw/churn.csv").is_file()


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_name": 'Say "hi"'}, "project_name"),
        ({"project_name": "Credit", "project_slug": "Bad Slug"}, "project_slug"),
        ({"project_name": "Credit", "package_name": "my-pkg"}, "package_name"),
        ({"project_name": "Credit", "target": "sex"}, "also listed as a protected attribute"),
        ({"project_name": "Credit", "data_path": "missing.csv"}, "no such file"),
        ({"project_name": "Credit", "protected_attributes": "sex,religion"}, "'religion' not found"),
        ({"project_name": "Credit", "positive_label": "yes"}, "never occurs"),
    ],
)
def test_bad_answers_are_refused_clearly_and_leave_nothing(template_repo, tmp_path, answers, message):
    result = cookiecutter(template_repo, tmp_path, **answers)
    assert result.returncode != 0
    assert message in result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name != ".home"] == []


def test_non_ascii_hyphenated_name_gives_a_working_project(template_repo, tmp_path):
    result = cookiecutter(
        template_repo, tmp_path, project_name="Crédit Modèle Über-Risk", author="Équipe Zoë"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    project = tmp_path / "credit-modele-uber-risk"
    assert (project / "src/credit_modele_uber_risk/cli.py").is_file()
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    assert params["project"]["name"] == "Crédit Modèle Über-Risk"
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import credit_modele_uber_risk.settings as s; print(s.load_settings().project.name)",
        ],
        cwd=project,
        env={"PYTHONPATH": str(project / "src"), "PATH": str(VENV_BIN), "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        text=True,
    )
    assert check.stdout.strip() == "Crédit Modèle Über-Risk", check.stderr


def test_git_url_and_checkout_of_a_tag(tmp_path):
    # given a template repository with a tag, then a later commit
    template = make_template_repo(tmp_path / "template")
    git(template, "tag", "v1.0.0")
    readme = template / "README.md"
    readme.write_text(readme.read_text() + "\nAfter the tag.\n")
    git(template, "commit", "-q", "-am", "after the tag")
    url = template.as_uri()
    # when it is baked from its file:// URL at the tag and at the tip
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    at_tag = cookiecutter(url, tmp_path / "a", "--checkout", "v1.0.0")
    at_tip = cookiecutter(url, tmp_path / "b")
    # then each project holds its own version
    assert at_tag.returncode == 0 and at_tip.returncode == 0, at_tag.stderr[-2000:] + at_tip.stderr[-2000:]
    assert "After the tag." not in (tmp_path / "a/german-credit-scoring/README.md").read_text()
    assert "After the tag." in (tmp_path / "b/german-credit-scoring/README.md").read_text()


def cruft(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "cruft"), *args],
        cwd=cwd,
        env=bake_env(cwd),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cruft_update_brings_a_template_change_and_keeps_local_edits(tmp_path, churn_csv):
    # given a project created with cruft from other data, committed, then edited locally
    template = make_template_repo(tmp_path / "template")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(churn_csv, work / "churn.csv")
    extra = json.dumps(CHURN)
    (work / "answers.json").write_text(extra)
    created = cruft(work, "create", template.as_uri(), "--no-input", "--extra-context-file", "answers.json")
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-2000:]
    project = work / "churn-risk"
    # like cookiecutter, a git repository with one commit; cruft writes .cruft.json after the hooks
    assert len(git(project, "log", "--oneline").splitlines()) == 1
    assert git(project, "status", "--porcelain").splitlines() == ["?? .cruft.json"]
    git(project, "add", ".cruft.json")
    git(project, "commit", "-q", "-m", "cruft state")
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("min_rows: 50", "min_rows: 75"))
    git(project, "commit", "-q", "-am", "local edit")
    # when the template changes (a file is edited, and a file is added) and the project updates
    ingest = template / "pipelines/ingest.py"
    ingest.write_text(ingest.read_text() + "\n# template change 1\n")
    (template / "docs").mkdir(exist_ok=True)
    (template / "docs/NEW.md").write_text("New in the template: german_credit_scoring.\n")
    git(template, "add", "-A")
    git(template, "commit", "-q", "-m", "template change")
    updated = cruft(project, "update", "--skip-apply-ask")
    # then the change arrives (renamed for this project), the local edit stays, and nothing else moved
    assert updated.returncode == 0, updated.stdout[-2000:] + updated.stderr[-2000:]
    assert "# template change 1" in (project / "pipelines/ingest.py").read_text()
    assert (project / "docs/NEW.md").read_text() == "New in the template: churn_risk.\n"
    assert "min_rows: 75" in params.read_text()
    changed = {line[3:] for line in git(project, "status", "--porcelain").splitlines()}
    assert changed == {".cruft.json", "pipelines/ingest.py", "docs/NEW.md"}, changed
    assert not list(project.rglob("*.rej"))

"""The template mirror and the retarget library, without running cookiecutter (fast)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from german_credit_scoring import scaffold
from german_credit_scoring.settings import load_settings

from .conftest import ROOT, git, working_files, write_churn


def test_the_committed_mirror_equals_the_tracked_tree():
    # given the template root, when the mirror is compared with `git ls-files` minus the machinery
    problems = scaffold.check_template(ROOT)
    # then nothing is missing, stale or linked wrongly
    assert problems == [], "run: uv run python -m german_credit_scoring.scaffold sync-template\n" + "\n".join(
        problems
    )


def test_sync_template_adds_removes_and_relinks(tmp_path):
    # given a small repository with a stale mirror entry
    (tmp_path / "src/pkg").mkdir(parents=True)
    (tmp_path / "src/pkg/a.py").write_text("a\n")
    (tmp_path / "cookiecutter.json").write_text("{}")
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks/post_gen_project.py").write_text("")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    stale = tmp_path / scaffold.MIRROR / "gone.txt"
    stale.parent.mkdir()
    stale.write_text("x")
    # when it is synced
    scaffold.sync_template(tmp_path)
    # then the mirror holds exactly the project files, as relative links that resolve
    link = tmp_path / scaffold.MIRROR / "src/pkg/a.py"
    assert link.is_symlink() and link.read_text() == "a\n"
    assert str(link.readlink()) == "../../../src/pkg/a.py"
    assert not stale.exists()
    assert not (tmp_path / scaffold.MIRROR / "cookiecutter.json").exists()
    assert not (tmp_path / scaffold.MIRROR / "hooks").exists()
    assert scaffold.check_template(tmp_path) == [f"not added to git: {scaffold.MIRROR}/src/pkg/a.py"]
    git(tmp_path, "add", "-A")
    assert scaffold.check_template(tmp_path) == []
    # and a changed root file that the mirror copies (git refuses symlinked .gitignore files) is caught
    (tmp_path / ".gitignore").write_text("x\n")
    git(tmp_path, "add", ".gitignore")
    scaffold.sync_template(tmp_path)
    git(tmp_path, "add", "-A")
    assert not (tmp_path / scaffold.MIRROR / ".gitignore").is_symlink()
    (tmp_path / ".gitignore").write_text("y\n")
    assert any(".gitignore" in p for p in scaffold.check_template(tmp_path))


def test_cookiecutter_defaults_are_the_root_project():
    # given cookiecutter.json and the root project's own files
    answers = json.loads((ROOT / "cookiecutter.json").read_text())
    identity = scaffold.current_identity(ROOT)
    settings = load_settings(ROOT / "params.yaml")
    # then the defaults reproduce the root (a default bake renames nothing)
    assert answers["project_name"] == identity.name
    assert answers["description"] == identity.description
    assert answers["author"] == identity.author
    assert answers["github_owner"] == identity.github_owner
    assert answers["container_registry"] == identity.registry
    assert answers["data_path"] == str(settings.data.path)
    assert answers["target"] == settings.data.target
    assert answers["positive_label"] == settings.data.positive_label
    assert scaffold.parse_list(answers["protected_attributes"]) == tuple(settings.data.protected_names)
    assert answers["risk_tier"][0] == settings.project.risk_tier
    assert answers["python_version"][0] == identity.python_version
    owners = {
        role: answers[f"owners_{role}"].replace("{{ cookiecutter.github_owner }}", identity.github_owner)
        for role in ("model_risk", "data", "platform")
    }
    assert owners == identity.teams
    assert identity.package == "german_credit_scoring" and identity.slug == "german-credit-scoring"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("yes", '"yes"'),
        ("1", '"1"'),
        ("bad", "bad"),
        ("Crédit Modèle", "Crédit Modèle"),
        ("a: b", '"a: b"'),
        ("null", '"null"'),
        (None, "null"),
        ([], "[]"),
        ({}, "{}"),
    ],
)
def test_yaml_scalar_reads_back_as_the_value(value, expected):
    assert scaffold.yaml_scalar(value) == expected
    assert yaml.safe_load(f"k: {scaffold.yaml_scalar(value)}") == {"k": value}


def test_set_yaml_keeps_comments_and_replaces_blocks():
    text = "data:\n  target: credit_risk   # what to predict\n  protected_attributes:\n    - name: sex\n    - name: age\n      bins: [25]\n  min_rows: 50\n"
    text = scaffold.set_yaml(text, "data.target", "churned")
    text = scaffold.set_yaml_block(text, "data.protected_attributes", ["- name: gender"])
    assert "target: churned   # what to predict" in text
    assert yaml.safe_load(text) == {
        "data": {"target": "churned", "protected_attributes": [{"name": "gender"}], "min_rows": 50}
    }


def _identity(**changes) -> scaffold.Identity:
    return replace(scaffold.current_identity(ROOT), **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slug": "Bad Slug"}, "project_slug"),
        ({"slug": "bad--slug"}, "project_slug"),
        ({"package": "my-pkg"}, "package_name"),
        ({"package": "class"}, "package_name"),
        ({"package": "json"}, "standard library"),
        ({"slug": "mlflow"}, "dependencies"),
        ({"name": 'Say "hi"'}, "project_name"),
        ({"name": "O'Brien"}, "project_name"),
        ({"name": " padded"}, "project_name"),
        ({"github_owner": "has space"}, "github_owner"),
        ({"teams": {"data": "data-team"}}, "owners_data"),
        ({"registry": "https://ghcr.io"}, "container_registry"),
        ({"python_version": "2.7"}, "python_version"),
    ],
)
def test_bad_names_are_refused_with_the_answer_named(changes, message):
    reserved = scaffold._locked_packages(ROOT, "german-credit-scoring")
    problems = scaffold.validate_identity(_identity(**changes), reserved=reserved)
    assert any(message in p for p in problems), problems


def test_awkward_but_valid_names_are_accepted():
    identity = _identity(
        name="Crédit Modèle (Ü-Bank) & Co.",
        description="Scores churn; owned by Zoë's team.",
        slug="credit-modele",
        package="credit_modele",
        author="Équipe Risque",
    )
    assert scaffold.validate_identity(identity) == []


def test_target_that_is_also_protected_is_refused():
    answers = scaffold.DataAnswers(path="x.csv", target="sex", positive_label="bad", protected=("sex", "age"))
    assert any("also listed as a protected attribute" in p for p in scaffold.validate_data_answers(answers))


def test_check_data_names_missing_columns_and_labels(tmp_path):
    data = write_churn(ROOT / "data/raw/german_credit.csv", tmp_path / "churn.csv")
    ok = scaffold.DataAnswers(path=str(data), target="churned", positive_label="yes", protected=("gender",))
    assert scaffold.check_data(data, ok) == []
    missing = replace(ok, protected=("sex",))
    assert any("'sex' not found" in p for p in scaffold.check_data(data, missing))
    label = replace(ok, positive_label="bad")
    assert any("never occurs" in p for p in scaffold.check_data(data, label))
    assert scaffold.check_data(tmp_path / "nope.csv", ok) == [f"data file {tmp_path / 'nope.csv'} not found"]


def test_replacements_respect_word_boundaries():
    old = scaffold.current_identity(ROOT)
    new = replace(old, name="Churn Risk", slug="churn-risk", package="churn_risk")
    text = "german_credit_scoring.cli german-credit-scoring german_credit.csv german-credit-scoring-extra German Credit Scoring"
    for pattern, value in scaffold.name_replacements(old, new):
        text = pattern.sub(value, text)
    assert text == "churn_risk.cli churn-risk german_credit.csv german-credit-scoring-extra Churn Risk"


def test_median_split_bands_many_valued_numbers_only(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(1, 102)))
    assert scaffold.median_split(data, "x") == 51.0
    assert scaffold.median_split(data, "y") is None


def _project_copy(destination: Path) -> Path:
    for name in working_files():
        if scaffold.is_machinery(name):
            continue
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, destination / name)
    return destination


def test_mlops_retarget_renames_and_reaims_a_project(tmp_path):
    # given a copy of the project and churn data
    project = _project_copy(tmp_path / "project")
    data = write_churn(ROOT / "data/raw/german_credit.csv", tmp_path / "churn.csv")
    # when it is retargeted through the CLI function
    code = scaffold.retarget_cli(
        [
            "--project",
            str(project),
            "--name",
            "Churn Risk",
            "--slug",
            "churn-risk",
            "--data",
            str(data),
            "--target",
            "churned",
            "--positive-label",
            "yes",
            "--protected",
            "gender,age_years",
            "--owners-data",
            "@globex/data",
        ]
    )
    # then the package is renamed, params aim at the new data and the sample's settings are gone
    assert code == 0
    assert (project / "src/churn_risk/cli.py").is_file() and not (
        project / "src/german_credit_scoring"
    ).exists()
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["project"] == {"name": "Churn Risk", "slug": "churn-risk", "risk_tier": "high"}
    assert params["data"]["target"] == "churned" and params["data"]["positive_label"] == "yes"
    assert [p["name"] for p in params["data"]["protected_attributes"]] == ["gender", "age_years"]
    assert params["data"]["path"] == "data/raw/churn.csv" and (project / "data/raw/churn.csv").is_file()
    assert not (project / "data/raw/german_credit.csv").exists()
    assert params["evaluation"]["slices"] == []
    assert "german_credit_scoring" not in (project / "src/churn_risk/ingest.py").read_text()
    features = yaml.safe_load((project / "features/features.yaml").read_text())["features"]
    assert {f["name"] for f in features} == set(data.read_text().splitlines()[0].split(",")) - {"churned"}
    assert "@globex/data" in (project / ".github/CODEOWNERS").read_text()
    # and nothing of the sample's results or prose is left to pass for the new data's
    assert not [f for f in scaffold.sample_results(project) if (project / f).exists()]
    assert not (project / "metrics").exists()
    readme = (project / "README.md").read_text()
    assert "German Credit" not in readme and "`churned`" in readme
    assert params["gate"]["min_metrics"] == {"roc_auc": 0.6}


def test_readme_passages_are_replaced_for_other_data_and_again_on_a_second_retarget(tmp_path):
    # given a README with a lead passage, an unnamed passage and a drift command naming a sample column
    readme = tmp_path / "README.md"
    readme.write_text(
        "# X<!-- sample:title --> (template)<!-- /sample -->\n\n"
        "<!-- sample:lead -->A credit model,<!-- /sample --> run well.\n\n"
        "<!-- sample -->Bundled data.\nMore.<!-- /sample -->\n\n"
        "<!-- sample:drift -->\n```bash\nmlops simulate-drift --features age --output x\n```\n<!-- /sample -->\n"
    )
    churn = scaffold.DataAnswers("churn.csv", "churned", "yes", ("gender",))
    # when it is rewritten for other data, then for yet other data
    assert scaffold.rewrite_readme(tmp_path, churn, "data/raw/churn.csv")
    first = readme.read_text()
    assert scaffold.rewrite_readme(tmp_path, replace(churn, target="left"), "data/raw/churn.csv")
    second = readme.read_text()
    # then every passage is about the new data, the rest is untouched, and the markers stay
    assert first.startswith("# X<!-- sample:title --><!-- /sample -->\n")
    assert (
        "<!-- sample:lead -->A model that scores `churned` = `yes` in `data/raw/churn.csv`,<!-- /sample --> run well."
        in first
    )
    assert "Bundled" not in first and "measures fairness across `gender`" in first
    assert "mlops simulate-drift --output x" in first and "--features" not in first
    assert "`left` = `yes`" in second and "`churned`" not in second
    assert second.count("<!-- sample:") == 4
    # and a README without markers is left alone
    readme.write_text("plain\n")
    assert not scaffold.rewrite_readme(tmp_path, churn, "data/raw/churn.csv")


def test_sample_results_are_the_committed_pipeline_outputs():
    results = set(scaffold.sample_results(ROOT))
    assert {"dvc.lock", "metrics/evaluate.json", "metrics/gate.json", "models/bento.json"} <= results
    assert "reports/validation.md" in results and "plots/roc.json" in results
    assert not any(r.startswith("data/") or r in {"models/candidate", "models/approved"} for r in results)


def test_mlops_retarget_refuses_bad_answers_without_changing_anything(tmp_path, capsys):
    project = _project_copy(tmp_path / "project")
    before = (project / "params.yaml").read_text()
    assert scaffold.retarget_cli(["--project", str(project), "--target", "sex"]) == 2
    assert "also listed as a protected attribute" in capsys.readouterr().err
    assert (project / "params.yaml").read_text() == before

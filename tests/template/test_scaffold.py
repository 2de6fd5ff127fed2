"""The template machinery (hooks/scaffold.py) without running cookiecutter (fast)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from german_credit_scoring.settings import load_settings

from .conftest import ROOT, git, scaffold, working_files, write_churn


def test_the_template_folder_holds_one_placeholder_and_nothing_is_a_link():
    # given the files git tracks in the template
    listed = git(ROOT, "ls-files", "-s", "-z").split("\0")
    entries = [line.split("\t", 1) for line in listed if line]
    in_folder = [path for _, path in entries if path.startswith(f"{scaffold.TEMPLATE_DIR}/")]
    # then cookiecutter's folder is one placeholder, not a second tree, and no file is a symlink
    assert in_folder == [f"{scaffold.TEMPLATE_DIR}/{scaffold.PLACEHOLDER}"]
    assert [path for meta, path in entries if meta.startswith("120000")] == []


def test_project_files_are_the_tracked_tree_minus_the_machinery():
    files = scaffold.project_files(ROOT)
    # the project itself is there (new tracked files flow in without any list to keep)
    assert {
        "params.yaml",
        "dvc.yaml",
        "bootstrap.py",
        "README.md",
        "src/german_credit_scoring/cli.py",
    } <= set(files)
    assert set(files) == {f for f in scaffold.git_files(ROOT) if not scaffold.is_machinery(f)}
    # and the template machinery is not
    for machinery in ("cookiecutter.json", "hooks/scaffold.py", "tests/template/test_bake.py"):
        assert machinery in scaffold.git_files(ROOT) and machinery not in files
    assert not any(f.startswith(("hooks/", "tests/template/", "{{")) for f in files)
    assert not any("scaffold" in f for f in files)


def _small_template(root: Path, readme: str = "v1\n") -> Path:
    (root / "hooks").mkdir(parents=True)
    (root / "hooks/scaffold.py").write_text("# machinery\n")
    (root / "cookiecutter.json").write_text("{}")
    (root / "README.md").write_text(readme)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return root


def test_locate_template_from_cookiecutters_repo_dir(tmp_path):
    template = _small_template(tmp_path / "where" / "tpl")
    # an absolute _repo_dir (a clone of a git URL) is taken as it is
    assert scaffold.locate_template({"_repo_dir": str(template)}, {}, tmp_path) == template
    # a relative one (a path as typed) is relative to where cookiecutter ran: PWD, else _output_dir
    assert (
        scaffold.locate_template({"_repo_dir": "tpl"}, {"PWD": str(tmp_path / "where")}, tmp_path) == template
    )
    (tmp_path / "where" / "out").mkdir()
    answers = {"_repo_dir": "../tpl", "_output_dir": str(tmp_path / "where" / "out")}
    assert scaffold.locate_template(answers, {}, tmp_path) == template
    # and a folder that is not this template is refused, naming where it looked
    with pytest.raises(scaffold.ScaffoldError, match="cannot find the template checkout"):
        scaffold.locate_template({"_repo_dir": "nowhere"}, {"PWD": str(tmp_path)}, tmp_path)


def test_locate_template_from_crufts_template_and_commit_exports_that_commit(tmp_path):
    # given a template repository whose working tree moved on after the commit cruft generates from
    template = _small_template(tmp_path / "tpl")
    commit = git(template, "rev-parse", "HEAD").strip()
    (template / "README.md").write_text("v2, not committed\n")
    (template / "untracked.txt").write_text("x\n")
    # when it is located from cruft's context (a path, then a file:// URL)
    for source in (str(template), template.as_uri()):
        scratch = tmp_path / f"scratch-{len(source)}"
        scratch.mkdir()
        tree = scaffold.locate_template({"_template": source, "_commit": commit}, {}, scratch)
        # then the tree is that commit's, and its files are what git tracked there
        assert (tree / "README.md").read_text() == "v1\n"
        assert scaffold.source_files(tree) == ["README.md", "cookiecutter.json", "hooks/scaffold.py"]
        assert scaffold.project_files(tree) == ["README.md"]
    with pytest.raises(scaffold.ScaffoldError, match="cannot read commit"):
        scaffold.locate_template({"_template": str(template), "_commit": "0" * 40}, {}, tmp_path)


def test_copy_project_copies_regular_files_and_keeps_modes(tmp_path):
    template = _small_template(tmp_path / "tpl")
    (template / "run.sh").write_text("#!/bin/sh\n")
    (template / "run.sh").chmod(0o755)
    git(template, "add", "run.sh")
    copied = scaffold.copy_project(template, tmp_path / "project")
    assert copied == ["README.md", "run.sh"]
    assert (tmp_path / "project/run.sh").stat().st_mode & 0o111
    assert not (tmp_path / "project/hooks").exists()


def test_readme_loses_the_template_passages_and_states_its_own_test_count(tmp_path):
    # given a README with template-only passages (inside a line, whole lines) and a test count
    (tmp_path / "tests/unit").mkdir(parents=True)
    (tmp_path / "tests/unit/test_a.py").write_text(
        "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n"
    )
    (tmp_path / "tests/unit/helpers.py").write_text("def test_not_a_test_file():\n    pass\n")
    (tmp_path / "README.md").write_text(
        "# X<!-- template:title --> (and the template)<!-- /template -->\n"
        "Runs <!-- template:tests -->about 380 tests<!-- /template --> quickly.\n"
        "<!-- template:make-your-own -->\n## Make your own\n\ncookiecutter {{cookiecutter.x}}\n<!-- /template -->\n"
        "## Next\n"
    )
    # when it is rewritten for the generated project
    assert scaffold.rewrite_readme_for_project(tmp_path)
    # then only the project is described
    assert (tmp_path / "README.md").read_text() == "# X\nRuns 2 test functions quickly.\n## Next\n"
    assert not scaffold.rewrite_readme_for_project(tmp_path)


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


def test_retarget_cli_renames_and_reaims_a_project(tmp_path):
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
    sources = list((project / "src/churn_risk").rglob("*.py"))
    assert sources and not [s for s in sources if "german_credit_scoring" in s.read_text()]
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


def test_the_samples_benchmark_figures_become_how_to_measure_on_the_projects_data(tmp_path):
    # given the template's README, whose benchmark and latency figures were measured on the sample
    template = (ROOT / "README.md").read_text(encoding="utf-8")
    figures = ["30.9 s", "3.3 min", "14.6 ms", "41,700", "0.29 s (pandas engine)", "7.7 against 486 ms"]
    assert all(figure in template for figure in figures)
    (tmp_path / "README.md").write_text(template, encoding="utf-8")
    churn = scaffold.DataAnswers("churn.csv", "churned", "yes", ("gender",))
    # when it is rewritten for other data
    assert scaffold.rewrite_readme(tmp_path, churn, "data/raw/churn.csv")
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    # then none of the sample's figures is left, and the README says how to measure this data
    assert not [figure for figure in figures if figure in readme]
    assert "measured on its bundled sample, not on `data/raw/churn.csv`" in readme
    for script in ("pipeline", "latency_gate", "serving", "explain", "pr_workflow"):
        assert f"uv run python benchmarks/{script}_benchmark.py" in readme
        assert (ROOT / f"benchmarks/{script}_benchmark.py").is_file()
    assert "compares it with wall-clock timing on this project's model" in readme
    assert readme.index("## Benchmarks") < readme.index("pipeline_benchmark.py       # dvc repro")


def test_sample_results_are_the_committed_pipeline_outputs():
    results = set(scaffold.sample_results(ROOT))
    assert {"dvc.lock", "metrics/evaluate.json", "metrics/gate.json", "models/bento.json"} <= results
    assert "reports/validation.md" in results and "plots/roc.json" in results
    assert not any(r.startswith("data/") or r in {"models/candidate", "models/approved"} for r in results)


def test_retarget_cli_refuses_bad_answers_without_changing_anything(tmp_path, capsys):
    project = _project_copy(tmp_path / "project")
    before = (project / "params.yaml").read_text()
    assert scaffold.retarget_cli(["--project", str(project), "--target", "sex"]) == 2
    assert "also listed as a protected attribute" in capsys.readouterr().err
    assert (project / "params.yaml").read_text() == before

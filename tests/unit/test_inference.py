"""Contract inference: features.yaml and the GX suite drafted from data, with only the standard library."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import yaml

from german_credit_scoring import inference
from german_credit_scoring.contract import FeatureSet, infer_features
from german_credit_scoring.errors import ContractError

CONTRACT_KEYS = ("name", "dtype", "allowed_values", "min", "max", "nullable", "sensitive")


def _shape(features: dict) -> list[dict]:
    return [{k: f.get(k) for k in CONTRACT_KEYS} for f in features["features"]]


@pytest.fixture(scope="module")
def sample_profile(root, settings):
    return inference.profile_file(root / settings.data.path)


def test_inferred_contract_matches_the_reviewed_one(root, settings, sample_profile):
    # given the sample file and the reviewed features.yaml
    reviewed = yaml.safe_load((root / settings.features).read_text())
    # when the contract is drafted from the data
    drafted = inference.infer_features_dict(
        sample_profile, settings.data.target, settings.data.protected_names
    )
    # then types, domains, nullability and sensitivity agree, and the draft is a valid FeatureSet
    assert _shape(drafted) == _shape(reviewed)
    FeatureSet.model_validate(drafted)


def test_data_frame_inference_is_the_same_implementation(settings, sample_frame, sample_profile):
    from_frame = infer_features(sample_frame, settings.data.target, settings.data.protected_names)
    from_file = inference.infer_features_dict(
        sample_profile, settings.data.target, settings.data.protected_names
    )
    assert from_frame == FeatureSet.model_validate(from_file)


def test_profile_counts_rows_nulls_and_labels(settings, sample_profile, sample_frame):
    assert sample_profile.rows == len(sample_frame)
    labels = sample_profile.label_distribution(settings.data.target)
    # labels as text, whatever type the file gives them (a 0/1 target reads as integers)
    expected = sample_frame[settings.data.target].astype(str).value_counts().sort_index().to_dict()
    assert labels == expected


def test_null_tokens_follow_pandas_and_numbers_are_typed(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,y\n1,none,1.5,x\nNA,2,2.0,z\n3,NA,,x\n")
    profile = inference.profile_file(path)
    assert profile.columns["a"].dtype == "int" and profile.columns["a"].nulls == 1
    assert profile.columns["b"].dtype == "category"  # "none" is a value, not missing
    assert sorted(profile.columns["b"].counts) == ["2", "none"]
    assert profile.columns["c"].dtype == "float" and profile.columns["c"].maximum == 2.0
    drafted = inference.infer_features_dict(profile, "y")
    assert drafted["features"][0] == {
        "name": "a", "dtype": "int", "description": "", "owner": "", "min": 1.0, "max": 3.0,
        "nullable": True, "sensitive": False, "immutable": False,
    }  # fmt: skip


def test_identifier_like_text_column_is_refused_by_name(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("customer,y\n" + "".join(f"c{i},{i % 2}\n" for i in range(60)))
    with pytest.raises(ContractError, match=r"column 'customer' has 60 distinct text values"):
        inference.write_contract(path, "y", "1", (), None, None)


@pytest.mark.parametrize(
    ("target", "positive", "protected", "message"),
    [
        ("absent", "1", (), "target column 'absent' is not in the data"),
        ("y", "1", ("nope",), r"protected attributes \['nope'\]"),
        ("y", "maybe", (), "positive label 'maybe' does not occur in target 'y'"),
    ],
)
def test_bad_arguments_are_named(tmp_path, target, positive, protected, message):
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,0\n2,1\n")
    with pytest.raises(ContractError, match=message):
        inference.write_contract(path, target, positive, protected, None, None)


def test_suite_has_severity_and_column_on_every_expectation(root, settings):
    suite = json.loads((root / settings.validation.suite).read_text())
    assert suite["expectations"]
    for expectation in suite["expectations"]:
        assert expectation["meta"]["severity"] in {"critical", "warning"}
        assert "column" in expectation["meta"]
        assert expectation["meta"]["column"] == expectation["kwargs"].get("column")
        if expectation["type"] == "expect_column_values_to_not_be_null":
            assert 0 < expectation["kwargs"]["mostly"] <= 1  # an all-null column can never pass


def test_suite_loads_into_great_expectations(root, settings):
    import great_expectations as gx

    raw = json.loads((root / settings.validation.suite).read_text())
    suite = gx.ExpectationSuite(**raw)
    assert len(suite.expectations) == len(raw["expectations"])
    assert [e.expectation_type for e in suite.expectations] == [e["type"] for e in raw["expectations"]]
    assert {str(e.severity.value) for e in suite.expectations} == {"critical", "warning"}


def test_committed_suite_is_what_inference_generates(root, settings, monkeypatch):
    # given the committed suite; when it is regenerated from the reviewed contract; then nothing changes
    monkeypatch.chdir(root)
    draft = inference.write_contract(
        settings.data.path,
        settings.data.target,
        settings.data.positive_label,
        settings.data.protected_names,
        None,
        None,
        validation=settings.validation.model_dump(),
        features_in=settings.features,
    )
    assert draft.suite == json.loads(settings.validation.suite.read_text())


def test_suite_bounds_come_from_the_contract_and_margins(sample_profile, settings):
    features = {"features": [{"name": "age", "dtype": "int", "min": 10.0, "max": 20.0}]}
    profile = inference.DataProfile(
        source="t",
        rows=4,
        columns={
            "age": inference.ColumnProfile(name="age", rows=4, nulls=1),
            "y": inference.ColumnProfile(name="y", rows=4, counts={"a": 3, "b": 1}),
        },
    )
    suite = inference.build_suite(
        features, profile, "y", "b", {"range_margin": 0.1, "null_rate_margin": 0.05}
    )
    by_check = {(e["meta"]["check"], e["meta"]["column"]): e["kwargs"] for e in suite["expectations"]}
    assert by_check[("range", "age")] == {"column": "age", "min_value": 9.0, "max_value": 21.0}
    assert by_check[("nulls", "age")]["mostly"] == 0.7  # 25% observed missing, 5% margin
    assert by_check[("label_classes", "y")]["min_value"] == 2
    assert by_check[("label_balance_max", "y")]["mostly"] == pytest.approx(0.6)  # share of b <= 25% + 15%
    assert by_check[("label_balance_min", "y")]["mostly"] == pytest.approx(0.1)


def test_parquet_gives_the_same_contract_as_csv(root, settings, tmp_path, sample_frame, sample_profile):
    path = tmp_path / "sample.parquet"
    sample_frame.to_parquet(path, index=False)
    from_parquet = inference.infer_features_dict(
        inference.profile_file(path), settings.data.target, settings.data.protected_names
    )
    from_csv = inference.infer_features_dict(
        sample_profile, settings.data.target, settings.data.protected_names
    )
    assert from_parquet == from_csv


def test_parquet_text_columns_stay_text(tmp_path):
    path = tmp_path / "codes.parquet"
    pd.DataFrame({"code": ["1", "2", "1"], "y": ["a", "b", "a"]}).to_parquet(path)
    assert inference.profile_file(path).columns["code"].dtype == "category"


def _run_isolated(code: str, cwd) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python where pandas, pydantic and GX cannot be imported."""
    blocker = textwrap.dedent(
        """
        import sys
        for name in ("pandas", "pydantic", "great_expectations", "numpy", "sklearn"):
            sys.modules[name] = None
        """
    )
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_inference_runs_without_pandas_pydantic_or_gx(root, settings, tmp_path):
    # given a Python that cannot import pandas, pydantic or GX (like cookiecutter's hook environment)
    code = f"""
        from german_credit_scoring.inference import write_contract
        import json, yaml
        draft = write_contract({str(root / settings.data.path)!r}, {settings.data.target!r},
                               {settings.data.positive_label!r}, {settings.data.protected_names!r},
                               "out/features.yaml", "out/expectations.json")
        features = yaml.safe_load(open("out/features.yaml"))
        suite = json.load(open("out/expectations.json"))
        print(len(features["features"]), len(suite["expectations"]))
    """
    # when the contract is inferred from the CSV
    result = _run_isolated(code, tmp_path)
    # then it works and writes both files
    assert result.returncode == 0, result.stderr
    n_features, n_expectations = map(int, result.stdout.split())
    assert n_features == len(yaml.safe_load((root / settings.features).read_text())["features"])
    assert n_expectations > 3 * n_features


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path):
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    code = """
        import sys
        sys.modules["pyarrow"] = None
        from german_credit_scoring.inference import profile_file, ContractError
        try:
            profile_file("d.parquet")
        except ContractError as error:
            print(error)
    """
    result = _run_isolated(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "d.parquet: reading Parquet needs pyarrow" in result.stdout


def test_cli_keeps_a_reviewed_contract_and_writes_the_suite(root, settings, tmp_path, monkeypatch, capsys):
    # given a project directory with params.yaml and a reviewed features.yaml
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["path"] = str(root / settings.data.path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "features").mkdir()
    reviewed = (root / settings.features).read_text()
    (tmp_path / settings.features).write_text(reviewed)
    # when infer-contract runs with the defaults from params.yaml
    assert inference.infer_contract_cli([]) == 0
    # then the reviewed contract is untouched and the suite is written
    assert (tmp_path / settings.features).read_text() == reviewed
    suite = json.loads((tmp_path / settings.validation.suite).read_text())
    assert suite["meta"]["target"] == settings.data.target
    assert "kept" in capsys.readouterr().out
    # and --overwrite-features drafts a new contract
    assert inference.infer_contract_cli(["--overwrite-features", "--owner", "team-x"]) == 0
    drafted = yaml.safe_load((tmp_path / settings.features).read_text())
    assert {f["owner"] for f in drafted["features"]} == {"team-x"}


def test_cli_explains_missing_arguments(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert inference.infer_contract_cli(["--data", "x.csv"]) == 2
    assert "--target" in capsys.readouterr().err


def test_cli_is_registered():
    from german_credit_scoring.cli import COMMANDS

    module, function = COMMANDS["infer-contract"][0].split(":")
    assert getattr(__import__(module, fromlist=[function]), function) is inference.infer_contract_cli
